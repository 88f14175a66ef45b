#!/usr/bin/env python3
"""The agent as users run it, on a real one-node cluster (stack.py up --real-node): the image from
scripts/image.sh, containerd + kubelet in the node's own network namespace, the scheduler and the
controller-manager.

  realcluster_test.py image      `eni-agent version` in the image under `ctr run`, with the
                                 DaemonSet's securityContext as far as ctr can say it
  realcluster_test.py kustomize  kubectl apply -k of an overlay of daemonset/ ... kubectl delete -k
  realcluster_test.py helm       helm install, upgrade, uninstall of daemonset/chart

Needs ENI_STACK_DIR (the real stack), ENI_BUILD_DIR (the image archives), ENI_TEST_NETNS (the
eni-test-netns helper). Exits non-zero on the first failed check; never skips.
"""
import json
import os
import subprocess
import sys
import tarfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import NAMESPACE, Cluster, Failure, check, log, temp_values, write_overlay  # noqa: E402

CAP_NET_ADMIN = 1 << 12
CAP_SETGID = 1 << 6
CAP_SETUID = 1 << 7
ROLLOUT_SUFFIX = "-rollout"
# aws-multi-eni-controller's image: 22 MB.
MAX_IMAGE_BYTES = 22 * 1000 * 1000
# containerd's default capability set (ctr run without flags).
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
CHART = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     "daemonset", "chart")


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def check_agent_process(c, pod):
    """The container's process, seen from the host: dropped to 65532 with CAP_NET_ADMIN alone and
    no_new_privs, under seccomp, on a read-only root, in the node's network namespace."""
    pid = c.container_pid(pod)
    s = proc_status(pid)
    check(s["Uid"] == ["65532"] * 4, f"pid {pid} Uid {s['Uid']}, not 65532 (real, effective, saved, fs)")
    check(s["Gid"] == ["65532"] * 4, f"pid {pid} Gid {s['Gid']}, not 65532")
    check(s.get("Groups", []) == [], f"pid {pid} has supplementary groups {s.get('Groups')}")
    for key in ("CapEff", "CapPrm", "CapAmb"):
        check(int(s[key][0], 16) == CAP_NET_ADMIN, f"pid {pid} {key} {s[key][0]}, not cap_net_admin alone")
    # The runtime's bounding set is the securityContext's: drop ALL, add NET_ADMIN, SETUID, SETGID.
    check(int(s["CapBnd"][0], 16) & ~(CAP_NET_ADMIN | CAP_SETUID | CAP_SETGID) == 0,
          f"pid {pid} CapBnd {s['CapBnd'][0]} holds more than the securityContext adds")
    check(s["NoNewPrivs"] == ["1"], f"pid {pid} NoNewPrivs {s['NoNewPrivs']}")
    check(s["Seccomp"] == ["2"], f"pid {pid} Seccomp {s['Seccomp']}, not a filter (RuntimeDefault)")
    root = [line.split() for line in open(f"/proc/{pid}/mountinfo") if line.split()[4] == "/"]
    check(root and "ro" in root[-1][5].split(","), f"pid {pid}'s root is not read-only: {root}")
    node_ns = os.stat(c.st["node_netns_path"]).st_ino
    check(os.stat(f"/proc/{pid}/ns/net").st_ino == node_ns, "the agent is not in the node's network namespace")
    check(os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino,
          "the agent runs in the machine's own network namespace")
    log(f"agent pid {pid}: uid/gid 65532, CapEff {s['CapEff'][0]}, CapBnd {s['CapBnd'][0]}, "
        f"NoNewPrivs 1, Seccomp 2, root ro, in {c.st['node_netns']}")
    return pid


def check_identity(c, pod):
    """Its ServiceAccount token (projected, bound to the pod: the admission policy refuses any
    other) and NODE_NAME (downward API) at work: the node's lease held by this pod, the Node's state
    annotation written."""
    name = pod["metadata"]["name"]
    lease = c.wait("the node's lease held by the pod", lambda: (
        c.kjson("get", "lease", f"eni-agent-{c.node}", "-n", NAMESPACE)["spec"].get("holderIdentity") == name))
    check(lease, "lease")
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    check(any("projected" in v and any("serviceAccountToken" in s for s in v["projected"]["sources"])
              for v in vols.values()), "the pod has no projected ServiceAccount token volume")
    c.wait("the Node's eni-agent.io/state annotation", lambda: (
        c.kjson("get", "node", c.node)["metadata"].get("annotations", {}).get("eni-agent.io/state")))


