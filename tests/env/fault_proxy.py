#!/usr/bin/env python3
"""A fault-injecting reverse proxy in front of moto_server's EC2 API.

Every request is forwarded to --upstream unchanged (method, path, headers but the hop-by-hop
ones, body), Host included: the client signed it with SigV4. The EC2 Action is read from the
form body (or the query string) so that faults can be aimed at one API.

Control endpoints (loopback only, never forwarded, never counted):
  GET  /_proxy/stats     {"requests": {Action: n}, "faults": {Action: n}, "peak_rate": {Action: n},
                          "log": [{"action", "status", "fault", "invocation", "attempt", "enis",
                                   "tags"}, ...]}
                         (last 10000, arrival order; "invocation" and "attempt" come from the
                         AWS SDK retry headers amz-sdk-invocation-id and amz-sdk-request:
                         attempt=N, empty and 0 when the client sent none; "enis" lists the ENI
                         IDs a call names: NetworkInterfaceId(.N), ResourceId.N starting "eni-"
                         (CreateTags, DeleteTags) and network-interface-id filter values, and for
                         DetachNetworkInterface the ENI of its AttachmentId as the proxy learnt it
                         from earlier answers (Describe*, AttachNetworkInterface); sorted, empty
                         when none; "tags" maps each Tag.N.Key a call names (CreateTags,
                         DeleteTags) to its Tag.N.Value, empty when none)
  POST /_proxy/reset     clear stats, rules and buckets
  GET  /_proxy/rules     the live rules, with what is left of their counts
  POST /_proxy/rules     JSON list replacing the rules; a rule:
                           {"action": "CreateTags" | "*", "fault": "throttle" | "unavailable" | "invalid"
                            | "delay" | "hold" | "reset" | "bogus" | "html200" | "huge", "count": N,
                            "probability": p, "seed": s, "delay_ms": M}
                         "count" (optional) spends the rule after N injected faults; "probability"
                         (default 1) draws from random.Random(seed). The first live rule whose action
                         matches and whose draw succeeds wins. "*" matches every EC2 call (one with
                         an Action), never a request without one.
  POST /_proxy/release   lets every call a "hold" rule holds go on now, and later ones at once,
                         until the next /_proxy/rules or /_proxy/reset (which release them too)
  POST /_proxy/detaching {"ms": M} (0: off) makes a detach take time, as on EC2: for M ms after a
                         DetachNetworkInterface succeeds, DescribeNetworkInterfaces shows that ENI
                         with status "in-use" (moto detaches at once). /_proxy/reset turns it off.
  POST /_proxy/buckets   {"describe": {"capacity": C, "refill_per_sec": R}, "mutate": {...}} turns on
                         EC2-like token buckets: Describe* calls take a token from "describe", all
                         others from "mutate"; an empty bucket answers the throttle fault. {} turns
                         them off. Rules are checked first: a call faulted by a rule takes no token.

Faults: throttle = 503 RequestLimitExceeded, unavailable = 503 Unavailable, invalid = 400
InvalidParameterValue (all with EC2's XML error body), reset = the connection is closed with an
RST and no response, delay = sleep delay_ms, then forward, hold = wait until /_proxy/release
(at most delay_ms), then forward: a test holds a call until it has seen what it waits for. Peers that lie, never forwarded:
bogus = 200 with the XML body <Foo/> (not the action's answer), html200 = 200 with a load
balancer's "502 Bad Gateway" HTML page (well-formed XML, root <html>), huge = 200 with a 40 MiB
body sent chunked (no Content-Length, so only a client that counts what it buffers stops it),
which starts like the action's answer and never ends it. Every request, forwarded or faulted,
counts under requests[Action]; each injected fault (delays included) under faults[Action].
Requests without an Action count under "(none)".

Paging: moto ignores MaxResults on DescribeNetworkInterfaces; the proxy cuts its full answer into
the requested page and issues a NextToken, as EC2 does, so that paging is exercised for real.
"""
import argparse
import collections
import http.client
import json
import os
import random
import re
import socket
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG_MAX = 10000
NO_ACTION = "(none)"
FAULTS = ("throttle", "unavailable", "invalid", "delay", "hold", "reset", "bogus", "html200", "huge")
# Status, code and message of each fault answered with an EC2 error body.
ERRORS = {
    "throttle": (503, "RequestLimitExceeded", "Request limit exceeded."),
    "unavailable": (503, "Unavailable", "The server is overloaded and can't handle the request."),
    "invalid": (400, "InvalidParameterValue", "The fault proxy rejected this request (injected fault)."),
}
# The 200 answers of the lying faults: content type and body.
LIES = {
    "bogus": ("text/xml;charset=UTF-8", '<?xml version="1.0" encoding="UTF-8"?>\n<Foo/>\n'),
    "html200": ("text/html", "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n"
                             "<center><h1>502 Bad Gateway</h1></center>\n<hr/><center>nginx</center>\n"
                             "</body>\n</html>\n"),
}
HUGE_BYTES = 40 << 20
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
              "te", "trailer", "trailers", "transfer-encoding", "upgrade", "expect", "content-length"}
