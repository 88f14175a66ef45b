"""A real one-node cluster for the test stack (stack.py up --real-node).

The node is a network namespace of the stack's own making, joined to the machine by a veth pair:
containerd (CRI, runc, the CNI bridge with host-local IPAM) and the kubelet run inside it, so a
hostNetwork pod (the DaemonSet's) manages that namespace's links, never the machine's. The API
server, the EC2 fault proxy and the IMDS emulator stay on 127.0.0.1; a relay on the host side of
the veth gives the node their ports at the veth's host address, and plays kube-proxy for the
`kubernetes` Service's ClusterIP (10.96.0.1:443) inside the node. Images are built here (buildah,
vfs storage): nothing is pulled.

Settings this machine needs (docs/testing.md, "The real node"): containerd's
restrict_oom_score_adj (the process may not lower oom_score_adj), cgroupfs, no swap check, and
eviction thresholds low enough for a shared disk.
"""
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
SLEEPER_IMAGE = "eni-agent.test/sleeper:1"
SERVICE_VIP = "10.96.0.1"
NODE_NAME = "eni-real-node"


def log(msg):
    print(f"stack: {msg}", file=sys.stderr, flush=True)


def run(*argv, check=True, **kw):
    r = subprocess.run(list(argv), check=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, **kw)
    if check and r.returncode != 0:
        # What the tool said, before the traceback: its exit status alone tells nothing.
        log(f"{' '.join(argv)}: exit {r.returncode}: {(r.stderr or r.stdout).strip()[-2000:]}")
        raise subprocess.CalledProcessError(r.returncode, r.args, r.stdout, r.stderr)
    return r


def pick_subnet(pid):
    """A /30 for the veth that no link of the machine uses: 10.254.N.0/30, N from the pid."""
    used = run("ip", "-o", "-4", "addr", "show").stdout
    for i in range(250):
        n = (pid + i) % 250
        if f" 10.254.{n}." not in used:
            return f"10.254.{n}.1", f"10.254.{n}.2"
    raise SystemExit("stack: no free 10.254.N.0/30 for the node's veth")


def plan(d, st):
    """Names and addresses of the node, decided before the PKI is made (the API server's
    certificate names the host address and the ClusterIP)."""
    pid = os.getpid()
    host_ip, node_ip = pick_subnet(pid)
    st.update(node_name=NODE_NAME, node_netns=f"eni-node-{pid}", node_veth_host=f"enin{pid % 100000}h",
              node_host_ip=host_ip, node_ip=node_ip, node_dir=os.path.join(d, "node"),
              containerd_sock=os.path.join(d, "node", "containerd.sock"), service_vip=SERVICE_VIP)


# ---------------------------------------------------------------- the namespace and the relay

def make_netns(st):
    ns, veth = st["node_netns"], st["node_veth_host"]
    run("ip", "netns", "add", ns)
    run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    run("ip", "addr", "add", f"{st['node_host_ip']}/30", "dev", veth)
    run("ip", "link", "set", veth, "up")
    nsx = ["ip", "-n", ns]
    run(*nsx, "addr", "add", f"{st['node_ip']}/30", "dev", "eth0")
    run(*nsx, "link", "set", "eth0", "up")
    run(*nsx, "link", "set", "lo", "up")
    # The Service VIP is local to the node (as kube-proxy's IPVS mode binds it to a dummy link;
    # this kernel has no dummy module, so lo): the relay listens on it inside the namespace.
    run(*nsx, "addr", "add", f"{SERVICE_VIP}/32", "dev", "lo")
    st["node_netns_path"] = f"/run/netns/{ns}"


def start_relay(d, st, spawn, wait_for):
    ports = [st["apiserver_port"], st["ec2_proxy_port"], st["imds_port"]]
    argv = [sys.executable, os.path.join(HERE, "node_relay.py"), "--ready-file", os.path.join(d, "relay.ready")]
    for p in ports:
        argv += ["--forward", f"{st['node_host_ip']}:{p}=127.0.0.1:{p}"]
    argv += ["--forward", f"netns:{st['node_netns_path']}:{SERVICE_VIP}:443=127.0.0.1:{st['apiserver_port']}"]
    spawn(d, "node-relay", argv)
    wait_for("node relay", lambda: os.path.exists(os.path.join(d, "relay.ready")), proc_name="node-relay", d=d)
    st["node_apiserver_url"] = f"https://{st['node_host_ip']}:{st['apiserver_port']}"
    st["node_ec2_endpoint"] = f"http://{st['node_host_ip']}:{st['ec2_proxy_port']}"
    st["node_imds_endpoint"] = f"http://{st['node_host_ip']}:{st['imds_port']}"


# ---------------------------------------------------------------- images

