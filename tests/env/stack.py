#!/usr/bin/env python3
"""The test stack: real peers on 127.0.0.1, started once per ctest run.

  stack.py up --dir DIR [--real-node]
                               build or reuse the binaries, start etcd, kube-apiserver, moto_server,
                               the EC2 fault proxy in front of it and the IMDS emulator, bootstrap
                               RBAC from daemonset/ and EC2 state, and write DIR/stack.json and
                               DIR/stack.env. Also: a signature-checking moto with its own fault
                               proxy (auth-proxy), and a TCP stall proxy in front of the
                               kube-apiserver (stall-proxy) with a kubeconfig through it.
                               --real-node: instead of the extra proxies and the bootstrap of
                               daemonset/, a real one-node cluster (tests/env/node.py): the Node
                               authorizer, NodeRestriction and ServiceAccount admission,
                               kube-controller-manager, kube-scheduler, and containerd + kubelet
                               in a network namespace of the stack's own (label realcluster).
  stack.py down --dir DIR      stop every process of the stack (always safe to run)
  stack.py restart kube-apiserver|etcd|imds|fault-proxy --dir DIR
  stack.py compact --dir DIR   compact etcd at its current revision (forces 410 on old versions)
  stack.py version --dir DIR   print kube-apiserver's /version

No traffic leaves the machine: everything listens on 127.0.0.1, except the real node's relay,
on the host end of the node namespace's veth.
"""
import argparse
import base64
import datetime
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

import node

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REGION = "us-east-1"
AGENT_NS = "eni-agent"
AGENT_SA = "eni-agent"


def log(msg):
    print(f"stack: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout=90, proc_name=None, d=None):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            if check():
                return
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last = e
        if proc_name and d and not alive(d, proc_name):
            raise SystemExit(f"stack: {proc_name} exited while starting; see {d}/logs/{proc_name}.log")
        time.sleep(0.2)
    raise SystemExit(f"stack: {what} not ready after {timeout}s: {last}")


# ---------------------------------------------------------------- processes

def pid_file(d, name):
    return os.path.join(d, "pids", name)


def alive(d, name):
    try:
        pid = int(open(pid_file(d, name)).read())
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except (OSError, ValueError):
        return False


def spawn(d, name, argv, env=None):
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    os.makedirs(os.path.join(d, "pids"), exist_ok=True)
    logf = open(os.path.join(d, "logs", f"{name}.log"), "ab")
    # A new session, so that `down` can kill the whole group and nothing is left behind.
    p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True, env=env)
    with open(pid_file(d, name), "w") as f:
        f.write(str(p.pid))
    return p


def kill(d, name):
    try:
        pid = int(open(pid_file(d, name)).read())
    except (OSError, ValueError):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.time() + 10
        while time.time() < deadline and alive(d, name):
            time.sleep(0.1)
        if not alive(d, name):
            break
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.unlink(pid_file(d, name))
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------- certificates

def make_pki(d, extra_ips=(), node_name=None):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa, ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    pki = os.path.join(d, "pki")
    os.makedirs(pki, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def write_key(k, path):
        with open(path, "wb") as f:
            f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
        os.chmod(path, 0o600)

    def cert(subject, pub, issuer, issuer_key, ca=False, sans=None, client=False):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(pub)
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=7))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                              content_commitment=False, key_encipherment=False,
                                              data_encipherment=False, key_agreement=False,
                                              encipher_only=False, decipher_only=False), critical=True)
        else:
            usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
            b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    def write_cert(c, path):
        with open(path, "wb") as f:
            f.write(c.public_bytes(serialization.Encoding.PEM))

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eni-agent-test-ca")])
    ca_cert = cert(ca_name, ca_key.public_key(), ca_name, ca_key, ca=True)
    write_key(ca_key, f"{pki}/ca.key")
    write_cert(ca_cert, f"{pki}/ca.crt")

    srv_key = key()
    srv = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]), srv_key.public_key(),
               ca_name, ca_key,
               sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))] +
               [x509.IPAddress(ipaddress.ip_address(ip)) for ip in extra_ips])
    write_key(srv_key, f"{pki}/apiserver.key")
    write_cert(srv, f"{pki}/apiserver.crt")

    adm_key = key()
    adm = cert(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "eni-agent-test-admin")]),
               adm_key.public_key(), ca_name, ca_key, client=True)
    write_key(adm_key, f"{pki}/admin.key")
    write_cert(adm, f"{pki}/admin.crt")

    if node_name:
        # The kubelet's identity for the Node authorizer and NodeRestriction.
        kl_key = key()
        kl = cert(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                             x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node_name}")]),
                  kl_key.public_key(), ca_name, ca_key, client=True)
        write_key(kl_key, f"{pki}/kubelet.key")
        write_cert(kl, f"{pki}/kubelet.crt")

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_key(sa_key, f"{pki}/sa.key")
    with open(f"{pki}/sa.pub", "wb") as f:
        f.write(sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo))


