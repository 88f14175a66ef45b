"""Helpers of the real-cluster tests: the stack (stack.py up --real-node), kubectl, helm, containerd,
moto and the fault proxy. Every wait is a bounded poll; nothing is asserted about time."""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NAMESPACE = "eni-agent"
TAGGED = "eni-tagger.io/tagged"


class Failure(AssertionError):
    pass


def log(msg):
    print(f"realcluster: {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class Cluster:
    def __init__(self):
        d = os.environ.get("ENI_STACK_DIR")
        if not d:
            sys.exit("ENI_STACK_DIR is not set: run through ctest (fixture realstack)")
        with open(os.path.join(d, "stack.json")) as f:
            self.st = json.load(f)
        check(self.st.get("real_node"), f"{d} is not a real-node stack (stack.py up --real-node)")
        self.node = self.st["node_name"]
        self.ec2 = boto3.client("ec2", region_name=self.st["region"], endpoint_url=self.st["moto_endpoint"],
                                aws_access_key_id="testing", aws_secret_access_key="testing")

    # ------------------------------------------------------------ tools

    def run(self, *argv, check_rc=True, input=None):
        p = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, input=input)
        if check_rc and p.returncode != 0:
            raise Failure(f"{' '.join(argv)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
        return p

    def kubectl(self, *args, check_rc=True, input=None):
        return self.run(self.st["kubectl"], "--kubeconfig", self.st["admin_kubeconfig"], *args,
                        check_rc=check_rc, input=input).stdout

    def kjson(self, *args):
        return json.loads(self.kubectl(*args, "-o", "json"))

    def helm(self, *args):
        return self.run(self.st["helm"], "--kubeconfig", self.st["admin_kubeconfig"], *args).stdout

    def ctr(self, *args, check_rc=True):
        return self.run("ctr", "-a", self.st["containerd_sock"], "-n", "k8s.io", *args, check_rc=check_rc).stdout

    def wait(self, what, pred, limit=180):
        """Polls pred() until it returns something true; fails after `limit` seconds (a bound on
        failure, not a timing assertion)."""
        deadline = time.time() + limit
        last = None
        while time.time() < deadline:
            try:
                got = pred()
                if got:
                    return got
            except Failure as e:
                last = e
            time.sleep(1)
        self.dump()
        raise Failure(f"{what}: not reached after {limit}s {last or ''}")

    def dump(self):
        """What the node shows, for a failure's log."""
        d = self.st["dir"]
        print(self.kubectl("get", "pods", "-A", "-o", "wide", check_rc=False), flush=True)
        print(self.kubectl("get", "events", "-A", "--sort-by=.lastTimestamp", check_rc=False)[-6000:], flush=True)
        for name in ("kubelet", "containerd"):
            try:
                print(f"--- {name}.log (tail)\n" + open(f"{d}/logs/{name}.log").read()[-4000:], flush=True)
            except OSError:
                pass
        logs = os.path.join(self.st["node_dir"], "pod-logs")
        for folder, _, files in os.walk(logs):
            for f in files:
                if NAMESPACE in folder:
                    print(f"--- {folder}/{f}\n" + open(os.path.join(folder, f)).read()[-4000:], flush=True)

    # ------------------------------------------------------------ images

    def image_env(self):
        env = {}
        with open(os.path.join(os.environ["ENI_BUILD_DIR"], "image.env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                env[k] = v
        return env["ENI_IMAGE_NAME"], env["ENI_IMAGE_TAG"]

    def agent_archive(self, tag):
        archive = os.path.join(os.environ["ENI_BUILD_DIR"], "image", f"eni-agent-{tag}.oci.tar")
        check(os.path.exists(archive), f"{archive} is missing: scripts/image.sh makes it")
        return archive

    def import_agent_image(self, name, tag, archive_tag):
        """Loads scripts/image.sh's archive into the node's containerd as name:tag, as a user's
        registry would serve it."""
        archive = self.agent_archive(archive_tag)
        self.ctr("images", "import", "--index-name", f"{name}:{tag}", archive)

    # ------------------------------------------------------------ the agent's pod

    def agent_pods(self):
        return self.kjson("get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=eni-agent")["items"]

    def ready_agent(self, image=None):
        """The one agent pod, Running and Ready (its real probes), with `image` if given; else None."""
        pods = [p for p in self.agent_pods() if not p["metadata"].get("deletionTimestamp")]
        if len(pods) != 1:
            return None
        p = pods[0]
        if image and p["spec"]["containers"][0]["image"] != image:
            return None
        conds = {c["type"]: c["status"] for c in p["status"].get("conditions", [])}
        if p["status"].get("phase") == "Running" and conds.get("Ready") == "True":
            return p
        return None

    def container_pid(self, pod):
        cid = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
        for line in self.ctr("tasks", "ls").splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return int(fields[1])
        raise Failure(f"containerd has no task for container {cid}")

    # ------------------------------------------------------------ AWS side

    def proxy(self, method, path):
        req = urllib.request.Request(self.st["ec2_proxy_endpoint"] + path, method=method, data=b"" if method == "POST" else None)
        return json.loads(urllib.request.urlopen(req, timeout=10).read() or b"{}")

    def ec2_calls(self):
        return sum(n for a, n in self.proxy("GET", "/_proxy/stats")["requests"].items() if a != "(none)")

    def eni_tags(self, eni):
        nis = self.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"]
        return {t["Key"]: t["Value"] for t in nis[0].get("TagSet", [])}

    def agent_env(self):
        """The overlay's environment: the test stack's EC2 (the fault proxy) and IMDS, as the node
        reaches them, static test credentials, and shared ENIs tagged (merge)."""
        st = self.st
        return [
            {"name": "AWS_ENDPOINT_URL_EC2", "value": st["node_ec2_endpoint"]},
            {"name": "AWS_EC2_METADATA_SERVICE_ENDPOINT", "value": st["node_imds_endpoint"]},
            {"name": "AWS_REGION", "value": st["region"]},
            {"name": "AWS_ACCESS_KEY_ID", "value": "testing"},
            {"name": "AWS_SECRET_ACCESS_KEY", "value": "testing"},
            # The pods take their addresses from one ENI's secondary IPs (VPC CNI's secondary-IP
            # mode), an ENI eni-agent refuses to tag by default, as k8s-eni-tagger does.
            {"name": "ENI_AGENT_SHARED_ENI_TAGGING", "value": "merge"},
        ]

    # ------------------------------------------------------------ a workload pod

    def start_tagged_pod(self, ns, name, tags):
        self.kubectl("create", "namespace", ns, check_rc=False)
        self.wait(f"ServiceAccount default in {ns}",
                  lambda: self.kubectl("get", "sa", "default", "-n", ns, check_rc=False), limit=60)
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "annotations": {"eni-tagger.io/tags": json.dumps(tags)}},
            "spec": {"containers": [{"name": "main", "image": self.st["sleeper_image"],
                                     "imagePullPolicy": "Never"}],
                     "terminationGracePeriodSeconds": 5},
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(pod))

        def running():
            p = self.kjson("get", "pod", name, "-n", ns)
            return p if p["status"].get("phase") == "Running" and p["status"].get("podIP") else None
        return self.wait(f"pod {ns}/{name} Running", running)

    def wait_tagged(self, ns, name, tags):
        pod = self.kjson("get", "pod", name, "-n", ns)
        ip = pod["status"]["podIP"]
        check(ip in self.st["pod_eni_ips"], f"pod IP {ip} is not one of the pod ENI's {self.st['pod_eni_ips']}")
        eni = self.st["pod_eni_id"]

        def tagged():
            have = self.eni_tags(eni)
            return all(have.get(k) == v for k, v in tags.items()) and have
        have = self.wait(f"tags {tags} on {eni} in moto", tagged)

        def condition():
            p = self.kjson("get", "pod", name, "-n", ns)
            return any(c["type"] == TAGGED and c["status"] == "True" for c in p["status"].get("conditions", []))
        self.wait(f"condition {TAGGED} on {ns}/{name}", condition)
        log(f"pod {ns}/{name} at {ip}: ENI {eni} carries {tags} ({len(have)} tags in all)")


def write_overlay(cluster, name, tag):
    """An overlay of daemonset/ that only points the image at the locally loaded one and gives the
    agent the test stack's endpoints: what a user does with their registry and their AWS."""
    d = os.path.join(os.environ["ENI_BUILD_DIR"], "realcluster-overlay")
    os.makedirs(d, exist_ok=True)
    base = os.path.relpath(os.path.join(ROOT, "daemonset"), d)
    patch = [{"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": e}
             for e in cluster.agent_env()]
    kust = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [base],
        "images": [{"name": "ghcr.io/eni-agent/eni-agent", "newName": name, "newTag": tag}],
        "patches": [{"target": {"kind": "DaemonSet", "name": "eni-agent"}, "patch": json.dumps(patch)}],
    }
    with open(os.path.join(d, "kustomization.yaml"), "w") as f:
        json.dump(kust, f, indent=2)
    return d


def temp_values(values):
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(values, f)
    f.close()
    return f.name
