#!/usr/bin/env python3
"""Builds the .deb with CPack and checks what is in it, with dpkg-deb.

check_deb.py <build dir> <source dir>
"""
import json
import os
import re
import subprocess
import sys
import tempfile

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kw)
    if r.returncode != 0:
        sys.exit("FAIL: %s: exit %d\n%s%s" % (" ".join(argv), r.returncode, r.stdout, r.stderr))
    return r.stdout


def main():
    build, source = sys.argv[1:3]
    with tempfile.TemporaryDirectory() as out:
        run(["cpack", "-G", "DEB", "--config", os.path.join(build, "CPackConfig.cmake"), "-B", out])
        debs = [f for f in os.listdir(out) if f.endswith(".deb")]
        check(len(debs) == 1, "cpack made one .deb: %s" % debs)
        if not debs:
            sys.exit(1)
        deb = os.path.join(out, debs[0])
        print("package:", debs[0], os.path.getsize(deb), "bytes")

        listing = run(["dpkg-deb", "-c", deb])
        print(listing)
        entries = {}
        for line in listing.splitlines():
            fields = line.split()
            entries[fields[-1]] = fields[0]
        for path in ["./usr/bin/eni-agent", "./lib/systemd/system/eni-agent.service",
                     "./usr/lib/sysusers.d/eni-agent.conf",
                     "./usr/share/doc/eni-agent/host.json.example",
                     "./usr/share/doc/eni-agent/README.md",
                     "./usr/share/doc/eni-agent/docs/host-mode.md",
                     "./usr/share/doc/eni-agent/docs/operations.md"]:
            check(path in entries, "contains " + path)
        check(entries.get("./usr/bin/eni-agent", "").startswith("-rwxr-xr-x"),
              "the binary is executable by everyone")
        check(entries.get("./lib/systemd/system/eni-agent.service", "").startswith("-rw-r--r--"),
              "the unit is 0644")
        check(not any(p.startswith("./etc/eni-agent/host.json") and not p.endswith(".example")
                      for p in entries), "no host.json is installed, so the unit cannot start")

        fields = {}
        for name in ["Package", "Version", "Architecture", "Maintainer", "Depends", "Section",
                     "Description"]:
            fields[name] = run(["dpkg-deb", "-f", deb, name]).strip()
            print("%s: %s" % (name, fields[name]))
        check(fields["Package"] == "eni-agent", "Package is eni-agent")
        arch = run(["dpkg", "--print-architecture"]).strip()
        check(fields["Architecture"] == arch, "Architecture is this machine's (%s)" % arch)
        check(fields["Version"] != "", "Version is set")
        maintainer = re.fullmatch(r"[^<>@]+ <[^<>@\s]+@([a-z0-9-]+(\.[a-z0-9-]+)+)>",
                                  fields["Maintainer"])
        check(maintainer is not None and maintainer.group(1).rsplit(".", 1)[-1] not in
              ("invalid", "example", "test", "localhost", "local") and
              not maintainer.group(1).startswith("example."),
              "Maintainer is 'Name <address>' at a real-looking domain")
        check("procps" in fields["Depends"],
              "Depends names procps (/bin/kill, the unit's ExecReload)")
        # OpenSSL, libnl, pugixml, yaml-cpp and nghttp2 are linked statically (the default build).
        for lib in ["libsystemd0", "libjsoncpp", "libprometheus-cpp", "libc6"]:
            check(lib in fields["Depends"], "Depends (computed by dpkg-shlibdeps) names " + lib)

        root = os.path.join(out, "root")
        control = os.path.join(out, "control")
        run(["dpkg-deb", "-x", deb, root])
        run(["dpkg-deb", "-e", deb, control])
        for script in ["postinst", "prerm", "postrm"]:
            path = os.path.join(control, script)
            check(os.path.isfile(path) and os.access(path, os.X_OK), script + " is executable")
            syntax = subprocess.run(["sh", "-n", path], capture_output=True, text=True, timeout=30)
            check(syntax.returncode == 0, script + " parses with sh -n " + syntax.stderr.strip())
        postinst = "\n".join(line for line in open(os.path.join(control, "postinst"))
                             if not line.lstrip().startswith("#"))
        check("systemctl enable" not in postinst and "systemctl start" not in postinst,
              "postinst enables and starts nothing")
        check(open(os.path.join(root, "lib/systemd/system/eni-agent.service")).read() ==
              open(os.path.join(source, "systemd/eni-agent.service")).read(),
              "the packaged unit is systemd/eni-agent.service")
        try:
            json.load(open(os.path.join(root, "usr/share/doc/eni-agent/host.json.example")))
            check(True, "host.json.example is valid JSON")
        except ValueError as e:
            check(False, "host.json.example is valid JSON: %s" % e)
        # The sysusers file as postinst applies it, into an empty root of the test's.
        users = os.path.join(out, "users")
        os.makedirs(os.path.join(users, "etc"))
        sysusers = subprocess.run(["systemd-sysusers", "--root=" + users,
                                   os.path.join(root, "usr/lib/sysusers.d/eni-agent.conf")],
                                  capture_output=True, text=True, timeout=60)
        passwd = open(os.path.join(users, "etc/passwd")).read() if sysusers.returncode == 0 else ""
        check(sysusers.returncode == 0 and passwd.startswith("eni-agent:") and
              passwd.rstrip().endswith(":/var/lib/eni-agent:/usr/sbin/nologin"),
              "systemd-sysusers accepts eni-agent.conf: %s" % (sysusers.stderr.strip() or passwd))
        # Packed relocations need glibc 2.36 (a version need, no symbol: shlibdeps misses it).
        if "GLIBC_ABI_DT_RELR" in run(["readelf", "-V", os.path.join(root, "usr/bin/eni-agent")]):
            check("libc6 (>= 2.36)" in fields["Depends"],
                  "the binary has packed relocations, and Depends asks for libc6 (>= 2.36)")
        version = subprocess.run([os.path.join(root, "usr/bin/eni-agent"), "version"],
                                 capture_output=True, text=True, timeout=30)
        check(version.returncode == 0 and version.stdout.startswith("eni-agent "),
              "the packaged (stripped) binary runs: %s" % version.stdout.strip())
    if failures:
        sys.exit("%d check(s) failed" % len(failures))


if __name__ == "__main__":
    main()
