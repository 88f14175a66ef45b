"""Shared helpers of bench/run and bench/fleet: the test stack, the admin Kubernetes client, moto,
the fault proxy and the agent processes. Loopback and test namespaces only."""
import concurrent.futures
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STACK_PY = os.path.join(ROOT, "tests", "env", "stack.py")
IMDS_PY = os.path.join(ROOT, "tests", "env", "imds_emulator.py")

# EC2's documented per-API buckets (DESIGN.md, "Fleet budget").
EC2_BUCKETS = {"describe": {"capacity": 100, "refill_per_sec": 20},
               "mutate": {"capacity": 50, "refill_per_sec": 5}}


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def machine():
    """What the figures were taken on, and under what load."""
    cpu = "unknown cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "loadavg": open("/proc/loadavg").read().split()[:3],
            "kernel": os.uname().release}


def ensure_binary(build):
    binary = os.path.join(build, "agent", "eni-agent")
    if not os.path.exists(binary):
        log(f"building {binary}")
        # Build output goes to stderr: with --json, stdout holds exactly one JSON object.
        curl = subprocess.run(["bash", os.path.join(ROOT, "scripts", "lean-curl.sh")], check=True,
                              stdout=subprocess.PIPE, text=True).stdout.strip()
        subprocess.run(["cmake", "-S", ROOT, "-B", build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                        f"-DENI_CURL_PREFIX={curl}"], check=True, stdout=sys.stderr)
        subprocess.run(["cmake", "--build", build, "--target", "eni-agent", "-j", str(os.cpu_count() or 2)],
                       check=True, stdout=sys.stderr)
    return binary


