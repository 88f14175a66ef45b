#!/usr/bin/env python3
"""A TCP relay that can stop forwarding while the connections stay up, as a hung L7 load balancer
in front of the kube-apiserver does.

Bytes go through unchanged (TLS included: the client still verifies the API server's certificate,
whose SANs name 127.0.0.1). A stalled connection is neither read nor written: the kernel keeps
ACKing and answering TCP keepalives until its buffers fill, so the client sees a connection that is
up and silent. Connections opened after a stall forward normally unless the stall covers new ones
too.

Control endpoints on --control-port (plain HTTP, loopback only):
  GET  /stats     {"connections": accepted so far, "open": open now, "stalled": stalled now,
                   "closed_by_client": connections the client closed (while stalled, too)}
  POST /stall     stall every open connection; body {"new": true} stalls new ones too (accepted,
                  never forwarded)
  POST /unstall   forward everything again (buffered bytes flow)
  POST /reset     unstall and zero the counters
"""
import argparse
import json
import os
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TCP_ESTABLISHED = 1  # tcpi_state in struct tcp_info (linux/tcp.h)


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.resumed = threading.Condition(self.lock)
        self.reset()

    def reset(self):
        with self.lock:
            self.connections = 0
            self.closed_by_client = 0
            self.open = set()
            self.stalled = set()
            self.stall_new = False
            self.resumed.notify_all()

    def stats(self):
        with self.lock:
            return {"connections": self.connections, "open": len(self.open), "stalled": len(self.stalled),
                    "closed_by_client": self.closed_by_client}


class Relay(threading.Thread):
    """One client connection and its upstream connection."""

    def __init__(self, state, client, upstream):
        super().__init__(daemon=True)
        self.state = state
        self.client = client
        self.upstream_addr = upstream

    def run(self):
        st = self.state
        with st.lock:
            st.connections += 1
            st.open.add(self)
            if st.stall_new:
                st.stalled.add(self)
        upstream = None
        try:
            self.wait_while_stalled()
            upstream = socket.create_connection(self.upstream_addr, timeout=10)
            upstream.settimeout(None)
            self.pump(upstream)
        except OSError:
            pass
        finally:
            with st.lock:
                st.open.discard(self)
                st.stalled.discard(self)
            for s in (self.client, upstream):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def wait_while_stalled(self):
        while True:
            with self.state.lock:
                if self not in self.state.stalled:
                    return
                self.state.resumed.wait(0.2)
            if self.client_closed_while_stalled():
                raise OSError("the client gave up on a stalled new connection")

    def client_closed_while_stalled(self):
        # A stalled relay reads nothing, but it must still notice a client that gave up on it (the
        # agent closing a connection it found hung). Bytes the client sent meanwhile sit unread in
        # front of its FIN, so ask TCP for the state instead of reading.
        state = self.client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
        if state != TCP_ESTABLISHED:
            with self.state.lock:
                self.state.closed_by_client += 1
            return True
        return False

    def pump(self, upstream):
        peers = {self.client: upstream, upstream: self.client}
        while True:
            with self.state.lock:
                stalled = self in self.state.stalled
            if stalled:
                if self.client_closed_while_stalled():
                    return
                with self.state.lock:
                    self.state.resumed.wait(0.2)
                continue
            ready, _, _ = select.select(list(peers), [], [], 0.2)
            for s in ready:
                data = s.recv(65536)
                if not data:
                    if s is self.client:
                        with self.state.lock:
                            self.state.closed_by_client += 1
                    return
                peers[s].sendall(data)


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY, as real endpoints have it: the headers and the body go out as two writes, and
        # with Nagle the body waited for the client's delayed ACK, 40 ms on every kept-alive request.
        disable_nagle_algorithm = True

        def log_message(self, fmt, *a):
            pass

        def reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/stats":
                return self.reply(200, state.stats())
            return self.reply(404, {"error": f"no control endpoint GET {self.path}"})

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(n) or b"{}") if n else {}
            except ValueError as e:
                return self.reply(400, {"error": f"not JSON: {e}"})
            if self.path == "/stall":
                with state.lock:
                    state.stalled = set(state.open)
                    state.stall_new = bool(body.get("new", False))
                return self.reply(200, state.stats())
            if self.path == "/unstall":
                with state.lock:
                    state.stalled = set()
                    state.stall_new = False
                    state.resumed.notify_all()
                return self.reply(200, state.stats())
            if self.path == "/reset":
                state.reset()
                return self.reply(200, state.stats())
            return self.reply(404, {"error": f"no control endpoint POST {self.path}"})

    return Handler


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", required=True, help="HOST:PORT to relay to")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--ports-file", required=True, help='gets {"port": P, "control_port": C}')
    args = ap.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    upstream = (host, int(port))
    state = State()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(128)
    control = ThreadingHTTPServer(("127.0.0.1", args.control_port), make_handler(state))
    control.daemon_threads = True
    threading.Thread(target=control.serve_forever, daemon=True).start()
    write_atomically(args.ports_file, json.dumps({"port": listener.getsockname()[1],
                                                  "control_port": control.server_address[1]}))
    while True:
        client, _ = listener.accept()
        Relay(state, client, upstream).start()


if __name__ == "__main__":
    main()