# Not relayed from the upstream's answer: send_response writes its own.
RESPONSE_SKIP = HOP_BY_HOP | {"server", "date"}


class BadRequest(Exception):
    pass


class Rule:
    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise BadRequest("a rule must be a JSON object")
        unknown = set(spec) - {"action", "fault", "count", "probability", "seed", "delay_ms"}
        if unknown:
            raise BadRequest(f"unknown rule fields: {sorted(unknown)}")
        self.action = spec.get("action", "*")
        if not isinstance(self.action, str) or not self.action:
            raise BadRequest("rule action must be an Action name or \"*\"")
        self.fault = spec.get("fault")
        if self.fault not in FAULTS:
            raise BadRequest(f"rule fault must be one of {list(FAULTS)}")
        self.count = spec.get("count")
        if self.count is not None and (not isinstance(self.count, int) or isinstance(self.count, bool)
                                       or self.count < 0):
            raise BadRequest("rule count must be a non-negative integer")
        self.probability = spec.get("probability", 1)
        if not isinstance(self.probability, (int, float)) or not 0 <= self.probability <= 1:
            raise BadRequest("rule probability must be within 0..1")
        self.seed = spec.get("seed")
        self.rng = random.Random(self.seed)
        self.delay_ms = spec.get("delay_ms", 0)
        if not isinstance(self.delay_ms, (int, float)) or self.delay_ms < 0:
            raise BadRequest("rule delay_ms must be a non-negative number")

    def live(self):
        return self.count is None or self.count > 0

    def take(self, action):
        """Whether this rule injects its fault into a call of `action` (spending one of its count)."""
        if not self.live():
            return False
        if self.action == "*" and action == NO_ACTION:
            return False
        if self.action not in ("*", action):
            return False
        if self.probability < 1 and self.rng.random() >= self.probability:
            return False
        if self.count is not None:
            self.count -= 1
        return True

    def describe(self):
        out = {"action": self.action, "fault": self.fault, "count": self.count, "probability": self.probability}
        if self.seed is not None:
            out["seed"] = self.seed
        if self.fault == "delay":
            out["delay_ms"] = self.delay_ms
        return out


