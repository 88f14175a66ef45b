#!/usr/bin/env python3
"""Checks that scripts/setup.sh installs every Debian package the build, the tests and the
benchmarks use, on this machine, as a new machine would get them.

check_setup_packages.py <source dir>

setup.sh installs with --no-install-recommends, so a tool that arrives only as a recommendation
(clang's compiler runtime, which the fuzz stage links) or by hand on a developer's machine is
missing on a new one, and CI fails there, late. For each tool and file below (the audit of
scripts/*.sh, .ci/run, tests/** and bench/*), this finds the file here, asks dpkg which package
owns it, and fails unless that package is named in setup.sh's DEB_PACKAGES, is a dependency
(Depends/Pre-Depends, recursively) of one named there, or is Essential (on every Debian system).
A tool missing here fails too: setup.sh has run before the tests, so it did not install it.
"""
import os
import platform
import re
import shutil
import subprocess
import sys

# Program -> who uses it. Go (the test stack's kube-apiserver and etcd are built with it) and the
# pip tools (tests/env/requirements.txt) do not come from Debian's packages and are checked apart.
# So is python3 when the first one on PATH is not Debian's (a pyenv build): setup.sh installs
# Debian's and the pip tools into whichever python3 comes first.
NOT_DEBIAN_OK = {"python3"}
# setup.sh runs apt-get to install the rest: apt is there before it, on every Debian system.
BOOTSTRAP = {"apt"}
PROGRAMS = {
    "cmake": "the build, cpack (packaging.deb), bench/benchlib.py",
    "cpack": "packaging.deb",
    "ninja": "the build (-G Ninja)",
    "c++": "the build",
    "g++": "the build",
    "gcc": "the build",
    "pkg-config": "cmake/dependencies.cmake",
    "git": "agent/config (the version), scripts/test.sh (the format check's file list)",
    "ccache": "cmake/options.cmake",
    "clang": "scripts/test.sh (fuzz stage)",
    "clang++": "scripts/test.sh (fuzz stage)",
    "clang-format": "scripts/test.sh (format check)",
    "clang-tidy-19": "scripts/clang_tidy.py (clang-tidy stage)",
    "clang++-19": "scripts/clang_tidy.py (the cache key: the file as clang sees it)",
    "python3": "tests/env/*.py, tests/packaging/*.py, bench/*",
    "dpkg-source": "scripts/lean-curl.sh",
    "apt-get": "scripts/lean-curl.sh, scripts/setup.sh",
    "dpkg-query": "scripts/lean-curl.sh, scripts/setup.sh",
    "dpkg-deb": "packaging.deb, scripts/image.sh (dpkg-deb -x of the runtime packages)",
    "dpkg-shlibdeps": "cpack's DEB generator (CPACK_DEBIAN_PACKAGE_SHLIBDEPS)",
    "file": "cpack's DEB generator",
    "systemd-analyze": "packaging.systemd_verify, packaging.systemd_security",
    "ip": "bench/run (network namespaces, veths)",
    "strip": "bench/run (the binary's size)",
    "valgrind": "bench/run (callgrind_instr_per_tagged_pod)",
    "callgrind_control": "bench/run (callgrind's count zeroed and dumped around the workload)",
    "sha256sum": "scripts/lean-curl.sh",
    "bash": "scripts/*.sh, tests/env/stack.py",
    "sh": "packaging.deb (maintainer scripts' syntax)",
    "seq": "scripts/demo.sh",
    "buildah": "scripts/image.sh, tests/env/node.py (the pause and test images)",
    "ldd": "scripts/image.sh (the binary's libraries)",
    "containerd": "tests/env/node.py (the real node, label realcluster)",
    "containerd-shim-runc-v2": "tests/env/node.py (containerd's runc shim)",
    "ctr": "tests/env/node.py, tests/realcluster (images, tasks, events)",
    "runc": "containerd on the real node",
    "nsenter": "tests/env/node.py (containerd and the kubelet in the node's namespace), tests/systemd (commands in the container)",
    "umount": "tests/env/node.py (the kubelet's and containerd's mounts on teardown)",
    "debootstrap": "tests/systemd/debian_root.py (the cached Debian root)",
    "systemd-nspawn": "tests/systemd/container.py (systemd as PID 1)",
    "tar": "tests/systemd/debian_root.py (the cached root's tarball)",
}

PYTHON_MODULES = {
    "boto3": "tests/env/imds_emulator.py, tests/env/stack.py, bench/benchlib.py",
    "cryptography": "tests/env/stack.py (the test PKI)",
    "moto": "tests/env/stack.py (moto_server)",
}


