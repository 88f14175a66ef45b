#!/usr/bin/env python3
"""daemonset/grafana-dashboard.json is valid, and every metric its queries use is one that a real
agent serves: the agent is started (its API server unreachable, which it survives and retries)
and its /metrics scraped, so the names come from the running code, not from a copied list.

check_dashboard.py <dashboard.json> <eni-agent binary>
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

# DESIGN.md's metrics: the dashboard must show each.
DESIGN = [
    "eni_agent_aws_api_calls_total", "eni_agent_aws_api_duration_seconds",
    "eni_agent_aws_throttled_total", "eni_agent_imds_requests_total",
    "eni_agent_resolve_source_total", "eni_agent_pod_tag_sync_total",
    "eni_agent_tag_sync_duration_seconds", "eni_agent_link_configure_duration_seconds",
    "eni_agent_managed_enis", "eni_agent_reconcile_errors_total", "eni_agent_watch_restarts_total",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exprs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, dict) and "query" in value:
                yield value["query"]
            else:
                yield from exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from exprs(item)


def served_names(binary):
    """Sample names and family names from a real agent's /metrics."""
    metrics_port, health_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as d:
        kubeconfig = os.path.join(d, "kubeconfig")
        with open(kubeconfig, "w") as f:
            f.write("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                    "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
                    "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                    "users: [{name: u, user: {token: t}}]\n")
        env = dict(os.environ, AWS_EC2_METADATA_DISABLED="true", AWS_ACCESS_KEY_ID="test",
                   AWS_SECRET_ACCESS_KEY="test", AWS_ENDPOINT_URL_EC2="http://127.0.0.1:1")
        agent = subprocess.Popen(
            [binary, "--kubeconfig", kubeconfig, "--node-name", "dashboard-check",
             "--region", "us-east-1", "--manage-links=false", "--log-format", "json",
             "--metrics-bind-address", "127.0.0.1:%d" % metrics_port,
             "--health-probe-bind-address", "127.0.0.1:%d" % health_port],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        text = ""
        try:
            for _ in range(100):  # bounded: 100 tries, 0.1 s apart
                try:
                    text = urllib.request.urlopen(
                        "http://127.0.0.1:%d/metrics" % metrics_port, timeout=2).read().decode()
                    if "eni_agent_managed_enis" in text:
                        break
                except OSError:
                    pass
                if agent.poll() is not None:
                    sys.exit("FAIL: the agent exited: %s" % agent.stderr.read().decode())
                time.sleep(0.1)
        finally:
            agent.terminate()
            agent.wait(timeout=30)
    names = set()
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            names.add(m.group(1))
            if m.group(2) == "histogram":
                names.update(m.group(1) + s for s in ("_bucket", "_sum", "_count"))
        elif line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    if not names:
        sys.exit("FAIL: no metrics scraped from the agent")
    return names


def main():
    dashboard_path, binary = sys.argv[1:3]
    dashboard = json.load(open(dashboard_path))  # raises on invalid JSON
    failures = []
    if not dashboard.get("panels"):
        failures.append("no panels")
    used = set()
    for expr in exprs(dashboard):
        used.update(re.findall(r"\beni_agent_[a-z0-9_]+", expr))
    served = served_names(binary)
    print("served:", " ".join(sorted(served)))
    print("used:  ", " ".join(sorted(used)))
    for name in sorted(used - served):
        failures.append("the dashboard queries %s, which the agent does not serve" % name)
    for name in DESIGN:
        if not any(u == name or u.startswith(name + "_") for u in used):
            failures.append("no panel shows %s" % name)
        if name not in served:
            failures.append("the agent does not serve DESIGN.md's %s" % name)
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            if expr.count("(") != expr.count(")"):
                failures.append("unbalanced parentheses in panel %r: %s" % (panel["title"], expr))
    for f in failures:
        print("FAIL", f)
    if failures:
        sys.exit(1)
    print("OK: %d panels, %d metric names, all served" % (len(dashboard["panels"]), len(used)))


if __name__ == "__main__":
    main()