class Bucket:
    def __init__(self, name, spec):
        if not isinstance(spec, dict):
            raise BadRequest(f"bucket {name} must be a JSON object")
        self.capacity = spec.get("capacity")
        self.refill = spec.get("refill_per_sec")
        for field, v in (("capacity", self.capacity), ("refill_per_sec", self.refill)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise BadRequest(f"bucket {name}: {field} must be a non-negative number")
        self.tokens = float(self.capacity)
        self.stamp = time.monotonic()

    def take(self):
        now = time.monotonic()
        self.tokens = min(float(self.capacity), self.tokens + (now - self.stamp) * self.refill)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class State:
    def __init__(self, upstream):
        u = urllib.parse.urlsplit(upstream)
        if u.scheme != "http" or not u.hostname:
            raise SystemExit(f"fault_proxy: --upstream must be http://HOST:PORT, not {upstream!r}")
        self.upstream_host = u.hostname
        self.upstream_port = u.port or 80
        self.lock = threading.Lock()
        self.request_ids = 0
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = collections.Counter()
            self.faults = collections.Counter()
            self.log = collections.deque(maxlen=LOG_MAX)
            self.recent = {}  # action -> deque of arrival times within the last second
            self.peak = {}
            self.rules = []
            self.buckets = None
            self.attachments = {}  # attachment ID -> ENI ID, learnt from answers
            self.detaching = {}  # ENI ID -> monotonic time until which it shows "in-use"
            self.detach_ms = 0
            self.new_hold()

    def arrive(self, action, invocation="", attempt=0, enis=(), tags=None):
        """Count an arriving call, pick its fault, and return (log entry, fault, rule or None)."""
        now = time.monotonic()
        with self.lock:
            self.requests[action] += 1
            window = self.recent.setdefault(action, collections.deque())
            window.append(now)
            while window[0] <= now - 1.0:
                window.popleft()
            self.peak[action] = max(self.peak.get(action, 0), len(window))
            rule = next((r for r in self.rules if r.take(action)), None)
            fault = rule.fault if rule else None
            if fault in (None, "delay") and self.buckets and action != NO_ACTION:
                bucket = self.buckets["describe" if action.startswith("Describe") else "mutate"]
                if not bucket.take():
                    fault, rule = "throttle", None
            if fault:
                self.faults[action] += 1
            entry = {"action": action, "status": None, "fault": fault, "invocation": invocation,
                     "attempt": attempt, "enis": list(enis), "tags": dict(tags or {})}
            self.log.append(entry)
            return entry, fault, rule

    def finish(self, entry, status):
        with self.lock:
            entry["status"] = status

    def eni_of(self, attachment):
        with self.lock:
            return self.attachments.get(attachment, "")

    def learn(self, pairs):
        with self.lock:
            self.attachments.update(pairs)

    def detached(self, eni):
        with self.lock:
            if self.detach_ms > 0 and eni:
                self.detaching[eni] = time.monotonic() + self.detach_ms / 1000.0

    def still_detaching(self):
        now = time.monotonic()
        with self.lock:
            return {e for e, until in self.detaching.items() if until > now}

    def set_detaching(self, spec):
        if not isinstance(spec, dict) or not isinstance(spec.get("ms", 0), int):
            raise BadRequest('detaching needs {"ms": M}')
        with self.lock:
            self.detach_ms = max(0, spec.get("ms", 0))
            self.detaching = {}

    def next_request_id(self):
        with self.lock:
            self.request_ids += 1
            return f"fault-proxy-{self.request_ids}"

    def stats(self):
        with self.lock:
            return {"requests": dict(self.requests), "faults": dict(self.faults), "peak_rate": dict(self.peak),
                    "log": [dict(e) for e in self.log]}

    def set_rules(self, specs):
        if not isinstance(specs, list):
            raise BadRequest("rules must be a JSON list")
        rules = [Rule(s) for s in specs]
        with self.lock:
            self.rules = rules
            self.new_hold()

    def new_hold(self):
        """What "hold" rules wait for from now on; calls held so far go on."""
        held = getattr(self, "released", None)
        self.released = threading.Event()
        if held is not None:
            held.set()

    def rule_list(self):
        with self.lock:
            return [r.describe() for r in self.rules]

    def set_buckets(self, spec):
        if not isinstance(spec, dict):
            raise BadRequest("buckets must be a JSON object")
        if not spec:
            buckets = None
        else:
            if set(spec) != {"describe", "mutate"}:
                raise BadRequest("buckets needs both \"describe\" and \"mutate\" (or {} to turn them off)")
            buckets = {name: Bucket(name, s) for name, s in spec.items()}
        with self.lock:
            self.buckets = buckets


def action_of(method, path, headers, body):
    fields = form_fields(method, path, headers, body)
    return (fields.get("Action") or [NO_ACTION])[0] or NO_ACTION


def form_fields(method, path, headers, body):
    fields = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    if body and (method == "POST" or "x-www-form-urlencoded" in headers.get("Content-Type", "")):
        try:
            fields.update(urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            pass
    return fields


def enis_named(fields):
    """The ENI IDs a call names: NetworkInterfaceId(.N), ENI ResourceId.N and network-interface-id
    filter values."""
    out = [v for k, vs in fields.items() if k == "NetworkInterfaceId" or k.startswith("NetworkInterfaceId.")
           for v in vs]
    out += [v for k, vs in fields.items() if k.startswith("ResourceId.") for v in vs if v.startswith("eni-")]
    for k, vs in fields.items():
        if k.startswith("Filter.") and k.endswith(".Name") and vs and vs[0] == "network-interface-id":
            prefix = k[:-len("Name")] + "Value."
            out += [v for key, values in fields.items() if key.startswith(prefix) for v in values]
    return sorted(set(out))


def tags_named(fields):
    """The tags a CreateTags or DeleteTags call names: Tag.N.Key -> Tag.N.Value ("" when absent)."""
    out = {}
    for k, vs in fields.items():
        if k.startswith("Tag.") and k.endswith(".Key") and vs:
            out[vs[0]] = (fields.get(k[:-len("Key")] + "Value") or [""])[0]
    return out


def attachments_in(data):
    """(attachment ID, ENI ID) pairs in an EC2 answer: every networkInterfaceId with an attachmentId
    in the same element, and an AttachNetworkInterface's own attachmentId (paired by the caller)."""
    import xml.etree.ElementTree as ET
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return {}
    pairs = {}
    for item in root.iter():
        eni = attachment = None
        for child in item:
            tag = child.tag.rsplit("}", 1)[-1]
            if tag == "networkInterfaceId":
                eni = child.text
            elif tag == "attachment":
                for sub in child:
                    if sub.tag.rsplit("}", 1)[-1] == "attachmentId":
                        attachment = sub.text
        if eni and attachment:
            pairs[attachment] = eni
    return pairs


def show_in_use(data, enis):
    """DescribeNetworkInterfaces' answer with `enis` shown "in-use" (still detaching)."""
    import xml.etree.ElementTree as ET
    root = ET.fromstring(data)
    ns = root.tag[1:root.tag.index("}")] if root.tag.startswith("{") else ""
    ET.register_namespace("", ns)
    q = f"{{{ns}}}" if ns else ""
    item_set = root.find(f"{q}networkInterfaceSet")
    if item_set is None:
        return data
    for item in item_set:
        if item.findtext(f"{q}networkInterfaceId") in enis and item.find(f"{q}status") is not None:
            item.find(f"{q}status").text = "in-use"
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def sdk_attempt(headers):
    """(invocation id, attempt number) from the AWS SDK retry headers, ("", 0) without them."""
    invocation = headers.get("amz-sdk-invocation-id", "").strip()
    attempt = 0
    for part in headers.get("amz-sdk-request", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == "attempt":
            try:
                attempt = int(value)
            except ValueError:
                pass
    return invocation, attempt


def paginate_enis(data, fields):
    """moto ignores MaxResults/NextToken on DescribeNetworkInterfaces and answers everything.
    Real EC2 pages; so that clients' NextToken loops meet real paging, cut moto's full answer into
    the page the request asked for (NextToken here is an offset this proxy issued)."""
    try:
        page_size = int((fields.get("MaxResults") or ["0"])[0])
        offset = int((fields.get("NextToken") or ["0"])[0] or 0)
    except ValueError:
        return data
    if page_size <= 0:
        return data
    import xml.etree.ElementTree as ET
    root = ET.fromstring(data)
    ns = root.tag[1:root.tag.index("}")] if root.tag.startswith("{") else ""
    ET.register_namespace("", ns)
    q = f"{{{ns}}}" if ns else ""
    item_set = root.find(f"{q}networkInterfaceSet")
    if item_set is None:
        return data
    items = list(item_set)
    for item in items:
        item_set.remove(item)
    for item in items[offset:offset + page_size]:
        item_set.append(item)
    old = root.find(f"{q}nextToken")
    if old is not None:
        root.remove(old)
    if offset + page_size < len(items):
        ET.SubElement(root, f"{q}nextToken").text = str(offset + page_size)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def ec2_error(code, message, request_id):
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>")


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY, as real endpoints have it: the headers and the body go out as two writes, and
        # with Nagle the body waited for the client's delayed ACK, 40 ms on every kept-alive request.
        disable_nagle_algorithm = True

        def log_message(self, fmt, *a):  # quiet; /_proxy/stats tells what happened
            pass

        def reply(self, code, body="", ctype="text/plain", headers=()):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def read_body(self):
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n > 0 else b""

        def handle_any(self):
            try:
                body = self.read_body()
            except (ValueError, OSError):
                self.close_connection = True
                return self.reply(400, "bad request body")
            path = urllib.parse.urlsplit(self.path).path
            if path.startswith("/_proxy/"):
                return self.control(path, body)
            action = action_of(self.command, self.path, self.headers, body)
            fields = form_fields(self.command, self.path, self.headers, body)
            enis = enis_named(fields)
            if action == "DetachNetworkInterface":
                enis = [e for e in [state.eni_of((fields.get("AttachmentId") or [""])[0])] if e]
            entry, fault, rule = state.arrive(action, *sdk_attempt(self.headers), enis=enis,
                                              tags=tags_named(fields))
            if fault == "reset":
                state.finish(entry, None)
                return self.reset_connection()
            if fault in ERRORS:
                status, code, message = ERRORS[fault]
                state.finish(entry, status)
                return self.reply(status, ec2_error(code, message, state.next_request_id()),
                                  "text/xml;charset=UTF-8")
            if fault in LIES:
                ctype, lie = LIES[fault]
                state.finish(entry, 200)
                return self.reply(200, lie, ctype)
            if fault == "huge":
                state.finish(entry, 200)
                return self.huge(action)
            if fault == "delay" and rule is not None:
                time.sleep(rule.delay_ms / 1000.0)
            if fault == "hold" and rule is not None:
                state.released.wait(rule.delay_ms / 1000.0)
            status = self.forward(body, action, fields)
            if action == "DetachNetworkInterface" and status == 200 and enis:
                state.detached(enis[0])
            state.finish(entry, status)

        def forward(self, body, action=None, fields=None):
            """Send the request upstream as it came and relay the answer; returns the status sent."""
            drop = {h.strip().lower() for h in self.headers.get("Connection", "").split(",")} | HOP_BY_HOP
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in drop]
            conn = http.client.HTTPConnection(state.upstream_host, state.upstream_port, timeout=120)
            try:
                # skip_host: the client's own Host header goes through as signed.
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in headers:
                    conn.putheader(k, v)
                if body or self.command in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body or None)
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
                relay = [(k, v) for k, v in resp.getheaders() if k.lower() not in RESPONSE_SKIP]
            except (OSError, http.client.HTTPException) as e:
                self.reply(502, f"fault_proxy: upstream error: {e}")
                return 502
            finally:
                conn.close()
            if status == 200 and action in ("DescribeNetworkInterfaces", "DescribeInstances"):
                state.learn(attachments_in(data))
            if status == 200 and action == "AttachNetworkInterface" and fields:
                attached = re.search(rb"<attachmentId>([^<]+)</attachmentId>", data)
                eni = (fields.get("NetworkInterfaceId") or [""])[0]
                if attached and eni:
                    state.learn({attached.group(1).decode(): eni})
            if action == "DescribeNetworkInterfaces" and status == 200:
                fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
                data = paginate_enis(data, fields)
                detaching = state.still_detaching()
                if detaching:
                    data = show_in_use(data, detaching)
            ctype = next((v for k, v in relay if k.lower() == "content-type"), None)
            relay = [(k, v) for k, v in relay if k.lower() != "content-type"]
            self.send_response(status)
            if ctype is not None:
                self.send_header("Content-Type", ctype)
            for k, v in relay:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            return status

        def huge(self, action):
            """HUGE_BYTES of body, chunked, shaped like the start of `action`'s answer."""
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "text/xml;charset=UTF-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            head = (f'<?xml version="1.0" encoding="UTF-8"?><{action}Response '
                    'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>huge</requestId>'
                    '<networkInterfaceSet>').encode()
            item = b"<item><networkInterfaceId>eni-0123456789abcdef0</networkInterfaceId></item>"
            piece = item * (65536 // len(item))
            sent = 0
            try:
                while sent < HUGE_BYTES:
                    chunk = head if sent == 0 else piece[:HUGE_BYTES - sent]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass  # the client gave up on it, as it should

        def reset_connection(self):
            # Linger 0 makes close() send an RST instead of a FIN: the client sees a connection reset.
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.rfile.close()  # drop the makefile reference so that close() really closes
                self.connection.close()
            except OSError:
                pass

        def control(self, path, body):
            try:
                if self.command == "GET" and path == "/_proxy/stats":
                    return self.reply(200, json.dumps(state.stats()), "application/json")
                if self.command == "GET" and path == "/_proxy/rules":
                    return self.reply(200, json.dumps(state.rule_list()), "application/json")
                if self.command == "POST" and path == "/_proxy/reset":
                    state.reset()
                    return self.reply(200, "{}", "application/json")
                if self.command == "POST" and path == "/_proxy/rules":
                    state.set_rules(json.loads(body or b"[]"))
                    return self.reply(200, json.dumps(state.rule_list()), "application/json")
                if self.command == "POST" and path == "/_proxy/release":
                    state.released.set()
                    return self.reply(200, "{}", "application/json")
                if self.command == "POST" and path == "/_proxy/detaching":
                    state.set_detaching(json.loads(body or b"{}"))
                    return self.reply(200, "{}", "application/json")
                if self.command == "POST" and path == "/_proxy/buckets":
                    state.set_buckets(json.loads(body or b"{}"))
                    return self.reply(200, "{}", "application/json")
            except (BadRequest, ValueError) as e:
                return self.reply(400, json.dumps({"error": str(e)}), "application/json")
            return self.reply(404, json.dumps({"error": f"no control endpoint {self.command} {path}"}),
                              "application/json")

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_any

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", required=True, help="moto_server's URL, http://127.0.0.1:PORT")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    args = ap.parse_args()
    server = Server(("127.0.0.1", args.port), make_handler(State(args.upstream)))
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(server.server_address[1]))
        os.replace(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