def build_static_image(d, name, source, archive):
    """A one-file image: the static program built from `source`, as its entrypoint."""
    work = os.path.join(d, "images")
    os.makedirs(work, exist_ok=True)
    binary = os.path.join(work, os.path.basename(source)[:-2])
    run("gcc", "-static", "-Os", "-s", "-o", binary, source)
    bh = ["buildah", "--storage-driver", "vfs", "--root", os.path.join(work, "storage"),
          "--runroot", os.path.join(work, "run")]
    c = run(*bh, "from", "scratch").stdout.strip()
    run(*bh, "copy", c, binary, "/pause")
    run(*bh, "config", "--entrypoint", '["/pause"]', c)
    run(*bh, "commit", "-q", "--rm", c, name)
    run(*bh, "push", "-q", name, f"oci-archive:{archive}:{name}")
    run(*bh, "rmi", "-a", "-f", check=False)


def import_image(st, archive, name):
    # Once in a CI run (2026-12-01) the import exited 1 right after containerd logged the image
    # created, and said nothing we kept; its stderr is logged now, and it is tried again.
    argv = ["ctr", "-a", st["containerd_sock"], "-n", "k8s.io", "images", "import", "--index-name", name, archive]
    for attempt in range(3):
        r = run(*argv, check=attempt == 2)
        if r.returncode == 0:
            return
        log(f"importing {name} failed (attempt {attempt + 1}, exit {r.returncode}): "
            f"{(r.stderr or r.stdout).strip()[-2000:]}; trying again")
        time.sleep(1)


# ---------------------------------------------------------------- containerd and the kubelet

def write_cni(st):
    """The bridge with host-local IPAM over the pod ENI's secondary IPs (an ENI attached to the
    instance in moto): a pod's real IP is one IMDS lists for that ENI, so the tagger finds it."""
    conf_dir = os.path.join(st["node_dir"], "cni")
    os.makedirs(conf_dir, exist_ok=True)
    ips = st["pod_eni_ips"]
    conf = {
        "cniVersion": "0.4.0", "name": "eni-node",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": st["pod_eni_cidr"],
                                                          "rangeStart": ips[0], "rangeEnd": ips[-1]}]],
                      "dataDir": os.path.join(st["node_dir"], "cni-ipam")}},
            {"type": "loopback"},
        ],
    }
    with open(os.path.join(conf_dir, "10-eni-node.conflist"), "w") as f:
        json.dump(conf, f, indent=2)
    return conf_dir


def containerd_config(st, conf_dir):
    n = st["node_dir"]
    return f"""version = 2
root = "{n}/containerd/root"
state = "{n}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{st['containerd_sock']}"
[ttrpc]
  address = "{n}/containerd-ttrpc.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{n}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # This process lacks CAP_SYS_RESOURCE: lowering oom_score_adj (CRI gives the sandbox -998)
  # is refused and runc fails; clamp to containerd's own value instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{conf_dir}"
"""


def start_containerd(d, st, spawn, wait_for):
    n = st["node_dir"]
    os.makedirs(n, exist_ok=True)
    conf_dir = write_cni(st)
    cfg = os.path.join(n, "containerd.toml")
    with open(cfg, "w") as f:
        f.write(containerd_config(st, conf_dir))
    spawn(d, "containerd", ["nsenter", f"--net={st['node_netns_path']}", "--", "containerd", "--config", cfg])
    wait_for("containerd", lambda: run("ctr", "-a", st["containerd_sock"], "version", check=False).returncode == 0,
             proc_name="containerd", d=d)


def kubelet_config(st):
    n = st["node_dir"]
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs", "failSwapOn": False, "cgroupsPerQOS": False, "enforceNodeAllocatable": [],
        "containerRuntimeEndpoint": f"unix://{st['containerd_sock']}",
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "readOnlyPort": 0, "port": 10250, "address": st["node_ip"], "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "localStorageCapacityIsolation": False, "resolvConf": "",
        "podLogsDir": os.path.join(n, "pod-logs"), "volumePluginDir": os.path.join(n, "volume-plugins"),
        "registerNode": True, "serializeImagePulls": False,
    }


def start_kubelet(d, st, spawn, wait_for, kubectl, write_kubeconfig):
    n = st["node_dir"]
    cfg = os.path.join(n, "kubelet.yaml")
    with open(cfg, "w") as f:
        json.dump(kubelet_config(st), f, indent=2)
    kubeconfig = os.path.join(n, "kubelet.kubeconfig")
    write_kubeconfig(kubeconfig, st["node_apiserver_url"], f"{d}/pki/ca.crt",
                     {"client-certificate": f"{d}/pki/kubelet.crt", "client-key": f"{d}/pki/kubelet.key"})
    root = os.path.join(n, "kubelet")
    os.makedirs(root, exist_ok=True)
    spawn(d, "kubelet", [
        "nsenter", f"--net={st['node_netns_path']}", "--",
        os.path.join(st["kube_node_bin_dir"], "kubelet"), "--config", cfg, "--kubeconfig", kubeconfig,
        "--root-dir", root, "--cert-dir", os.path.join(n, "kubelet-pki"),
        "--hostname-override", st["node_name"], "--node-ip", st["node_ip"], "--v", "1",
    ])

    def ready():
        node = json.loads(kubectl(st, "get", "node", st["node_name"], "-o", "json"))
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
    wait_for("the kubelet's Node Ready", ready, timeout=180, proc_name="kubelet", d=d)