class Stack:
    """The test stack (tests/env/stack.py) for the duration of a benchmark."""

    def __init__(self, d):
        self.dir = os.path.abspath(d)
        self.instances = {}  # node name -> its instance

    def __enter__(self):
        subprocess.run([sys.executable, STACK_PY, "up", "--dir", self.dir], check=True, stdout=sys.stderr)
        self.st = json.load(open(os.path.join(self.dir, "stack.json")))
        self.ctx = ssl.create_default_context(cafile=f"{self.dir}/pki/ca.crt")
        self.ctx.load_cert_chain(f"{self.dir}/pki/admin.crt", f"{self.dir}/pki/admin.key")
        import boto3
        self.ec2 = boto3.client("ec2", region_name=self.st["region"], endpoint_url=self.st["moto_endpoint"],
                                aws_access_key_id="bench", aws_secret_access_key="bench")
        return self

    def __exit__(self, *exc):
        subprocess.run([sys.executable, STACK_PY, "down", "--dir", self.dir], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # ------------------------------------------------------------ Kubernetes (admin)

    def kube(self, method, path, body=None, ctype="application/json", ok404=False):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.st["apiserver_url"] + path, data=data, method=method,
                                     headers={"Content-Type": ctype, "Accept": "application/json"})
        for attempt in range(5):
            try:
                with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
                    return json.loads(r.read() or b"null")
            except urllib.error.HTTPError as e:
                if e.code == 404 and ok404:
                    return None
                if e.code in (409, 429, 500, 503) and attempt < 4:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                raise SystemExit(f"bench: {method} {path}: HTTP {e.code}: {e.read()[:300]!r}")
        return None

    def apiserver_patch_latency(self):
        """The API server's own request_duration histogram for PATCH, by resource: {resource:
        (count, sum_seconds, {le: count})}, from its /metrics (cumulative since it started)."""
        req = urllib.request.Request(self.st["apiserver_url"] + "/metrics", method="GET")
        with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if not line.startswith("apiserver_request_duration_seconds") or 'verb="PATCH"' not in line:
                continue
            labels = dict(kv.split("=", 1) for kv in line[line.index("{") + 1:line.index("}")].split(","))
            resource = labels.get("resource", "").strip('"')
            if labels.get("subresource", '""') not in ('""', ""):
                resource += "/" + labels["subresource"].strip('"')
            count, total, buckets = out.get(resource, (0, 0.0, {}))
            value = float(line.rsplit(" ", 1)[1])
            if line.startswith("apiserver_request_duration_seconds_bucket"):
                le = labels["le"].strip('"')
                buckets[le] = buckets.get(le, 0) + value
            elif line.startswith("apiserver_request_duration_seconds_count"):
                count += value
            elif line.startswith("apiserver_request_duration_seconds_sum"):
                total += value
            out[resource] = (count, total, buckets)
        return out

    def create_node(self, name, instance_id, labels=None):
        self.instances[name] = instance_id
        self.kube("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": dict({"eni-agent.io/enabled": "true"}, **(labels or {}))},
            "spec": {"providerID": f"aws:///us-east-1a/{instance_id}"}})

    def create_pod(self, ns, name, node, ip, annotation=None, extra_annotations=None):
        meta = {"name": name, "namespace": ns, "labels": {"app": "bench"}}
        if annotation is not None or extra_annotations:
            meta["annotations"] = dict(extra_annotations or {})
        if annotation is not None:
            meta["annotations"]["eni-tagger.io/tags"] = annotation
        self.kube("POST", f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.invalid/app"}]}})
        # Play the kubelet: the pod runs with its IP.
        self.kube("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status",
                  {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}},
                  ctype="application/merge-patch+json")

    def patch_pod(self, ns, name, patch):
        self.kube("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}", patch, ctype="application/merge-patch+json")

    def ensure_namespace(self, ns):
        if self.kube("GET", f"/api/v1/namespaces/{ns}", ok404=True) is None:
            self.kube("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": ns}})

    def pods(self, ns, node=None):
        q = f"?fieldSelector=spec.nodeName%3D{node}" if node else ""
        return self.kube("GET", f"/api/v1/namespaces/{ns}/pods{q}")["items"]

    # ------------------------------------------------------------ EC2 (moto direct: not counted)

    def new_instance(self):
        image = self.ec2.describe_images()["Images"][0]["ImageId"]
        return self.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="m5.large",
                                      SubnetId=self.st["subnet_a"],
                                      SecurityGroupIds=[self.st["security_group_id"]])["Instances"][0]["InstanceId"]

    def trunk_for(self, instance_id):
        """A trunk ENI attached to `instance_id`, as the VPC resource controller attaches one."""
        trunk = self.ec2.create_network_interface(SubnetId=self.st["subnet_a"], InterfaceType="trunk",
                                                  Description="trunk for security groups for pods")
        trunk = trunk["NetworkInterface"]["NetworkInterfaceId"]
        self.ec2.attach_network_interface(NetworkInterfaceId=trunk, InstanceId=instance_id, DeviceIndex=99)
        return trunk

    def branch_eni(self, trunk, vlan):
        """A branch ENI of `trunk` (tests/env/moto_server.py), with the controller's tags; (id, ip)."""
        eni = self.ec2.create_network_interface(
            SubnetId=self.st["subnet_c"], Groups=[self.st["security_group_id"]],
            TagSpecifications=[{"ResourceType": "network-interface", "Tags": [
                {"Key": "vpcresources.k8s.aws/trunk-eni-id", "Value": trunk},
                {"Key": "vpcresources.k8s.aws/vlan-id", "Value": str(vlan)},
                {"Key": "eks:eni:owner", "Value": "eks-vpc-resource-controller"}]}])["NetworkInterface"]
        self.ec2.associate_trunk_interface(BranchInterfaceId=eni["NetworkInterfaceId"], TrunkInterfaceId=trunk,
                                           VlanId=vlan)
        return eni["NetworkInterfaceId"], eni["PrivateIpAddress"]

    def attach_eni(self, instance_id, device_index, secondary=0, subnet=None):
        """An ENI with `secondary` extra private IPs, attached; returns (eni id, [ips])."""
        args = {"SubnetId": subnet or self.st["subnet_c"], "Groups": [self.st["security_group_id"]]}
        if secondary:
            args["SecondaryPrivateIpAddressCount"] = secondary
        eni = self.ec2.create_network_interface(**args)["NetworkInterface"]
        self.ec2.attach_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=instance_id,
                                          DeviceIndex=device_index)
        return eni["NetworkInterfaceId"], [p["PrivateIpAddress"] for p in eni["PrivateIpAddresses"]]

    def drop_enis(self, node):
        """Deletes what a part left in moto for `node` (its agent stopped): every ENI attached to its
        instance but the primary, and the branch ENIs of its trunks. moto's filtered Describe reads
        every ENI it holds, so a few hundred left by earlier parts slow the later parts' calls, the
        agent's included; EC2's do not slow down with the account's ENIs. Returns how many went."""
        attached = self.ec2.describe_network_interfaces(
            Filters=[{"Name": "attachment.instance-id", "Values": [self.instances[node]]}])["NetworkInterfaces"]
        attached = [e for e in attached if e.get("Attachment", {}).get("DeviceIndex", 0) > 0]
        trunks = [e["NetworkInterfaceId"] for e in attached if e.get("InterfaceType") == "trunk"]
        branches = self.ec2.describe_network_interfaces(
            Filters=[{"Name": "tag:vpcresources.k8s.aws/trunk-eni-id", "Values": trunks}])["NetworkInterfaces"] \
            if trunks else []
        for e in attached:
            self.ec2.detach_network_interface(AttachmentId=e["Attachment"]["AttachmentId"], Force=True)
        for e in attached + branches:
            self.ec2.delete_network_interface(NetworkInterfaceId=e["NetworkInterfaceId"])
        return len(attached) + len(branches)

    # ------------------------------------------------------------ fault proxy (ground truth)

    def proxy(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.st["ec2_proxy_endpoint"] + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def proxy_reset(self, buckets=True):
        """Forget the counts; the documented EC2 buckets stay on (a reset clears them)."""
        self.proxy("POST", "/_proxy/reset", {})
        if buckets:
            self.proxy("POST", "/_proxy/buckets", EC2_BUCKETS)

    def proxy_stats(self):
        s = self.proxy("GET", "/_proxy/stats")
        s.pop("log", None)
        return s

    def imds_emulator(self, instance_ids, name):
        """A second IMDS emulator process playing `instance_ids`, one port each; {id: endpoint}."""
        ports_file = os.path.join(self.dir, f"{name}.ports")
        logf = open(os.path.join(self.dir, "logs", f"{name}.log"), "ab")
        argv = [sys.executable, IMDS_PY, "--moto-endpoint", self.st["moto_endpoint"], "--region", self.st["region"],
                "--ports-file", ports_file]
        for i in instance_ids:
            argv += ["--instance-id", i]
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        with open(os.path.join(self.dir, "pids", name), "w") as f:
            f.write(str(p.pid))  # stack.py down does not know it; Agent-like cleanup below
        deadline = time.time() + 120
        while not os.path.exists(ports_file):
            if p.poll() is not None or time.time() > deadline:
                raise SystemExit(f"bench: IMDS emulator {name} did not start; see its log")
            time.sleep(0.1)
        ports = json.load(open(ports_file))
        return p, {i: f"http://127.0.0.1:{port}" for i, port in ports.items()}


def stop_on_sigterm():
    """SIGTERM (a `kill`, a CI timeout) ends the benchmark like Ctrl-C: its `finally` blocks stop
    the agents and the stack and delete the namespaces, rather than leaving them running."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def stop_process(p):
    if p is None or p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    except ProcessLookupError:
        pass


def free_port():
    """A free port below the kernel's ephemeral range. A port the kernel hands out (bind to 0) can be
    handed out again as the source port of some connection before the agent binds it; with 40 agents
    restarting at once that happened (an agent exited: cannot listen on --health-probe-bind-address).
    Ports below the ephemeral range are never chosen as source ports."""
    import random
    import socket
    try:
        low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(10000, max(low, 10001))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # a crowded range: fall back to the kernel's choice
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    """One eni-agent process under the agent ServiceAccount's RBAC; JSON logs to a file."""

    def __init__(self, binary, stack, node, imds_endpoint, log_path, extra_args=(), env=None, wrapper=()):
        self.binary, self.stack, self.node = binary, stack, node
        self.wrapper = list(wrapper)  # e.g. valgrind and its flags, before the binary
        self.imds, self.log_path, self.extra = imds_endpoint, log_path, list(extra_args)
        self.extra_env = env or {}
        self.proc = None
        self.metrics_port = free_port()
        self.health_port = free_port()

    def start(self):
        st = self.stack.st
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("ENI_AGENT_") or k.startswith("AWS_"):
                del env[k]
        env.update({
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.imds,
            "AWS_ENDPOINT_URL_EC2": st["ec2_proxy_endpoint"],
            "AWS_ENDPOINT_URL_STS": st["moto_endpoint"],
            "AWS_ACCESS_KEY_ID": "AKIABENCH", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": st["region"],
            # One pod per node: a restarted agent takes its node's lease back at once.
            "POD_NAME": f"bench-{self.node}",
        })
        env.update(self.extra_env)
        argv = [*self.wrapper, self.binary, "run", f"--kubeconfig={st['agent_kubeconfig']}", f"--node-name={self.node}",
                "--log-format=json", f"--metrics-bind-address=127.0.0.1:{self.metrics_port}",
                f"--health-probe-bind-address=127.0.0.1:{self.health_port}", *self.extra]
        self.logf = open(self.log_path, "ab")
        self.offset = os.path.getsize(self.log_path)
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        self.started = time.time()
        return self

    def lines(self, since_start=True):
        with open(self.log_path, "rb") as f:
            if since_start:
                f.seek(self.offset)
            out = []
            for raw in f:
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    pass
            return out

    def wait_for_log(self, msg, limit=60):
        deadline = time.time() + limit
        while time.time() < deadline:
            if any(line.get("msg") == msg for line in self.lines()):
                return True
            if self.proc.poll() is not None:
                raise SystemExit(f"bench: agent {self.node} exited ({self.proc.returncode}); see {self.log_path}")
            time.sleep(0.1)
        return False

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def rss_kib(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def rss_breakdown(self, top=12):
        """RSS by mapping (KiB), largest first: where the steady RSS lives."""
        sizes, name = {}, None
        for line in open(f"/proc/{self.proc.pid}/smaps"):
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" not in parts[0]:
                name = parts[5] if len(parts) > 5 else "[anon]"
                name = os.path.basename(name) if name.startswith("/") else name
            elif parts[0] == "Rss:":
                sizes[name] = sizes.get(name, 0) + int(parts[1])
        return sorted(sizes.items(), key=lambda kv: -kv[1])[:top]

    def cpu_seconds(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def metrics(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
                return r.read().decode()
        except OSError:
            return ""


def parallel(fn, items, workers=8):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def percentile(values, p):
    """Nearest rank."""
    if not values:
        return None
    import math
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))]


def ec2_calls(stats):
    return sum(stats.get("requests", {}).values())
