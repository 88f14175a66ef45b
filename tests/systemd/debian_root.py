"""A minimal Debian root with systemd, made by debootstrap once and cached as a tarball.

The cache lives under $HOME/.cache/eni-agent/systemd-root/, one tarball per suite and package
list: the list is systemd's own packages plus what the .deb under test depends on, so `dpkg -i`
inside the booted root needs no network. A new Depends makes a new tarball; an old one is left
for `rm` (each is about 60 MB).
"""
import fcntl
import hashlib
import os
import re
import subprocess
import tempfile
import time

SUITE = "bookworm"
# PID 1, the bus systemctl talks to, and nothing else a booted root needs.
BASE_PACKAGES = ["systemd", "systemd-sysv", "dbus"]
# Bumped when the way the root is made changes, so a stale tarball is not reused.
RECIPE = "1"


def cache_dir():
    return os.path.join(os.path.expanduser("~"), ".cache", "eni-agent", "systemd-root")


def runtime_packages(depends):
    """The package names a Depends field needs: the first of each set of alternatives."""
    names = set()
    for clause in depends.split(","):
        first = clause.split("|")[0].strip()
        name = re.sub(r"\s*\(.*\)", "", first).split(":")[0].strip()
        if name:
            names.add(name)
    return sorted(names | set(BASE_PACKAGES))


def tarball_for(packages):
    key = hashlib.sha256(("%s\n%s\n%s" % (RECIPE, SUITE, " ".join(packages))).encode())
    return os.path.join(cache_dir(), "%s-%s.tar.gz" % (SUITE, key.hexdigest()[:16]))


def _debootstrap(packages, tarball, log):
    work = tempfile.mkdtemp(prefix="debootstrap-", dir=cache_dir())
    root = os.path.join(work, "root")
    try:
        # The mirror is debootstrap's default, the archive this machine's apt uses.
        made = subprocess.run(["debootstrap", "--variant=minbase",
                               "--include=" + ",".join(packages), SUITE, root],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=1200)
        if made.returncode != 0:
            log.write(made.stdout[-4000:])
            raise RuntimeError("debootstrap exited %d" % made.returncode)
        # Nothing of the machine leaks in: no apt lists or downloaded .debs, and an empty
        # machine-id, so that the first boot makes one.
        subprocess.run(["sh", "-c", "rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/* && "
                        ": > etc/machine-id"], cwd=root, check=True, timeout=60)
        partial = tarball + ".partial"
        subprocess.run(["tar", "--numeric-owner", "-czf", partial, "-C", root, "."],
                       check=True, timeout=600)
        os.rename(partial, tarball)
    finally:
        subprocess.run(["rm", "-rf", work], timeout=600)


def ensure_tarball(packages, log):
    """Returns the cached tarball of a root with `packages`, making it first when missing.

    One maker at a time (a lock file beside the cache); a second caller waits and reuses it.
    """
    os.makedirs(cache_dir(), exist_ok=True)
    tarball = tarball_for(packages)
    with open(os.path.join(cache_dir(), "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(tarball):
            log.write("debian root: cached %s\n" % tarball)
            return tarball
        started = time.monotonic()
        log.write("debian root: debootstrap %s with %s\n" % (SUITE, " ".join(packages)))
        log.flush()
        _debootstrap(packages, tarball, log)
        log.write("debian root: made %s in %.0f s\n" % (tarball, time.monotonic() - started))
        return tarball


def unpack(tarball, into):
    os.makedirs(into, exist_ok=True)
    subprocess.run(["tar", "--numeric-owner", "-xzf", tarball, "-C", into], check=True,
                   timeout=600)
