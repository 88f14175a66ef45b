#!/usr/bin/env python3
"""The .deb of this build, installed and run by systemd as PID 1, against the test stack.

deb_under_systemd.py <build dir> <stack dir>

Boots a minimal Debian root (debian_root.py, cached) with systemd-nspawn, `dpkg -i`s the package
CPack makes from this build, configures it as docs/host-mode.md tells an operator to, and checks
what systemd says (`systemctl show`, the journal, `systemd-analyze security`), what moto holds,
and what removing and purging the package leave. Every wait is a bounded poll; nothing is timed.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debian_root  # noqa: E402
from container import Container, Relay  # noqa: E402

import boto3  # noqa: E402

UNIT = "eni-agent.service"
DEVICE_INDEX = 6
NODE_ENI = "host-%d" % DEVICE_INDEX
MTU = 9001
HASH_KEY = "eni-tagger.io/hash"
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)
    return ok


def require(ok, what):
    if not check(ok, what):
        raise SystemExit("FAIL: cannot go on: " + what)


def poll(fn, limit_s, every_s=0.5):
    """fn() until it returns something true, at most limit_s (a bound on failure)."""
    deadline = time.monotonic() + limit_s
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every_s)


def control(url):
    urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=10).read()


class Aws:
    """moto, read directly (not through the fault proxy, so the agent's counts stay its own)."""

    def __init__(self, stack):
        self.stack = stack
        self.ec2 = boto3.client("ec2", region_name=stack["region"],
                                endpoint_url=stack["moto_endpoint"],
                                aws_access_key_id="testing", aws_secret_access_key="testing")

    def instance_enis(self):
        return self.ec2.describe_network_interfaces(Filters=[
            {"Name": "attachment.instance-id", "Values": [self.stack["instance_id"]]}
        ])["NetworkInterfaces"]

    def agent_enis(self):
        return self.ec2.describe_network_interfaces(Filters=[
            {"Name": "tag:eni-agent.io/instance-id", "Values": [self.stack["instance_id"]]},
            {"Name": "tag:NodeENI", "Values": [NODE_ENI]}])["NetworkInterfaces"]

    def primary_tags(self):
        for e in self.instance_enis():
            if e["Attachment"]["DeviceIndex"] == 0:
                return {t["Key"]: t["Value"] for t in e.get("TagSet", [])}
        return {}

    def clean(self, keys):
        """Takes back what the test's agent left: its ENI, and its tags on the instance's ENIs."""
        for e in self.agent_enis():
            if e.get("Attachment"):
                self.ec2.detach_network_interface(AttachmentId=e["Attachment"]["AttachmentId"],
                                                  Force=True)
            self.ec2.delete_network_interface(NetworkInterfaceId=e["NetworkInterfaceId"])
        ids = [e["NetworkInterfaceId"] for e in self.instance_enis()]
        if ids:
            self.ec2.delete_tags(Resources=ids, Tags=[{"Key": k} for k in keys + [HASH_KEY]])


def host_json(stack, tags, mtu=MTU):
    return json.dumps({"tags": tags, "interfaces": [{
        "subnetID": stack["subnet_c"], "securityGroupIDs": [stack["security_group_id"]],
        "deviceIndex": DEVICE_INDEX, "mtu": mtu}]}, indent=2) + "\n"


def build_deb(build, out):
    subprocess.run(["cpack", "-G", "DEB", "--config", os.path.join(build, "CPackConfig.cmake"),
                    "-B", out], check=True, capture_output=True, timeout=600)
    debs = [f for f in os.listdir(out) if f.endswith(".deb")]
    require(len(debs) == 1, "cpack made one .deb: %s" % debs)
    return os.path.join(out, debs[0])


def journal(c, *args):
    out = c.run(["journalctl", "-u", UNIT, "-o", "json", "--no-pager", *args]).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def messages(c, text):
    return [e for e in journal(c) if text in str(e.get("MESSAGE", ""))]


class Watchdog:
    """Every WatchdogTimestamp systemd showed: each new one is a WATCHDOG=1 it took."""

    def __init__(self):
        self.stamps = set()
        self.pids = set()
        self.restarts = set()

    def sample(self, c):
        s = c.show(UNIT, "WatchdogTimestampMonotonic", "MainPID", "NRestarts", "ActiveState")
        if s.get("WatchdogTimestampMonotonic", "0") != "0":
            self.stamps.add(s["WatchdogTimestampMonotonic"])
        if s.get("MainPID", "0") != "0":
            self.pids.add(s["MainPID"])
        self.restarts.add(s.get("NRestarts", "?"))
        return s


def install(c, deb_name):
    r = c.run(["dpkg", "-i", "/root/" + deb_name], check=False)
    require(r.returncode == 0, "dpkg -i %s: exit %d %s%s" % (deb_name, r.returncode, r.stdout,
                                                              r.stderr))
    user = c.run(["getent", "passwd", "eni-agent"], check=False).stdout.strip()
    check(user.startswith("eni-agent:") and user.endswith(":/var/lib/eni-agent:/usr/sbin/nologin"),
          "postinst made the system user: %s" % user)
    s = c.show(UNIT, "LoadState", "UnitFileState", "ActiveState", "FragmentPath")
    check(s == {"LoadState": "loaded", "UnitFileState": "disabled", "ActiveState": "inactive",
                "FragmentPath": "/lib/systemd/system/eni-agent.service"},
          "the unit is loaded, disabled and inactive after install: %s" % s)


def configure(c, stack):
    """As docs/host-mode.md tells an operator: host.json from the example, endpoints in a drop-in,
    keys in a root-only environment file."""
    c.run(["install", "-D", "-m", "0644", "/usr/share/doc/eni-agent/host.json.example",
           "/etc/eni-agent/host.json"])
    c.run(["sh", "-c", "cat > /etc/eni-agent/host.json"],
          input=host_json(stack, {"SystemdTest": "v1"}))
    c.run(["sh", "-c", "umask 077 && cat > /etc/eni-agent/aws.env"],
          input="AWS_ACCESS_KEY_ID=AKIATESTING\nAWS_SECRET_ACCESS_KEY=testing\n")
    c.run(["mkdir", "-p", "/etc/systemd/system/eni-agent.service.d"])
    c.run(["sh", "-c", "cat > /etc/systemd/system/eni-agent.service.d/aws.conf"], input=(
        "[Service]\n"
        "Environment=AWS_EC2_METADATA_SERVICE_ENDPOINT=%s\n"
        "Environment=AWS_ENDPOINT_URL_EC2=%s\n"
        "Environment=AWS_REGION=%s\n"
        "EnvironmentFile=/etc/eni-agent/aws.env\n") % (
            stack["imds_endpoint"], stack["ec2_proxy_endpoint"], stack["region"]))
    c.run(["systemctl", "daemon-reload"])


def not_active_before_ready(c, stack, watchdog):
    """IMDS down: the agent runs, feeds the watchdog, tells why, and systemd keeps it activating."""
    control(stack["imds_endpoint"] + "/_emulator/down")
    c.run(["systemctl", "enable", "--now", "--no-block", "eni-agent"])
    seen = []

    def waited():
        s = watchdog.sample(c)
        # The start job may not have run yet at the first look.
        if seen or s["ActiveState"] != "inactive":
            seen.append(s["ActiveState"])
        return len(watchdog.stamps) >= 3 or s["ActiveState"] not in ("inactive", "activating")
    poll(waited, 100)
    s = c.show(UNIT, "ActiveState", "SubState", "StatusText", "WatchdogUSec", "UnitFileState")
    check(set(seen) == {"activating"}, "activating, never active, while IMDS is down: %d looks, %s"
          % (len(seen), sorted(set(seen))))
    check(s["SubState"] == "start" and s["StatusText"].startswith("not ready: "),
          "SubState start, StatusText says why: %s / %s" % (s["SubState"], s["StatusText"]))
    check(s["WatchdogUSec"] == "30s", "WatchdogUSec is the unit's 30s: %s" % s["WatchdogUSec"])
    check(len(watchdog.stamps) >= 3, "the watchdog is fed while it waits (%d stamps seen)" %
          len(watchdog.stamps))
    check(s["UnitFileState"] == "enabled", "enabled: %s" % s["UnitFileState"])

    control(stack["imds_endpoint"] + "/_emulator/up")
    states = []

    def active():
        s = watchdog.sample(c)
        states.append(s["ActiveState"])
        return s["ActiveState"] != "activating"
    poll(active, 120)
    s = c.show(UNIT, "ActiveState", "SubState", "StatusText", "ActiveEnterTimestampMonotonic")
    require(s["ActiveState"] == "active" and s["SubState"] == "running",
            "active (running) once IMDS answers: %s" % s)
    check("interfaces attached" in s["StatusText"] and not s["StatusText"].startswith("not ready"),
          "StatusText is the pass's summary: %s" % s["StatusText"])
    ready = messages(c, "first full reconcile done")
    check(len(ready) == 1 and int(ready[0]["__MONOTONIC_TIMESTAMP"]) <=
          int(s["ActiveEnterTimestampMonotonic"]),
          "active only after the first full reconcile (READY=1 follows that log line)")


def applied(c, aws, stack):
    """What the first pass did, seen in moto and in the container's network namespace."""
    tags = poll(lambda: aws.primary_tags().get("SystemdTest") == "v1" and aws.primary_tags(), 30)
    check(bool(tags) and HASH_KEY in tags, "the instance's ENIs are tagged: %s" % tags)
    mine = aws.agent_enis()
    require(len(mine) == 1 and mine[0].get("Attachment", {}).get("InstanceId") ==
            stack["instance_id"], "one ENI for %s, attached to the instance" % NODE_ENI)
    # The kernel announces the ENI's interface: the agent, as the eni-agent user with
    # CAP_NET_ADMIN from the unit, sets its MTU and brings it up.
    mac = mine[0]["MacAddress"]
    subprocess.run(["nsenter", "-t", str(c.pid), "-n", "ip", "link", "add", "sdeni0", "address",
                    mac, "type", "veth", "peer", "name", "sdeni0p"], check=True, timeout=30)

    def up():
        out = subprocess.run(["nsenter", "-t", str(c.pid), "-n", "ip", "-j", "link", "show",
                              "sdeni0"], capture_output=True, text=True, timeout=30).stdout
        link = json.loads(out or "[{}]")[0]
        return "UP" in link.get("flags", []) and link.get("mtu") == MTU and link
    link = poll(up, 60)
    check(bool(link), "the ENI's link comes up with MTU %d" % MTU)


def privileges(c):
    pid = c.show(UNIT, "MainPID")["MainPID"]
    status = dict(line.split(":", 1) for line in
                  c.run(["cat", "/proc/%s/status" % pid]).stdout.splitlines() if ":" in line)
    uid = c.run(["id", "-u", "eni-agent"]).stdout.strip()
    check(status["Uid"].split() == [uid] * 4, "runs as eni-agent (%s): Uid %s" %
          (uid, status["Uid"].strip()))
    net_admin = "%016x" % (1 << 12)
    caps = {k: status[k].strip() for k in ("CapEff", "CapPrm", "CapAmb", "CapBnd")}
    check(all(v == net_admin for v in caps.values()), "CAP_NET_ADMIN alone: %s" % caps)
    check(status["NoNewPrivs"].strip() == "1", "no_new_privs")
    ls = c.run(["stat", "-c", "%n %U:%G %a", "/etc/eni-agent", "/etc/eni-agent/host.json",
                "/etc/eni-agent/aws.env", "/var/lib/eni-agent",
                "/var/lib/eni-agent/state.json"]).stdout.split("\n")
    print("\n".join("     " + line for line in ls if line))
    check(ls[:5] == ["/etc/eni-agent root:root 755", "/etc/eni-agent/host.json root:root 644",
                     "/etc/eni-agent/aws.env root:root 600",
                     "/var/lib/eni-agent eni-agent:eni-agent 755",
                     "/var/lib/eni-agent/state.json eni-agent:eni-agent 644"],
          "owners and modes of the config and the state")
    status_cmd = c.run(["runuser", "-u", "nobody", "--", "eni-agent", "status", "--mode", "host",
                        "--output", "json"], check=False)
    check(status_cmd.returncode == 0 and NODE_ENI in status_cmd.stdout,
          "`eni-agent status` works for any user: exit %d %s" % (status_cmd.returncode,
                                                                 status_cmd.stderr.strip()))


def reload(c, aws, stack):
    c.run(["sh", "-c", "cat > /etc/eni-agent/host.json"],
          input=host_json(stack, {"SystemdTest": "v2", "Reloaded": "yes"}))
    c.run(["systemctl", "reload", "eni-agent"])
    tags = poll(lambda: aws.primary_tags().get("Reloaded") == "yes" and aws.primary_tags(), 60)
    check(bool(tags) and tags.get("SystemdTest") == "v2",
          "systemctl reload applies the new host.json: %s" % tags)
    check(len(messages(c, "host config reloaded")) == 1, "the journal says: host config reloaded")

    c.run(["sh", "-c", "cat > /etc/eni-agent/host.json"],
          input=host_json(stack, {"SystemdTest": "v3"}, mtu=12000))
    c.run(["systemctl", "reload", "eni-agent"])
    rejected = poll(lambda: messages(c, "the old one stays in force"), 60)
    check(bool(rejected) and "interfaces[0].mtu: 12000" in rejected[0].get("ERROR", "") and
          rejected[0].get("PRIORITY") == "3",
          "an invalid host.json is rejected at priority 3, naming the field: %s" %
          (rejected[0].get("ERROR") if rejected else None))
    s = c.show(UNIT, "ActiveState", "StatusText")
    check(s["ActiveState"] == "active" and s["StatusText"].startswith("new config rejected"),
          "still active; StatusText says the new config was rejected: %s" % s["StatusText"])
    tags = aws.primary_tags()
    check(tags.get("SystemdTest") == "v2" and tags.get("Reloaded") == "yes",
          "the old config's tags stay: %s" % tags)
    # Valid again, for the restarts below.
    c.run(["sh", "-c", "cat > /etc/eni-agent/host.json"],
          input=host_json(stack, {"SystemdTest": "v2", "Reloaded": "yes"}))


def structured_journal(c):
    entries = journal(c)
    attached = [e for e in entries if e.get("MESSAGE") == "attached ENI"]
    check(len(attached) == 1 and attached[0].get("ENI", "").startswith("eni-") and
          attached[0].get("DEVICE_INDEX") == str(DEVICE_INDEX) and
          attached[0].get("PRIORITY") == "6" and
          attached[0].get("SYSLOG_IDENTIFIER") == "eni-agent" and
          attached[0].get("_SYSTEMD_UNIT") == UNIT,
          "journalctl -o json: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, ENI=, DEVICE_INDEX=: %s" %
          {k: v for k, v in (attached[0] if attached else {}).items() if not k.startswith("_")})
    check(not any(e.get("MESSAGE", "").startswith("{") for e in entries),
          "no JSON lines in MESSAGE: the journal gets fields, not stderr text")


def security(c):
    out = c.run(["systemd-analyze", "security", "--no-pager", UNIT]).stdout
    line = [x for x in out.splitlines() if x.startswith("→ Overall exposure level")]
    score = float(line[0].split(":")[1].split()[0]) if line else 99.0
    check(score <= 2.0, "systemd-analyze security of the installed unit: %s" %
          (line[0] if line else out[-300:]))


def watchdog_and_stop(c, watchdog):
    # The watchdog's interval is 30 s and the agent pings at half of it: five pings span two
    # whole intervals in which systemd would have killed a silent agent.
    poll(lambda: watchdog.sample(c) and len(watchdog.stamps) >= 5, 100, every_s=2)
    check(len(watchdog.stamps) >= 5 and watchdog.restarts == {"0"} and len(watchdog.pids) == 1,
          "watchdog fed: %d WatchdogTimestamps, NRestarts %s, one MainPID %s" %
          (len(watchdog.stamps), sorted(watchdog.restarts), sorted(watchdog.pids)))
    c.run(["systemctl", "stop", "eni-agent"])
    s = c.show(UNIT, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    check(s == {"ActiveState": "inactive", "Result": "success", "ExecMainCode": "1",
                "ExecMainStatus": "0"}, "systemctl stop: exited 0 (%s)" % s)


def remove_and_purge(c, aws):
    c.run(["systemctl", "start", "eni-agent"], timeout=180)
    require(c.show(UNIT, "ActiveState")["ActiveState"] == "active", "started again (warm)")
    check(len(messages(c, "first full reconcile done")) == 2, "ready again after the restart")
    before = len(messages(c, "stopping"))
    r = c.run(["dpkg", "-r", "eni-agent"], check=False)
    require(r.returncode == 0, "dpkg -r: exit %d %s%s" % (r.returncode, r.stdout, r.stderr))
    s = c.show(UNIT, "LoadState", "ActiveState")
    check(s == {"LoadState": "not-found", "ActiveState": "inactive"},
          "dpkg -r stopped the agent and the unit is gone: %s" % s)
    check(c.run(["pgrep", "-x", "eni-agent"], check=False).returncode == 1, "no eni-agent runs")
    check(len(messages(c, "stopping")) == before + 1, "prerm stopped it with SIGTERM (it logged "
          "\"stopping\")")
    check(not c.run(["test", "-e", "/etc/systemd/system/multi-user.target.wants/" + UNIT],
                    check=False).returncode == 0, "disabled: no multi-user.target.wants link")
    mine = aws.agent_enis()
    check(len(mine) == 1 and mine[0].get("Attachment") and
          {t["Key"]: t["Value"] for t in mine[0]["TagSet"]}.get("Reloaded") == "yes",
          "dpkg -r leaves the ENI attached and tagged")
    check(aws.primary_tags().get("Reloaded") == "yes", "dpkg -r leaves the tags")
    for path in ("/var/lib/eni-agent/state.json", "/etc/eni-agent/host.json"):
        check(c.run(["test", "-f", path], check=False).returncode == 0, "dpkg -r keeps " + path)

    r = c.run(["dpkg", "--purge", "eni-agent"], check=False)
    require(r.returncode == 0, "dpkg --purge: exit %d %s%s" % (r.returncode, r.stdout, r.stderr))
    check(c.run(["test", "-e", "/var/lib/eni-agent"], check=False).returncode != 0,
          "dpkg --purge deletes /var/lib/eni-agent")
    check(c.run(["test", "-f", "/etc/eni-agent/host.json"], check=False).returncode == 0,
          "dpkg --purge keeps the operator's /etc/eni-agent/host.json")
    check(len(aws.agent_enis()) == 1 and aws.primary_tags().get("Reloaded") == "yes",
          "dpkg --purge leaves the ENI and the tags")
    state = c.run(["dpkg-query", "-W", "-f", "${Status}", "eni-agent"], check=False).stdout
    check(state in ("", "unknown ok not-installed", "deinstall ok not-installed"),
          "the package is gone: %r" % state)
    check(c.run(["getent", "passwd", "eni-agent"], check=False).returncode == 0,
          "the eni-agent user stays")


def reinstall(c, aws, stack, deb_name):
    """Purged and installed again: the agent starts cold, with the operator's host.json and
    drop-in still there, and finds its ENI by its tags instead of making a second one."""
    control(stack["ec2_proxy_endpoint"] + "/_proxy/reset")
    c.run(["dpkg", "-i", "/root/" + deb_name])
    c.run(["systemctl", "enable", "--now", "eni-agent"], timeout=180)
    require(c.show(UNIT, "ActiveState")["ActiveState"] == "active", "active after reinstalling")
    stats = json.loads(urllib.request.urlopen(stack["ec2_proxy_endpoint"] + "/_proxy/stats",
                                              timeout=10).read())["requests"]
    check(len(aws.agent_enis()) == 1 and stats.get("CreateNetworkInterface", 0) == 0,
          "a cold start after purge makes no second ENI: %d ENI(s), EC2 calls %s" %
          (len(aws.agent_enis()), stats))
    # Installing over it, as an upgrade does: postinst restarts the running agent on the new files.
    before = c.show(UNIT, "MainPID")["MainPID"]
    c.run(["dpkg", "-i", "/root/" + deb_name], timeout=180)
    s = c.show(UNIT, "ActiveState", "MainPID", "UnitFileState")
    check(s["ActiveState"] == "active" and s["MainPID"] not in ("0", before) and
          s["UnitFileState"] == "enabled",
          "dpkg -i over a running agent restarts it (MainPID %s -> %s) and keeps it enabled" %
          (before, s["MainPID"]))
    c.run(["systemctl", "stop", "eni-agent"])


def boot(work, deb):
    depends = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True, text=True,
                             check=True).stdout.strip()
    packages = debian_root.runtime_packages(depends)
    tarball = debian_root.ensure_tarball(packages, sys.stdout)
    root = os.path.join(work, "root")
    debian_root.unpack(tarball, root)
    subprocess.run(["cp", deb, os.path.join(root, "root")], check=True)
    c = Container(root, "eni-systemd-%d" % os.getpid(), os.path.join(work, "nspawn.log"))
    # Until PID 1 has made its socket, systemctl fails to connect; then --wait waits for boot.
    state = poll(lambda: c.run(["systemctl", "is-system-running", "--wait"], check=False,
                               timeout=180).stdout.strip(), 60, every_s=0.2)
    if not check(state == "running", "systemd as PID 1 is running: %s" % state):
        print(c.run(["systemctl", "--failed", "--no-pager"], check=False).stdout)
    version = c.run(["systemctl", "--version"]).stdout.splitlines()[0]
    print("     in the container: " + version, flush=True)
    return c


def main():
    build, stack_dir = sys.argv[1:3]
    stack = json.load(open(os.path.join(stack_dir, "stack.json")))
    aws = Aws(stack)
    work = tempfile.mkdtemp(prefix="eni-systemd-", dir="/var/tmp")
    c = relay = None
    try:
        deb = build_deb(build, work)
        c = boot(work, deb)
        ports = [int(stack[k].rsplit(":", 1)[1]) for k in ("imds_endpoint", "ec2_proxy_endpoint")]
        relay = Relay(c.netns(), ports)
        watchdog = Watchdog()
        install(c, os.path.basename(deb))
        configure(c, stack)
        not_active_before_ready(c, stack, watchdog)
        applied(c, aws, stack)
        privileges(c)
        security(c)
        reload(c, aws, stack)
        structured_journal(c)
        watchdog_and_stop(c, watchdog)
        remove_and_purge(c, aws)
        reinstall(c, aws, stack, os.path.basename(deb))
    finally:
        control(stack["imds_endpoint"] + "/_emulator/up")
        if c:
            if failures:
                print(c.run(["journalctl", "-u", UNIT, "--no-pager"], check=False).stdout[-6000:])
            check(c.stop() == 0, "the container halts cleanly")
        if relay:
            relay.close()
        aws.clean(["SystemdTest", "Reloaded"])
        subprocess.run(["rm", "-rf", work], timeout=600)
    if failures:
        sys.exit("%d check(s) failed" % len(failures))
    print("all checks passed")


if __name__ == "__main__":
    main()
