#!/usr/bin/env python3
"""A small IMDSv2 emulator whose truth is moto's EC2 state.

Every answer is read from moto at request time, so an ENI attached there appears under
network/interfaces/macs/ at once. IMDSv2 only: PUT /latest/api/token with a TTL header gives a
token, and any metadata request without a valid token gets 401.

Like EC2's IMDS, a MAC's directory lists only the keys that have a value: no ipv4-prefix without
delegated prefixes, no ipv6s without IPv6 addresses; an unlisted key answers 404.

Test hooks (no token needed, loopback only):
  GET  /_emulator/stats        request counts as JSON
  POST /_emulator/down         answer 503 to everything until /_emulator/up
  POST /_emulator/up
  POST /_emulator/expire-tokens  forget every issued token (the next request gets 401)
  POST /_emulator/stale        JSON [{"mac": "02:..", "key": "ipv4-prefix"}, ...] replaces the stale
                               keys: each is listed in its MAC's directory (with a value or not) and
                               answers 404, as EC2's eventually consistent IMDS can for a moment
                               ("key": "" makes the MAC's directory itself 404). [] clears them.
  POST /_emulator/huge         JSON {"path": "placement/region", "bytes": N, "chunked": true}: that
                               metadata path answers N bytes (chunked, or with a Content-Length
                               when "chunked" is false). {} clears it.
  POST /_emulator/answers      {"<meta-data path>": "<body>", ...} replaces the set of answered
                               overrides: each listed path answers 200 with that body instead of
                               the truth (an HTML page for placement/region, say, or role
                               credentials that moto refuses). {} restores the truth.
  POST /_emulator/reset        clears down, stale, huge and answers

It also plays the EKS Pod Identity agent for credential tests:
  GET  /_container/credentials   with "Authorization: <--container-token>" gives JSON credentials

Several instances (bench/fleet): give --instance-id more than once. Each instance gets its own
listening port, its own tokens, stats and hooks, and answers as that instance; the identity is
keyed by the port an agent talks to. --port and --port-file concern the first instance, as
before; --ports-file gets {"<instance-id>": port, ...} for all of them.
"""
import argparse
import datetime
import json
import os
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

MAX_TTL = 21600


class State:
    def __init__(self, args, instance_id):
        # One identity: the shared options, with this state's own instance ID.
        args = argparse.Namespace(**vars(args))
        args.instance_id = instance_id
        self.args = args
        self.tokens = {}
        self.lock = threading.Lock()
        self.stats = {"token": 0, "get": 0, "unauthorized": 0, "not_found": 0}
        self.down = False
        self.stale = set()  # (mac, key): listed, answering 404
        self.huge = None    # {"path", "bytes", "chunked"}
        self.answers = {}
        self._instance = None
        self._ifaces = (None, 0.0)
        self._cidrs = {}
        self.ec2 = boto3.client("ec2", region_name=args.region, endpoint_url=args.moto_endpoint,
                                aws_access_key_id="testing", aws_secret_access_key="testing")

    def count(self, key):
        with self.lock:
            self.stats[key] = self.stats.get(key, 0) + 1

    def instance(self):
        # Placement never changes: one read.
        if self._instance is None:
            res = self.ec2.describe_instances(InstanceIds=[self.args.instance_id])
            self._instance = res["Reservations"][0]["Instances"][0]
        return self._instance

    def interfaces(self, fresh=False, want_mac=None):
        """mac -> ENI description, for every ENI attached to this instance. The macs/ listing reads
        moto afresh; per-mac fields reuse that answer for a second (a client walks every field of
        every mac right after listing them), and a mac the cached answer lacks reads moto again, so
        an ENI attached in moto shows at once."""
        with self.lock:
            cached, at = self._ifaces
        if fresh or cached is None or time.time() - at > 1.0 or (want_mac and want_mac not in cached):
            enis = self.ec2.describe_network_interfaces(
                Filters=[{"Name": "attachment.instance-id", "Values": [self.args.instance_id]}])["NetworkInterfaces"]
            cached = {e["MacAddress"].lower(): e for e in enis if e.get("Attachment")}
            with self.lock:
                self._ifaces = (cached, time.time())
        return cached

    def subnet_cidr(self, subnet_id):
        if subnet_id not in self._cidrs:
            self._cidrs[subnet_id] = self.ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["CidrBlock"]
        return self._cidrs[subnet_id]