def check_node_eni(c, netns_tool):
    """A NodeENI's ENI, attached in moto; its link appears in the node's namespace with the ENI's
    MAC (playing the kernel); the agent brings it up with the NodeENI's MTU."""
    st = c.st
    nodeeni = {
        "apiVersion": "networking.k8s.aws/v1alpha1", "kind": "NodeENI",
        "metadata": {"name": "realcluster"},
        "spec": {"nodeSelector": {"eni-agent.io/enabled": "true"}, "subnetID": st["subnet_a"],
                 "securityGroupIDs": [st["security_group_id"]], "deviceIndex": 1, "mtu": 8500},
    }
    c.kubectl("apply", "-f", "-", input=json.dumps(nodeeni))

    def attached():
        for ni in c.ec2.describe_network_interfaces()["NetworkInterfaces"]:
            a = ni.get("Attachment") or {}
            tags = {t["Key"]: t["Value"] for t in ni.get("TagSet", [])}
            if a.get("InstanceId") == st["instance_id"] and a.get("DeviceIndex") == 1 and \
                    tags.get("eni-agent.io/managed-by"):
                return ni
        return None
    ni = c.wait("the NodeENI's ENI attached in moto", attached)
    mac = ni["MacAddress"]
    c.run(netns_tool, "veth", st["node_netns_path"], "eth1", mac, "eth1peer")

    def up():
        link = json.loads(c.run("ip", "-n", st["node_netns"], "-j", "link", "show", "eth1").stdout)[0]
        return link if "UP" in link["flags"] and link["mtu"] == 8500 else None
    c.wait("eth1 (the ENI's MAC) UP with MTU 8500 in the node's namespace", up)
    log(f"NodeENI ENI {ni['NetworkInterfaceId']} ({mac}): eth1 UP, MTU 8500")
    return ni["NetworkInterfaceId"]


def remove_node_eni(c, eni):
    c.kubectl("delete", "nodeeni", "realcluster", "--timeout=120s")

    def gone():
        return not [n for n in c.ec2.describe_network_interfaces()["NetworkInterfaces"]
                    if n["NetworkInterfaceId"] == eni]
    c.wait(f"ENI {eni} deleted by the agent", gone)


def rollout(c, apply, image):
    """Rolls the DaemonSet to `image` (apply() changes it) and counts EC2 calls at the fault proxy
    from before the change until the new pod is Ready and holds the lease."""
    old = c.ready_agent()
    # Only the agent talks to the proxy (the stack and the tests use moto directly): the calls of
    # its tagging and NodeENI work so far show that the count below sees the agent's traffic.
    before = c.ec2_calls()
    check(before > 0, "the fault proxy counted no EC2 call of the first agent: a 0 after the "
          "rolling update would prove nothing")
    c.proxy("POST", "/_proxy/reset")
    apply()
    new = c.wait(f"the DaemonSet rolled to {image}, Ready",
                 lambda: c.ready_agent(image) if not [p for p in c.agent_pods()
                                                      if p["metadata"]["name"] == old["metadata"]["name"]] else None)
    check_identity(c, new)
    calls = c.ec2_calls()
    check(calls == 0, f"the rolling update made {calls} EC2 calls: {c.proxy('GET', '/_proxy/stats')['requests']}")
    log(f"rolled {old['metadata']['name']} -> {new['metadata']['name']} ({image}): 0 EC2 calls "
        f"(the first agent made {before})")
    return new


class ExitWatch:
    """containerd's /tasks/exit events while a pod is deleted: the agent's exit status tells a
    clean SIGTERM exit (0) from a SIGKILL at the end of the grace period (137)."""

    def __init__(self, c):
        self.p = subprocess.Popen(["ctr", "-a", c.st["containerd_sock"], "events"], stdout=subprocess.PIPE, text=True)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line)

    def exit_status(self, container_id):
        for line in self.lines:
            if "/tasks/exit" in line and container_id in line:
                return json.loads(line[line.index("{"):]).get("exit_status", 0)
        return None

    def stop(self):
        self.p.terminate()
        self.p.wait()


