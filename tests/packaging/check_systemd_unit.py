#!/usr/bin/env python3
"""Checks systemd/eni-agent.service with systemd's own tools.

check_systemd_unit.py verify|security <unit> <eni-agent binary> [max exposure]

The unit names /usr/bin/eni-agent, which does not exist on a build machine, and
`systemd-analyze verify` refuses an ExecStart that is missing. So a copy of the unit with
ExecStart pointing at the binary this build made is checked, nothing else changed.
"""
import os
import re
import subprocess
import sys
import tempfile

REQUIRED = [
    "Type=notify", "WatchdogSec=", "ExecStart=/usr/bin/eni-agent run --mode host",
    "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
    "CapabilityBoundingSet=CAP_NET_ADMIN", "AmbientCapabilities=CAP_NET_ADMIN",
    "NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=eni-agent",
    "ConfigurationDirectory=eni-agent", "ConditionPathExists=/etc/eni-agent/host.json",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    "SystemCallFilter=@system-service", "SystemCallArchitectures=native",
]


def copy_for(unit, binary, directory):
    text = open(unit).read()
    missing = [d for d in REQUIRED if d not in text]
    if missing:
        sys.exit("FAIL: %s lacks %s" % (unit, ", ".join(missing)))
    rewritten = text.replace("ExecStart=/usr/bin/eni-agent ", "ExecStart=%s " % binary)
    if rewritten == text:
        sys.exit("FAIL: no ExecStart=/usr/bin/eni-agent line to point at the build's binary")
    path = os.path.join(directory, os.path.basename(unit))
    with open(path, "w") as f:
        f.write(rewritten)
    return path


def main():
    mode, unit, binary = sys.argv[1:4]
    limit = float(sys.argv[4]) if len(sys.argv) > 4 else 2.0
    with tempfile.TemporaryDirectory() as directory:
        path = copy_for(unit, binary, directory)
        if mode == "verify":
            r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True,
                               text=True, timeout=60)
            print(r.stdout + r.stderr)
            if r.returncode != 0 or r.stderr.strip():
                sys.exit("FAIL: systemd-analyze verify: exit %d, %s" % (r.returncode,
                                                                       r.stderr.strip()))
            print("OK: systemd-analyze verify is clean")
        elif mode == "security":
            r = subprocess.run(["systemd-analyze", "security", "--offline=true", path],
                               capture_output=True, text=True, timeout=60)
            print(r.stdout + r.stderr)
            m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", r.stdout + r.stderr)
            if not m:
                sys.exit("FAIL: no exposure level in systemd-analyze security's output")
            score = float(m.group(1))
            if score > limit:
                sys.exit("FAIL: exposure %.1f is above %.1f" % (score, limit))
            print("OK: exposure %.1f (at most %.1f)" % (score, limit))
        else:
            sys.exit("usage: check_systemd_unit.py verify|security <unit> <binary> [max]")


if __name__ == "__main__":
    main()
