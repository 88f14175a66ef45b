"""A Debian root booted by systemd-nspawn with systemd as PID 1, in a network namespace of its own.

The container sees only its own loopback. The test stack listens on the machine's 127.0.0.1, so a
relay listens on the same ports on the container's 127.0.0.1 and carries each connection over:
the endpoints in the agent's environment read the same inside and out, and the agent's netlink
sees the container's links, never the machine's.
"""
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1


def _setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def _listen_in(netns_path, port):
    """A socket listening on 127.0.0.1:port in another network namespace.

    setns moves only the calling thread, so a short-lived thread makes the socket; the socket
    keeps the namespace it was made in.
    """
    out = {}

    def make():
        try:
            with open(netns_path) as ns:
                _setns(ns.fileno())
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(64)
            out["socket"] = s
        except OSError as e:
            out["error"] = e

    t = threading.Thread(target=make)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["socket"]


def _halt_with_parent():
    """In nspawn's child before exec: if the test dies (a ctest timeout), nspawn gets SIGTERM and
    halts the container instead of leaving it running."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Relay:
    """Carries connections to 127.0.0.1:port inside a namespace to 127.0.0.1:port outside."""

    def __init__(self, netns_path, ports):
        self.listeners = [(_listen_in(netns_path, p), p) for p in ports]
        for listener, port in self.listeners:
            threading.Thread(target=self._serve, args=(listener, port), daemon=True).start()

    def _serve(self, listener, port):
        while True:
            try:
                inside, _ = listener.accept()
            except OSError:
                return
            try:
                outside = socket.create_connection(("127.0.0.1", port), timeout=10)
                outside.settimeout(None)
            except OSError:
                inside.close()
                continue
            threading.Thread(target=_pump, args=(inside, outside), daemon=True).start()
            threading.Thread(target=_pump, args=(outside, inside), daemon=True).start()

    def close(self):
        for listener, _ in self.listeners:
            listener.close()


class Container:
    """systemd-nspawn --boot of `root`; run() executes a command inside through nsenter."""

    def __init__(self, root, name, log_path):
        self.root = root
        self.name = name
        self.log = open(log_path, "w")
        # No host systemd bus here: --register=no --keep-unit. --private-network: only lo.
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", root, "--boot", "--machine=" + name, "--register=no",
             "--keep-unit", "--console=read-only", "--private-network"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_halt_with_parent)
        self.pid = self._init_pid()

    def _init_pid(self):
        # The container's PID 1 is nspawn's child (a bounded wait on its appearance).
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError("systemd-nspawn exited %d; see %s" % (self.proc.returncode,
                                                                         self.log.name))
            try:
                with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                    children = f.read().split()
            except OSError:
                children = []
            for child in children:
                with open("/proc/%s/comm" % child) as f:
                    if f.read().strip() == "systemd":
                        return int(child)
            time.sleep(0.1)
        raise RuntimeError("no systemd under systemd-nspawn; see %s" % self.log.name)

    def netns(self):
        return "/proc/%d/ns/net" % self.pid

    def run(self, argv, check=True, timeout=120, input=None):
        r = subprocess.run(["nsenter", "-t", str(self.pid), "-a", "--"] + argv,
                           capture_output=True, text=True, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError("in the container: %s: exit %d\n%s%s" % (
                " ".join(argv), r.returncode, r.stdout, r.stderr))
        return r

    def show(self, unit, *props):
        """`systemctl show -p ...` as a dict."""
        out = self.run(["systemctl", "show", unit, "-p", ",".join(props)]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def stop(self):
        """Halts the container (SIGTERM to nspawn sends PID 1 its halt signal) and waits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.log.close()
        return self.proc.returncode