def mac_fields(state, eni):
    ips = [p["PrivateIpAddress"] for p in eni.get("PrivateIpAddresses", [])]
    fields = {
        "interface-id": eni["NetworkInterfaceId"],
        "device-number": str(eni["Attachment"]["DeviceIndex"]),
        "local-ipv4s": "\n".join(ips),
        "mac": eni["MacAddress"].lower(),
        "subnet-id": eni["SubnetId"],
        "vpc-id": eni["VpcId"],
        "security-group-ids": "\n".join(g["GroupId"] for g in eni.get("Groups", [])),
        "subnet-ipv4-cidr-block": state.subnet_cidr(eni["SubnetId"]),
        "owner-id": eni.get("OwnerId", "123456789012"),
    }
    prefixes = [p["Ipv4Prefix"] for p in eni.get("Ipv4Prefixes", [])]
    if prefixes:
        fields["ipv4-prefix"] = "\n".join(prefixes)
    v6 = [a["Ipv6Address"] for a in eni.get("Ipv6Addresses", [])]
    if v6:
        fields["ipv6s"] = "\n".join(v6)
    v6p = [p["Ipv6Prefix"] for p in eni.get("Ipv6Prefixes", [])]
    if v6p:
        fields["ipv6-prefix"] = "\n".join(v6p)
    return fields