def runtime_files():
    """Files the build links that no program names: the sanitizer and fuzzer runtimes."""
    arch = platform.machine()
    out = {}
    for cc, what in (("g++", "gcc"), ("clang++", "clang")):
        if not shutil.which(cc):
            continue
        if what == "gcc":
            for lib in ("libasan.so", "libubsan.so"):
                path = subprocess.run([cc, "-print-file-name=" + lib], capture_output=True,
                                      text=True).stdout.strip()
                out[path] = "scripts/test.sh (asan+ubsan stage): " + lib
        else:
            resource = subprocess.run([cc, "-print-resource-dir"], capture_output=True,
                                      text=True).stdout.strip()
            for lib in ("fuzzer", "asan", "ubsan_standalone"):
                path = os.path.join(resource, "lib", "linux", "libclang_rt.%s-%s.a" % (lib, arch))
                out[path] = "scripts/test.sh (fuzz stage): -fsanitize=%s" % lib.split("_")[0]
    return out


def setup_packages(source):
    text = open(os.path.join(source, "scripts", "setup.sh")).read()
    body = re.search(r"^DEB_PACKAGES=\((.*?)^\)", text, re.S | re.M)
    if not body:
        sys.exit("FAIL: no DEB_PACKAGES=( ... ) list in scripts/setup.sh")
    lines = [line.split("#")[0] for line in body.group(1).splitlines()]
    return set(" ".join(lines).split())


def installed():
    """name -> (essential, [[alternatives] for each Depends/Pre-Depends entry], provides)."""
    fmt = "${Package}\t${Status}\t${Essential}\t${Pre-Depends}, ${Depends}\t${Provides}\n"
    out = subprocess.run(["dpkg-query", "-W", "-f=" + fmt], capture_output=True, text=True,
                         check=True).stdout
    packages = {}
    for line in out.splitlines():
        name, status, essential, depends, provides = line.split("\t")
        if not status.endswith(" installed"):
            continue
        groups = []
        for entry in depends.split(","):
            alternatives = [re.split(r"[ :(]", a.strip())[0] for a in entry.split("|")]
            if any(alternatives):
                groups.append([a for a in alternatives if a])
        names = [re.split(r"[ :(]", p.strip())[0] for p in provides.split(",") if p.strip()]
        packages[name] = (essential == "yes", groups, names)
    return packages


def closure(roots, packages):
    providers = {}
    for name, (_, _, provides) in packages.items():
        for p in provides:
            providers.setdefault(p, []).append(name)
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for group in packages.get(name, (False, [], []))[1]:
            for alternative in group:
                # Whichever alternative is installed satisfies it (a virtual one through its
                # provider); the others are not pulled in.
                todo.extend([alternative] if alternative in packages else
                            providers.get(alternative, []))
    return seen


def owner(path):
    """The package that owns `path`, trying the merged-/usr spellings dpkg may know it by."""
    candidates = [path, os.path.realpath(path)]
    for p in list(candidates):
        if p.startswith("/usr/"):
            candidates.append(p[len("/usr"):])
        else:
            candidates.append("/usr" + p)
    for p in candidates:
        r = subprocess.run(["dpkg-query", "-S", p], capture_output=True, text=True)
        for line in r.stdout.splitlines() if r.returncode == 0 else []:
            # "pkg[:arch][, other]: /path"; "diversion by dash from: /bin/sh" names no owner.
            if not line.startswith("diversion by "):
                return line.split(":")[0].split(",")[0].strip()
    return None


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    source = sys.argv[1]
    packages = installed()
    named = setup_packages(source)
    essential = {n for n, (e, _, _) in packages.items() if e}
    allowed = closure(named | essential | BOOTSTRAP, packages)
    failures = []
    files = {}
    for program, used_by in PROGRAMS.items():
        path = shutil.which(program)
        if not path:
            failures.append("%s is not installed (used by %s)" % (program, used_by))
        else:
            files[path] = "%s, used by %s" % (program, used_by)
            if program in NOT_DEBIAN_OK and owner(path) is None:
                del files[path]
    for plugin in ("bridge", "host-local", "loopback"):
        path = "/usr/lib/cni/" + plugin
        if os.path.exists(path):
            files[path] = "the real node's CNI (tests/env/node.py)"
        else:
            failures.append("%s is missing (the real node's CNI, tests/env/node.py)" % path)
    for path, used_by in runtime_files().items():
        if not os.path.exists(path):
            failures.append("%s is missing (%s)" % (path, used_by))
        else:
            files[path] = used_by
    for path, used_by in sorted(files.items()):
        package = owner(path)
        if package is None:
            failures.append("%s (%s) belongs to no Debian package; setup.sh cannot install it"
                            % (path, used_by))
        elif package not in allowed:
            failures.append("%s (%s) comes from package %s, which scripts/setup.sh does not "
                            "install: add it to DEB_PACKAGES" % (path, used_by, package))
    for module, used_by in PYTHON_MODULES.items():
        r = subprocess.run([sys.executable, "-c", "import " + module], capture_output=True)
        if r.returncode != 0:
            failures.append("python module %s does not import (used by %s); scripts/setup.sh "
                            "installs tests/env/requirements.txt" % (module, used_by))
    if not shutil.which("go"):
        failures.append("go is not on PATH (tests/env/build-binaries.sh builds the test stack)")
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("OK: %d files from %d packages, all installed by scripts/setup.sh"
          % (len(files), len({owner(p) for p in files})))


if __name__ == "__main__":
    main()