def delete_and_check_exit(c, pod, delete):
    cid = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    watch = ExitWatch(c)
    try:
        delete()
        c.wait("the agent pod gone", lambda: not c.agent_pods())
        status = c.wait("the agent container's exit event", lambda: (lambda s: s is not None and (s,))(
            watch.exit_status(cid)), limit=30)[0]
    finally:
        watch.stop()
    check(status == 0, f"the agent exited with status {status}, not 0: killed at the end of its "
          f"{grace}s grace period instead of ending on SIGTERM")
    log(f"the agent ended on SIGTERM with status 0, within its {grace}s grace period")


# ---------------------------------------------------------------- the tests

def image_bytes(archive):
    """The bytes of the files in an OCI archive's image, its layers unpacked (what a node stores)."""
    with tarfile.open(archive) as oci:
        def blob(digest):
            return oci.extractfile("blobs/" + digest.replace(":", "/"))
        index = json.load(oci.extractfile("index.json"))
        manifest = json.load(blob(index["manifests"][0]["digest"]))
        total = 0
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=blob(layer["digest"]), mode="r:*") as t:
                total += sum(m.size for m in t.getmembers() if m.isfile())
    return total


def run_in_image(c, ref, flags, argv):
    """Runs argv in the image under containerd and returns its output. The shim writes the output
    to a file and the task is deleted only once it has stopped and the file holds something: with
    `ctr run --rm` on a loaded machine the shim gave up copying the output of a task that ended at
    once (it waits 2 s for its copy before the delete closes the pipes) and the test saw ''."""
    cid = "eni-agent-image-test"
    c.ctr("task", "delete", "--force", cid, check_rc=False)
    c.ctr("container", "delete", cid, check_rc=False)
    out = os.path.join(os.environ["ENI_STACK_DIR"], "logs", cid + ".log")
    if os.path.exists(out):
        os.unlink(out)
    c.ctr("run", "-d", *flags, "--log-uri", "file://" + out, ref, cid, *argv)
    try:
        c.wait(f"{argv} in the image stopped with output", lambda: (
            [line for line in c.ctr("task", "ls").splitlines() if line.split()[:1] == [cid] and "STOPPED" in line]
            and os.path.exists(out) and os.path.getsize(out) > 0))
        deleted = c.run("ctr", "-a", c.st["containerd_sock"], "-n", "k8s.io", "task", "delete", cid)
        check("non-zero exit code" not in deleted.stderr, f"{argv} in the image: {deleted.stderr.strip()}")
    finally:
        c.ctr("task", "delete", "--force", cid, check_rc=False)
        c.ctr("container", "delete", cid, check_rc=False)
    with open(out) as f:
        return f.read()


def test_image(c):
    """`eni-agent version` inside the image, run by containerd with the DaemonSet's securityContext
    as ctr can say it (the image's user 0, only NET_ADMIN, SETUID and SETGID, read-only root,
    containerd's default seccomp profile); the pods of the other tests run it under the kubelet."""
    name, tag = c.image_env()
    ref = f"localhost/eni-agent:{tag}"
    c.import_agent_image("localhost/eni-agent", tag, tag)
    # ctr 1.6 has no --cap-drop ALL: drop each of its default capabilities but the two kept.
    drops = [a for cap in DEFAULT_CAPS if cap not in ("CAP_SETUID", "CAP_SETGID") for a in ("--cap-drop", cap)]
    out = run_in_image(c, ref, ["--read-only", "--seccomp", *drops, "--cap-add", "CAP_NET_ADMIN"],
                       ["/usr/bin/eni-agent", "version"])
    check(tag in out, f"`eni-agent version` in the image printed {out!r}, without {tag}")
    log(f"image {name}:{tag}: `eni-agent version` -> {out.strip()}")
    size = image_bytes(c.agent_archive(tag))
    check(size <= MAX_IMAGE_BYTES, f"the image holds {size} bytes, more than {MAX_IMAGE_BYTES}")
    log(f"image {name}:{tag}: {size} bytes unpacked (at most {MAX_IMAGE_BYTES})")