def b64file(path):
    return base64.b64encode(open(path, "rb").read()).decode()


def write_kubeconfig(path, server, ca_path, user):
    cfg = {
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server,
                                                  "certificate-authority-data": b64file(ca_path)}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "u"}}],
        "users": [{"name": "u", "user": user}],
    }
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)  # JSON is YAML
    os.chmod(path, 0o600)


# ---------------------------------------------------------------- components

def binaries():
    out = subprocess.run(["bash", os.path.join(HERE, "build-binaries.sh")], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return dict(line.split("=", 1) for line in out.split() if "=" in line)


def start_etcd(d, st):
    data = os.path.join(d, "etcd-data")
    os.makedirs(data, exist_ok=True)
    client, peer = st["etcd_port"], st["etcd_peer_port"]
    spawn(d, "etcd", [
        os.path.join(st["etcd_bin_dir"], "etcd"), "--name", "test", "--data-dir", data,
        "--listen-client-urls", f"http://127.0.0.1:{client}",
        "--advertise-client-urls", f"http://127.0.0.1:{client}",
        "--listen-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-cluster", f"test=http://127.0.0.1:{peer}",
        "--unsafe-no-fsync", "--log-level", "warn", "--quota-backend-bytes", str(1 << 30),
    ])
    wait_for("etcd", lambda: urllib.request.urlopen(f"http://127.0.0.1:{client}/health", timeout=2).status == 200,
             proc_name="etcd", d=d)


def apiserver_ssl(d):
    ctx = ssl.create_default_context(cafile=f"{d}/pki/ca.crt")
    ctx.load_cert_chain(f"{d}/pki/admin.crt", f"{d}/pki/admin.key")
    return ctx


def admission_args(st):
    if st.get("real_node"):
        # A real node: the kubelet's writes are limited to its own Node and pods, and pods get
        # their ServiceAccount's projected token (the controller-manager makes the accounts).
        return ["--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction"]
    # No controller-manager runs here, so nothing creates namespaces' default ServiceAccount.
    return ["--authorization-mode", "RBAC", "--disable-admission-plugins", "ServiceAccount"]


def start_apiserver(d, st):
    pki = os.path.join(d, "pki")
    spawn(d, "kube-apiserver", [
        os.path.join(st["kube_bin_dir"], "kube-apiserver"),
        "--etcd-servers", f"http://127.0.0.1:{st['etcd_port']}",
        "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
        "--secure-port", str(st["apiserver_port"]),
        "--tls-cert-file", f"{pki}/apiserver.crt", "--tls-private-key-file", f"{pki}/apiserver.key",
        "--client-ca-file", f"{pki}/ca.crt",
        "--service-account-key-file", f"{pki}/sa.pub",
        "--service-account-signing-key-file", f"{pki}/sa.key",
        "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
        "--service-cluster-ip-range", "10.96.0.0/24",
        "--endpoint-reconciler-type", "none",
        *admission_args(st),
        # As EKS and kubeadm clusters: the chart's dpdk.enabled renders a privileged container,
        # which an API server without it refuses ("disallowed by cluster policy").
        "--allow-privileged=true",
        "--enable-priority-and-fairness=false", "--profiling=false",
        "--cert-dir", os.path.join(d, "apiserver-certs"),
        "--v", "1",
    ])
    ctx = apiserver_ssl(d)
    url = f"https://127.0.0.1:{st['apiserver_port']}/readyz"
    wait_for("kube-apiserver", lambda: urllib.request.urlopen(url, context=ctx, timeout=2).status == 200,
             timeout=120, proc_name="kube-apiserver", d=d)


def start_moto(d, st):
    # moto's own server, plus the ENI trunking EC2 has and moto lacks (tests/env/moto_server.py).
    try:
        import moto  # noqa: F401
    except ImportError:
        raise SystemExit("stack: moto not found; run scripts/setup.sh (pip install 'moto[server]')")
    spawn(d, "moto", [sys.executable, os.path.join(HERE, "moto_server.py"),
                      "-H", "127.0.0.1", "-p", str(st["moto_port"])])
    wait_for("moto_server", lambda: urllib.request.urlopen(
        f"http://127.0.0.1:{st['moto_port']}/moto-api/", timeout=2).status == 200, proc_name="moto", d=d)


def start_moto_auth(d, st):
    """A second moto that checks SigV4 signatures and IAM policies after its first three actions,
    which create the one IAM user whose keys the signature tests use."""
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    spawn(d, "moto-auth", [sys.executable, os.path.join(HERE, "moto_server.py"),
                           "-H", "127.0.0.1", "-p", str(st["moto_auth_port"])], env=env)
    endpoint = f"http://127.0.0.1:{st['moto_auth_port']}"
    wait_for("moto_server (auth)", lambda: urllib.request.urlopen(endpoint + "/moto-api/", timeout=2).status == 200,
             proc_name="moto-auth", d=d)
    import boto3
    iam = boto3.client("iam", region_name=REGION, endpoint_url=endpoint,
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName="eni-agent-test")
    key = iam.create_access_key(UserName="eni-agent-test")["AccessKey"]
    iam.put_user_policy(UserName="eni-agent-test", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    st.update(moto_auth_endpoint=endpoint, moto_auth_access_key_id=key["AccessKeyId"],
              moto_auth_secret_access_key=key["SecretAccessKey"])


def start_fault_proxy(d, st):
    port_file = os.path.join(d, "fault-proxy.port")
    if os.path.exists(port_file):
        os.unlink(port_file)
    spawn(d, "fault-proxy", [sys.executable, os.path.join(HERE, "fault_proxy.py"),
                             "--upstream", st["moto_endpoint"], "--port", str(st.get("ec2_proxy_port", 0)),
                             "--port-file", port_file])
    wait_for("EC2 fault proxy", lambda: os.path.getsize(port_file) > 0, proc_name="fault-proxy", d=d)
    st["ec2_proxy_port"] = int(open(port_file).read())
    st["ec2_proxy_endpoint"] = f"http://127.0.0.1:{st['ec2_proxy_port']}"


def start_auth_proxy(d, st):
    """The fault proxy in front of the signature-checking moto: tests count what an agent with
    refused credentials sends."""
    port_file = os.path.join(d, "auth-proxy.port")
    if os.path.exists(port_file):
        os.unlink(port_file)
    spawn(d, "auth-proxy", [sys.executable, os.path.join(HERE, "fault_proxy.py"),
                            "--upstream", st["moto_auth_endpoint"], "--port", str(st.get("auth_proxy_port", 0)),
                            "--port-file", port_file])
    wait_for("auth fault proxy", lambda: os.path.getsize(port_file) > 0, proc_name="auth-proxy", d=d)
    st["auth_proxy_port"] = int(open(port_file).read())
    st["auth_proxy_endpoint"] = f"http://127.0.0.1:{st['auth_proxy_port']}"


def start_stall_proxy(d, st):
    """A TCP relay in front of the kube-apiserver that can stop forwarding while connections stay
    up (a hung load balancer); DIR/stall.kubeconfig is the agent's kubeconfig through it."""
    ports_file = os.path.join(d, "stall-proxy.ports")
    if os.path.exists(ports_file):
        os.unlink(ports_file)
    spawn(d, "stall-proxy", [sys.executable, os.path.join(HERE, "stall_proxy.py"),
                             "--upstream", f"127.0.0.1:{st['apiserver_port']}",
                             "--port", str(st.get("stall_proxy_port", 0)),
                             "--control-port", str(st.get("stall_proxy_control_port", 0)),
                             "--ports-file", ports_file])
    wait_for("stall proxy", lambda: os.path.getsize(ports_file) > 0, proc_name="stall-proxy", d=d)
    ports = json.load(open(ports_file))
    st["stall_proxy_port"] = ports["port"]
    st["stall_proxy_control_port"] = ports["control_port"]
    st["stall_proxy_control"] = f"http://127.0.0.1:{ports['control_port']}"
    st["stall_kubeconfig"] = os.path.join(d, "stall.kubeconfig")


def start_imds(d, st):
    port_file = os.path.join(d, "imds.port")
    if os.path.exists(port_file):
        os.unlink(port_file)
    spawn(d, "imds", [sys.executable, os.path.join(HERE, "imds_emulator.py"),
                      "--moto-endpoint", st["moto_endpoint"], "--region", REGION,
                      "--instance-id", st["instance_id"], "--port", str(st.get("imds_port", 0)),
                      "--port-file", port_file])
    wait_for("IMDS emulator", lambda: os.path.getsize(port_file) > 0, proc_name="imds", d=d)
    st["imds_port"] = int(open(port_file).read())
    st["imds_endpoint"] = f"http://127.0.0.1:{st['imds_port']}"


# ---------------------------------------------------------------- bootstrap

def kubectl(st, *args, input=None):
    return subprocess.run([st["kubectl"], "--kubeconfig", st["admin_kubeconfig"], *args],
                          check=True, stdout=subprocess.PIPE, text=True, input=input).stdout


def bootstrap_kube(d, st):
    # Everything but the admission policy: it refuses the agent ServiceAccount's writes unless its
    # token is bound to a pod (the node claim), and the tests' agents use the unbound token made
    # below. tests/integration/admission_policy_test.cpp applies it for a ServiceAccount of its own.
    kubectl(st, "apply", "-k", os.path.join(ROOT, "daemonset"),
            "--selector", "eni-agent.io/component!=admission-policy")
    kubectl(st, "wait", "--for=condition=Established", "crd/nodeenis.networking.k8s.aws",
            "crd/nodeeniattachments.networking.k8s.aws", "--timeout=60s")
    token = kubectl(st, "create", "token", AGENT_SA, "-n", AGENT_NS, "--duration=48h").strip()
    token_file = os.path.join(d, "agent.token")
    with open(token_file, "w") as f:
        f.write(token)
    os.chmod(token_file, 0o600)
    write_kubeconfig(st["agent_kubeconfig"], st["apiserver_url"], f"{d}/pki/ca.crt", {"tokenFile": token_file})
    write_kubeconfig(st["stall_kubeconfig"], f"https://127.0.0.1:{st['stall_proxy_port']}", f"{d}/pki/ca.crt",
                     {"tokenFile": token_file})


def bootstrap_ec2(st):
    import boto3
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=st["moto_endpoint"],
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = {}
    # "c" is large because moto picks private IPs at random without checking for duplicates:
    # tests that create many ENIs use it so that no two ENIs share an address.
    for name, cidr, az in (("a", "10.0.1.0/24", "us-east-1a"), ("b", "10.0.2.0/24", "us-east-1a"),
                           ("c", "10.0.128.0/17", "us-east-1a")):
        sn = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
        ec2.create_tags(Resources=[sn], Tags=[{"Key": "Name", "Value": f"eni-agent-test-{name}"}])
        subnets[name] = sn
    sg = ec2.create_security_group(GroupName="eni-agent-test", Description="test", VpcId=vpc)["GroupId"]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    inst = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="m5.large",
                             SubnetId=subnets["a"], SecurityGroupIds=[sg])["Instances"][0]
    # The node's trunk ENI, as the VPC resource controller attaches one for security groups for
    # pods: branch ENIs of the tests are associated with it (tests/env/moto_server.py). A high
    # device index keeps it out of the way of the indexes tests ask for.
    trunk = ec2.create_network_interface(SubnetId=subnets["a"], InterfaceType="trunk",
                                         Description="trunk for security groups for pods")
    trunk = trunk["NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(NetworkInterfaceId=trunk, InstanceId=inst["InstanceId"], DeviceIndex=99)
    st.update(vpc_id=vpc, subnet_a=subnets["a"], subnet_b=subnets["b"], subnet_c=subnets["c"], security_group_id=sg,
              instance_id=inst["InstanceId"], trunk_eni_id=trunk)
    if st.get("real_node"):
        # The real node's pod ENI, as the VPC CNI attaches one: its secondary IPs are the CNI's
        # host-local range (node.write_cni), so a pod's real IP resolves through IMDS to it.
        ips = ["10.0.2.10", "10.0.2.11", "10.0.2.12", "10.0.2.13"]
        eni = ec2.create_network_interface(
            SubnetId=subnets["b"], Description="real node pod ENI",
            PrivateIpAddresses=[{"PrivateIpAddress": ip, "Primary": i == 0} for i, ip in enumerate(ips)])
        eni = eni["NetworkInterface"]["NetworkInterfaceId"]
        ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=inst["InstanceId"], DeviceIndex=2)
        st.update(pod_eni_id=eni, pod_eni_ips=ips[1:], pod_eni_cidr="10.0.2.0/24")


def write_outputs(d, st):
    with open(os.path.join(d, "stack.json"), "w") as f:
        json.dump(st, f, indent=2)
    with open(os.path.join(d, "stack.env"), "w") as f:
        for k, v in sorted(st.items()):
            f.write(f"ENI_STACK_{k.upper()}={v}\n")


def load(d):
    with open(os.path.join(d, "stack.json")) as f:
        return json.load(f)


# ---------------------------------------------------------------- commands

def cmd_up(d, real_node=False):
    d = os.path.abspath(d)
    cmd_down(d, quiet=True)
    # Every run starts from empty etcd, moto and PKI state.
    if os.path.isdir(d):
        node.remove_tree(d)
    os.makedirs(d)
    bins = binaries()
    kube_bin, etcd_bin = bins["KUBE_BIN_DIR"], bins["ETCD_BIN_DIR"]
    kubectl_bin = os.path.join(kube_bin, "kubectl")
    st = {
        "dir": d, "region": REGION, "kube_bin_dir": kube_bin, "etcd_bin_dir": etcd_bin, "kubectl": kubectl_bin,
        "kube_node_bin_dir": bins["KUBE_NODE_BIN_DIR"], "helm": os.path.join(bins["HELM_BIN_DIR"], "helm"),
        "real_node": real_node,
        "etcd_port": free_port(), "etcd_peer_port": free_port(), "apiserver_port": free_port(),
        "moto_port": free_port(), "moto_auth_port": free_port(),
        "admin_kubeconfig": os.path.join(d, "admin.kubeconfig"),
        "agent_kubeconfig": os.path.join(d, "agent.kubeconfig"),
    }
    st["apiserver_url"] = f"https://127.0.0.1:{st['apiserver_port']}"
    st["etcd_endpoint"] = f"http://127.0.0.1:{st['etcd_port']}"
    st["moto_endpoint"] = f"http://127.0.0.1:{st['moto_port']}"
    t0 = time.time()
    if real_node:
        node.plan(d, st)
        write_outputs(d, st)  # so that `down` finds the node's namespace, whatever happens next
        make_pki(d, extra_ips=[st["node_host_ip"], st["service_vip"]], node_name=st["node_name"])
    else:
        make_pki(d)
    write_kubeconfig(st["admin_kubeconfig"], st["apiserver_url"], f"{d}/pki/ca.crt",
                     {"client-certificate-data": b64file(f"{d}/pki/admin.crt"),
                      "client-key-data": b64file(f"{d}/pki/admin.key")})
    try:
        start_etcd(d, st)
        start_apiserver(d, st)
        start_moto(d, st)
        start_fault_proxy(d, st)
        if real_node:
            bootstrap_ec2(st)
            start_imds(d, st)
            node.up(d, st, {"spawn": spawn, "wait_for": wait_for, "kubectl": kubectl,
                            "write_kubeconfig": write_kubeconfig})
        else:
            start_moto_auth(d, st)
            start_auth_proxy(d, st)
            start_stall_proxy(d, st)
            bootstrap_ec2(st)
            start_imds(d, st)
            bootstrap_kube(d, st)
    except BaseException:
        if real_node:
            node.down(d, st, kill)
        cmd_down(d, quiet=True)
        raise
    write_outputs(d, st)
    version = json.loads(urllib.request.urlopen(st["apiserver_url"] + "/version", context=apiserver_ssl(d)).read())
    log(f"up in {time.time() - t0:.1f}s: kube-apiserver {version['gitVersion']} at {st['apiserver_url']}, "
        f"etcd at {st['etcd_endpoint']}, moto at {st['moto_endpoint']} (fault proxy at {st['ec2_proxy_endpoint']}), "
        f"IMDS at {st['imds_endpoint']}")


def cmd_down(d, quiet=False):
    d = os.path.abspath(d)
    try:
        st = load(d)
    except (OSError, ValueError):
        st = {}
    if st.get("real_node"):
        node.down(d, st, kill)
    for name in ("stall-proxy", "auth-proxy", "fault-proxy", "imds", "moto-auth", "moto", "kube-apiserver",
                 "etcd"):
        if os.path.exists(pid_file(d, name)):
            kill(d, name)
            if not quiet:
                log(f"stopped {name}")


def cmd_restart(d, name):
    st = load(d)
    kill(d, name)
    if name == "kube-apiserver":
        start_apiserver(d, st)
    elif name == "etcd":
        start_etcd(d, st)
    elif name == "imds":
        start_imds(d, st)
    elif name == "fault-proxy":
        start_fault_proxy(d, st)
    else:
        raise SystemExit(f"stack: cannot restart {name}")
    log(f"restarted {name}")


def cmd_stop(d, name):
    kill(d, name)


def cmd_compact(d):
    st = load(d)

    def post(path, body):
        req = urllib.request.Request(st["etcd_endpoint"] + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=10).read())

    rev = int(post("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"])
    post("/v3/kv/compaction", {"revision": str(rev), "physical": True})
    print(rev)


def cmd_version(d):
    st = load(d)
    print(urllib.request.urlopen(st["apiserver_url"] + "/version", context=apiserver_ssl(d)).read().decode())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["up", "down", "restart", "stop", "compact", "version"])
    ap.add_argument("name", nargs="?")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--real-node", action="store_true", help="up: a real one-node cluster (label realcluster)")
    a = ap.parse_args()
    if a.command == "up":
        cmd_up(a.dir, a.real_node)
    elif a.command == "down":
        cmd_down(a.dir)
    elif a.command == "restart":
        cmd_restart(a.dir, a.name)
    elif a.command == "stop":
        cmd_stop(a.dir, a.name)
    elif a.command == "compact":
        cmd_compact(a.dir)
    elif a.command == "version":
        cmd_version(a.dir)


if __name__ == "__main__":
    main()