def metadata(state, path):
    """The body for /latest/meta-data/<path>, or None for 404."""
    args = state.args
    path = path.strip("/")
    if path == "":
        return "instance-id\nmac\nnetwork/\nplacement/\niam/"
    if path == "instance-id":
        return args.instance_id
    inst = state.instance()
    if path == "placement":
        return "availability-zone\nregion"
    if path == "placement/availability-zone":
        return inst["Placement"]["AvailabilityZone"]
    if path == "placement/region":
        return args.region
    if path == "local-ipv4":
        return inst.get("PrivateIpAddress")
    listing = path in ("mac", "network/interfaces/macs")
    want = None
    if path.startswith("network/interfaces/macs/"):
        want = path[len("network/interfaces/macs/"):].split("/", 1)[0].lower()
    ifaces = state.interfaces(fresh=listing, want_mac=want)
    primary = next((m for m, e in ifaces.items() if e["Attachment"]["DeviceIndex"] == 0), None)
    if path == "mac":
        return primary
    if path in ("network", "network/interfaces"):
        return "interfaces/" if path == "network" else "macs/"
    if path == "network/interfaces/macs":
        return "\n".join(f"{m}/" for m in sorted(ifaces, key=lambda m: ifaces[m]["Attachment"]["DeviceIndex"]))
    if path.startswith("network/interfaces/macs/"):
        rest = path[len("network/interfaces/macs/"):].split("/", 1)
        eni = ifaces.get(rest[0].lower())
        if eni is None:
            return None
        fields = mac_fields(state, eni)
        mac = rest[0].lower()
        stale = {k for m, k in state.stale if m == mac}
        if "" in stale:
            return None
        if len(rest) == 1 or rest[1] == "":
            return "\n".join(sorted({k for k, v in fields.items() if v} | stale))
        if rest[1] in stale:
            return None
        return fields.get(rest[1]) or None
    if path == "iam/security-credentials":
        return args.role
    if path == f"iam/security-credentials/{args.role}":
        exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=args.credential_ttl)
        return json.dumps({
            "Code": "Success", "Type": "AWS-HMAC",
            "LastUpdated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "AccessKeyId": args.access_key_id, "SecretAccessKey": args.secret_access_key,
            "Token": args.session_token, "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
    return None


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY, as real endpoints have it: the headers and the body go out as two writes, and
        # with Nagle the body waited for the client's delayed ACK, 40 ms on every kept-alive request.
        disable_nagle_algorithm = True

        def log_message(self, fmt, *a):  # quiet; the stats endpoint tells what happened
            pass

        def reply(self, code, body="", ctype="text/plain"):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self):
            if self.path.startswith("/_emulator"):
                return self.reply(404)
            if state.down:
                return self.reply(503, "emulated outage")
            if self.path != "/latest/api/token":
                return self.reply(404)
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            try:
                ttl = int(ttl)
            except (TypeError, ValueError):
                return self.reply(400, "missing or invalid X-aws-ec2-metadata-token-ttl-seconds")
            if not 1 <= ttl <= MAX_TTL:
                return self.reply(400, "TTL out of range")
            token = secrets.token_urlsafe(32)
            with state.lock:
                state.tokens[token] = time.time() + min(ttl, state.args.max_token_ttl)
            state.count("token")
            self.send_response(200)
            self.send_header("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))
            self.send_header("Content-Length", str(len(token)))
            self.end_headers()
            self.wfile.write(token.encode())

        def read_json(self):
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n) or b"null") if n > 0 else None

        def set_stale(self, spec):
            if not isinstance(spec, list) or not all(
                    isinstance(e, dict) and isinstance(e.get("mac"), str) and isinstance(e.get("key", ""), str)
                    for e in spec):
                return self.reply(400, 'stale needs a JSON list of {"mac": ..., "key": ...}')
            with state.lock:
                state.stale = {(e["mac"].lower(), e.get("key", "").strip("/")) for e in spec}
            return self.reply(200, "stale")

        def set_huge(self, spec):
            if spec in (None, {}):
                state.huge = None
                return self.reply(200, "huge off")
            if not isinstance(spec, dict) or not isinstance(spec.get("path"), str) \
                    or not isinstance(spec.get("bytes"), int) or spec["bytes"] < 0:
                return self.reply(400, 'huge needs {"path": ..., "bytes": N, "chunked": bool}')
            state.huge = {"path": spec["path"].strip("/"), "bytes": spec["bytes"],
                          "chunked": bool(spec.get("chunked", True))}
            return self.reply(200, "huge on")

        def send_huge(self, spec):
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            if spec["chunked"]:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(spec["bytes"]))
            self.end_headers()
            piece = b"x" * 65536
            sent = 0
            try:
                while sent < spec["bytes"]:
                    chunk = piece[:spec["bytes"] - sent]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if spec["chunked"] else chunk)
                    sent += len(chunk)
                if spec["chunked"]:
                    self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass  # the client gave up on it, as it should

        def do_POST(self):
            try:
                body = self.read_json()
            except ValueError:
                return self.reply(400, "not JSON")
            if self.path == "/_emulator/stale":
                return self.set_stale(body if body is not None else [])
            if self.path == "/_emulator/huge":
                return self.set_huge(body)
            if self.path == "/_emulator/reset":
                with state.lock:
                    state.stale = set()
                    state.answers = {}
                state.huge = None
                state.down = False
                return self.reply(200, "reset")
            if self.path == "/_emulator/down":
                state.down = True
                return self.reply(200, "down")
            if self.path == "/_emulator/up":
                state.down = False
                return self.reply(200, "up")
            if self.path == "/_emulator/expire-tokens":
                with state.lock:
                    state.tokens.clear()
                return self.reply(200, "expired")
            if self.path == "/_emulator/answers":
                answers = body if body is not None else {}
                if not isinstance(answers, dict) or not all(isinstance(v, str) for v in answers.values()):
                    return self.reply(400, 'want {"<path>": "<body>", ...}')
                with state.lock:
                    state.answers = {k.strip("/"): v for k, v in answers.items()}
                return self.reply(200, json.dumps(state.answers), "application/json")
            return self.reply(405)

        def do_GET(self):
            if self.path == "/_container/credentials":
                if self.headers.get("Authorization") != state.args.container_token:
                    return self.reply(403, '{"Message":"bad token"}', "application/json")
                exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
                return self.reply(200, json.dumps({
                    "AccessKeyId": "ASIACONTAINER0000001", "SecretAccessKey": "container-secret-key",
                    "Token": "container-session-token", "AccountId": "123456789012",
                    "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}), "application/json")
            if self.path == "/_emulator/stats":
                with state.lock:
                    return self.reply(200, json.dumps(state.stats), "application/json")
            if state.down:
                return self.reply(503, "emulated outage")
            token = self.headers.get("X-aws-ec2-metadata-token")
            with state.lock:
                expiry = state.tokens.get(token) if token else None
            if expiry is None or expiry < time.time():
                state.count("unauthorized")
                return self.reply(401, "")
            if not self.path.startswith("/latest/meta-data"):
                state.count("not_found")
                return self.reply(404, "")
            state.count("get")
            huge = state.huge
            if huge and self.path[len("/latest/meta-data"):].strip("/") == huge["path"]:
                state.count("huge")
                return self.send_huge(huge)
            with state.lock:
                override = state.answers.get(self.path[len("/latest/meta-data"):].strip("/"))
            if override is not None:
                return self.reply(200, override)
            try:
                body = metadata(state, self.path[len("/latest/meta-data"):])
            except Exception as e:  # noqa: BLE001 - moto hiccup: say so, as IMDS would with a 5xx
                return self.reply(500, f"emulator: {e}")
            if body is None:
                state.count("not_found")
                return self.reply(404, "")
            return self.reply(200, body)

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moto-endpoint", required=True)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--instance-id", required=True, action="append",
                    help="the instance to play; give it several times for one port per instance")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--role", default="eni-agent-node")
    ap.add_argument("--access-key-id", default="ASIAIMDSEMULATOR0001")
    ap.add_argument("--secret-access-key", default="imds-emulator-secret-key")
    ap.add_argument("--session-token", default="imds-emulator-session-token")
    ap.add_argument("--container-token", default="pod-identity-test-token")
    ap.add_argument("--credential-ttl", type=int, default=6 * 3600)
    ap.add_argument("--max-token-ttl", type=int, default=MAX_TTL,
                    help="expire tokens sooner than asked, to exercise refresh")
    ap.add_argument("--ports-file", help="write {instance-id: port} as JSON once every port listens")
    args = ap.parse_args()
    servers = []
    for n, instance_id in enumerate(args.instance_id):
        server = ThreadingHTTPServer(("127.0.0.1", args.port if n == 0 else 0),
                                     make_handler(State(args, instance_id)))
        server.daemon_threads = True
        servers.append((instance_id, server))
    if args.ports_file:
        write_atomically(args.ports_file, json.dumps({i: s.server_address[1] for i, s in servers}))
    if args.port_file:
        write_atomically(args.port_file, str(servers[0][1].server_address[1]))
    for _, server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0][1].serve_forever()


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
