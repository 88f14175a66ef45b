#!/usr/bin/env python3
"""TCP relay between the real node's network namespace and the test stack on 127.0.0.1.

  node_relay.py --forward [netns:PATH:]HOST:PORT=UPHOST:UPPORT ... --ready-file FILE

Each --forward listens on HOST:PORT and copies bytes both ways to UPHOST:UPPORT. With netns:PATH
the listening socket is made inside that network namespace (the node's: the `kubernetes` Service's
ClusterIP, as kube-proxy would serve it); the upstream connection is always made here, in the
relay's own namespace. Writes FILE once every socket listens. Stops on SIGTERM.
"""
import argparse
import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000


def setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def listen_in(netns, host, port):
    """A listening socket in `netns` (None: this namespace). setns applies to the calling thread
    only, and a socket keeps the namespace it was made in."""
    own = None
    if netns:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(netns, os.O_RDONLY)
        setns(target)
        os.close(target)
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(64)
        return s
    finally:
        if own is not None:
            setns(own)
            os.close(own)


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
        try:
            s.shutdown(how)
        except OSError:
            pass


def serve(listener, upstream):
    while True:
        conn, _ = listener.accept()
        try:
            up = socket.create_connection(upstream, timeout=10)
            up.settimeout(None)
        except OSError:
            conn.close()
            continue
        for a, b in ((conn, up), (up, conn)):
            threading.Thread(target=pump, args=(a, b), daemon=True).start()


def parse(spec):
    listen, upstream = spec.split("=", 1)
    netns = None
    if listen.startswith("netns:"):
        _, netns, listen = listen.split(":", 2)
    host, port = listen.rsplit(":", 1)
    uhost, uport = upstream.rsplit(":", 1)
    return netns, host, int(port), (uhost, int(uport))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--forward", action="append", required=True)
    ap.add_argument("--ready-file", required=True)
    a = ap.parse_args()
    threads = []
    for spec in a.forward:
        netns, host, port, upstream = parse(spec)
        listener = listen_in(netns, host, port)
        threads.append(threading.Thread(target=serve, args=(listener, upstream), daemon=True))
    for t in threads:
        t.start()
    with open(a.ready_file, "w") as f:
        f.write("ready\n")
    threading.Event().wait()


if __name__ == "__main__":
    main()