def start_control_plane(d, st, spawn, wait_for, kubectl):
    """kube-controller-manager (ServiceAccounts, kube-root-ca.crt, the DaemonSet controller, pod
    GC) and kube-scheduler, on the admin kubeconfig."""
    kb = st["kube_node_bin_dir"]
    spawn(d, "kube-controller-manager", [
        os.path.join(kb, "kube-controller-manager"), "--kubeconfig", st["admin_kubeconfig"],
        "--leader-elect=false", "--secure-port=0", "--root-ca-file", f"{d}/pki/ca.crt",
        "--service-account-private-key-file", f"{d}/pki/sa.key", "--use-service-account-credentials=false",
        "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
        "--v", "1",
    ])
    spawn(d, "kube-scheduler", [
        os.path.join(kb, "kube-scheduler"), "--kubeconfig", st["admin_kubeconfig"],
        "--leader-elect=false", "--secure-port=0", "--v", "1",
    ])
    # The controller-manager is up once it has made the default namespace's ServiceAccount.
    wait_for("kube-controller-manager", lambda: kubectl(st, "get", "serviceaccount", "default", "-n", "default"),
             timeout=120, proc_name="kube-controller-manager", d=d)


def up(d, st, h):
    """Everything but the PKI and the API server, which stack.py starts with the node's settings.
    `h` holds stack.py's helpers (spawn, wait_for, kubectl, write_kubeconfig)."""
    make_netns(st)
    start_relay(d, st, h["spawn"], h["wait_for"])
    start_control_plane(d, st, h["spawn"], h["wait_for"], h["kubectl"])
    start_containerd(d, st, h["spawn"], h["wait_for"])
    images = os.path.join(d, "images")
    os.makedirs(images, exist_ok=True)
    for name, archive in ((PAUSE_IMAGE, "pause.oci.tar"), (SLEEPER_IMAGE, "sleeper.oci.tar")):
        path = os.path.join(images, archive)
        build_static_image(d, name, os.path.join(HERE, "images", "pause.c"), path)
        import_image(st, path, name)
    st.update(pause_image=PAUSE_IMAGE, sleeper_image=SLEEPER_IMAGE)
    start_kubelet(d, st, h["spawn"], h["wait_for"], h["kubectl"], h["write_kubeconfig"])


# ---------------------------------------------------------------- teardown

def containerd_pids(st):
    """The containerd shims of this node (they outlive containerd) and their children."""
    out = []
    sock = st.get("containerd_sock", "")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"containerd-shim-runc-v2" in os.path.basename(cmd[0]) and sock.encode() in cmd:
            out.append(int(pid))
    return out


def down(d, st, kill):
    """Stops the node and removes what it made. Safe to run again; tolerant of a half-made node."""
    kill(d, "kubelet")
    sock = st.get("containerd_sock")
    if sock and os.path.exists(sock):
        tasks = run("ctr", "-a", sock, "-n", "k8s.io", "tasks", "ls", "-q", check=False).stdout.split()
        for t in tasks:
            run("ctr", "-a", sock, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", t, check=False)
    for pid in containerd_pids(st):
        try:
            os.killpg(pid, 9)
        except OSError:
            pass
    for name in ("containerd", "kube-scheduler", "kube-controller-manager", "node-relay"):
        kill(d, name)
    unmount_under(st.get("node_dir") or os.path.join(d, "node"))
    ns = st.get("node_netns")
    if ns:
        run("ip", "netns", "delete", ns, check=False)
    if st.get("node_veth_host"):
        run("ip", "link", "delete", st["node_veth_host"], check=False)


def unmount_under(path):
    """Unmounts every mount under `path`, deepest first (the kubelet's volumes and its bind mount of
    its root, containerd's overlay roots and sandbox namespaces)."""
    path = os.path.abspath(path)
    for _ in range(3):
        mounts = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split()[4].encode().decode("unicode_escape")
                if point == path or point.startswith(path + "/"):
                    mounts.append(point)
        if not mounts:
            return
        for point in sorted(mounts, key=len, reverse=True):
            run("umount", "-l", point, check=False)
        time.sleep(0.2)


def remove_tree(path):
    unmount_under(path)
    shutil.rmtree(path, ignore_errors=True)