def test_kustomize(c, netns_tool):
    name, tag = c.image_env()
    local = "localhost/eni-agent"
    c.import_agent_image(local, tag, tag)
    c.import_agent_image(local, tag + ROLLOUT_SUFFIX, tag + ROLLOUT_SUFFIX)
    overlay = write_overlay(c, local, tag)
    c.kubectl("apply", "-k", overlay)
    c.kubectl("label", "node", c.node, "eni-agent.io/enabled=true", "--overwrite")
    pod = c.wait("the DaemonSet's pod Running and Ready", lambda: c.ready_agent(f"{local}:{tag}"))
    check_agent_process(c, pod)
    check_identity(c, pod)
    c.start_tagged_pod("realpods", "tagged", {"Team": "platform", "Stage": "realcluster"})
    c.wait_tagged("realpods", "tagged", {"Team": "platform", "Stage": "realcluster"})
    eni = check_node_eni(c, netns_tool)

    def to_second_tag():
        write_overlay(c, local, tag + ROLLOUT_SUFFIX)
        c.kubectl("apply", "-k", overlay)
    pod = rollout(c, to_second_tag, f"{local}:{tag}{ROLLOUT_SUFFIX}")
    check_agent_process(c, pod)
    remove_node_eni(c, eni)
    c.kubectl("delete", "namespace", "realpods", "--timeout=120s")
    delete_and_check_exit(c, pod, lambda: c.kubectl("delete", "-k", overlay, "--timeout=180s"))


def test_helm(c):
    name, tag = c.image_env()
    local = "localhost/eni-agent"
    c.import_agent_image(local, tag, tag)
    values = temp_values({"image": {"repository": local, "tag": tag}, "extraEnv": c.agent_env()})
    c.helm("install", "eni-agent", CHART, "-n", NAMESPACE, "--create-namespace", "-f", values, "--wait=false")
    c.kubectl("label", "node", c.node, "eni-agent.io/enabled=true", "--overwrite")
    pod = c.wait("the chart's pod Running and Ready", lambda: c.ready_agent(f"{local}:{tag}"))
    check_agent_process(c, pod)
    check_identity(c, pod)
    c.start_tagged_pod("helmpods", "tagged", {"Team": "helm"})
    c.wait_tagged("helmpods", "tagged", {"Team": "helm"})

    old = pod["metadata"]["name"]
    c.helm("upgrade", "eni-agent", CHART, "-n", NAMESPACE, "--reuse-values", "--set", "agent.resyncInterval=1h")

    def upgraded():
        p = c.ready_agent(f"{local}:{tag}")
        return p if p and p["metadata"]["name"] != old and \
            "--resync-interval=1h" in p["spec"]["containers"][0]["args"] else None
    pod = c.wait("the upgrade (agent.resyncInterval=1h) rolled out", upgraded)
    log(f"helm upgrade: {old} -> {pod['metadata']['name']} with --resync-interval=1h")
    c.kubectl("delete", "namespace", "helmpods", "--timeout=120s")
    delete_and_check_exit(c, pod, lambda: c.helm("uninstall", "eni-agent", "-n", NAMESPACE, "--wait"))
    crd = c.kubectl("get", "crd", "nodeenis.networking.k8s.aws", "-o", "name", check_rc=False)
    check("nodeenis.networking.k8s.aws" in crd, "helm uninstall removed the NodeENI CRD; it must stay")
    check(not c.kubectl("get", "clusterrole", "eni-agent", check_rc=False).strip(),
          "helm uninstall left the ClusterRole")
    log("helm uninstall: the release's objects gone, the NodeENI CRD kept")


def main(argv):
    if len(argv) != 2 or argv[1] not in ("image", "kustomize", "helm"):
        print(__doc__)
        return 2
    c = Cluster()
    try:
        if argv[1] == "image":
            test_image(c)
        elif argv[1] == "kustomize":
            test_kustomize(c, os.environ["ENI_TEST_NETNS"])
        else:
            test_helm(c)
    except Failure as e:
        print(f"FAIL: {e}", flush=True)
        return 1
    print(f"realcluster {argv[1]}: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
