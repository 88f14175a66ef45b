#!/usr/bin/env python3
"""Checks of the Helm chart (daemonset/chart) with the real tools.

  check_chart.py lint SOURCE
      `helm lint --strict`, with the default values and with every option turned on.
  check_chart.py drift SOURCE
      The chart with its default values renders the same objects as `kubectl kustomize daemonset/`,
      field for field (RBAC rules included), but for what Helm users expect to differ: the chart
      makes no Namespace (`helm install -n eni-agent --create-namespace`), and adds the labels
      app.kubernetes.io/instance, app.kubernetes.io/version, app.kubernetes.io/managed-by and
      helm.sh/chart, which are removed before comparing. Comments are not compared, nor how
      whitespace breaks a multi-line string (kustomize re-folds the policy's CEL).
  check_chart.py dpdk SOURCE
      dpdk.enabled: the agent container alone is privileged and stays root (no --run-as-user), with
      --dpdk-sysfs-root=/host/sys on a read-write hostPath of /sys and --sriov-config-path in a
      read-write hostPath of dpdk.sriovConfigDir; nothing else in the release changes. Off (the
      default), --dpdk-sysfs-root= and none of that. A relative sriovConfigDir fails the render.
  check_chart.py dry-run SOURCE
      `helm template` | `kubectl apply --dry-run=server` against the test stack's API server
      ($ENI_STACK_DIR), with the default values and with the options turned on (the ServiceMonitor
      apart: the stack has no Prometheus Operator CRDs).

helm and kubectl are the test stack's, built and cached by tests/env/build-binaries.sh.
"""
import json
import os
import subprocess
import sys
import tempfile

import yaml

HELM_LABELS = ("app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by",
               "helm.sh/chart")
# Every option turned away from its default: lint and dry-run see each template branch.
ALL_ON = {
    "image": {"repository": "registry.example/eni-agent", "tag": "1.2.3"},
    "imagePullSecrets": [{"name": "regcred"}],
    "priorityClassName": "",
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/eni-agent"}},
    "agent": {"enableTagger": False, "enableEniManager": False, "resyncInterval": "1h",
              "awsRateLimitQps": 3, "awsRateLimitBurst": 6, "logFormat": "text"},
    "extraArgs": ["--tag-namespace=acme"],
    "extraEnv": [{"name": "AWS_REGION", "value": "eu-west-1"}],
    "podAnnotations": {"example.com/a": "b"},
    "podLabels": {"team": "net"},
    "networkPolicy": {"enabled": False},
    "admissionPolicy": {"enabled": False},
    # A trailing slash, as users type it: the chart trims it.
    "dpdk": {"enabled": True, "sriovConfigDir": "/var/lib/pcidp/"},
}
WITH_MONITOR = dict(ALL_ON, serviceMonitor={"enabled": True, "labels": {"release": "prom"}})


def tools(source):
    out = run(["bash", os.path.join(source, "tests", "env", "build-binaries.sh")])
    dirs = dict(line.split("=", 1) for line in out.split() if "=" in line)
    return os.path.join(dirs["HELM_BIN_DIR"], "helm"), os.path.join(dirs["KUBE_BIN_DIR"], "kubectl")


def run(argv, input=None):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, input=input)
    if p.returncode != 0:
        sys.exit("FAIL: %s exited %d:\n%s%s" % (" ".join(argv), p.returncode, p.stdout, p.stderr))
    return p.stdout


def values_file(values):
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(values, f)
    f.close()
    return f.name


def chart(source):
    return os.path.join(source, "daemonset", "chart")


def template(source, helm, values=None, namespace="eni-agent"):
    argv = [helm, "template", "eni-agent", chart(source), "-n", namespace, "--include-crds",
            "--kube-version", "1.34.4"]
    if values:
        argv += ["-f", values_file(values)]
    return run(argv)


def to_objects(yaml_text):
    return [d for d in yaml.safe_load_all(yaml_text) if d]


def fold(value):
    """Multi-line strings (the admission policy's CEL, folded with >-) with their whitespace runs
    as one space: kustomize re-emits folded scalars with other line breaks, which CEL ignores."""
    if isinstance(value, dict):
        return {k: fold(v) for k, v in value.items()}
    if isinstance(value, list):
        return [fold(v) for v in value]
    if isinstance(value, str) and "\n" in value:
        return " ".join(value.split())
    return value


def normalize(obj):
    obj = fold(obj)
    md = obj.get("metadata", {})
    labels = {k: v for k, v in md.get("labels", {}).items() if k not in HELM_LABELS}
    if labels:
        md["labels"] = labels
    else:
        md.pop("labels", None)
    md.pop("annotations", None) if not md.get("annotations") else None
    return obj


def key(obj):
    return "%s/%s %s/%s" % (obj.get("apiVersion"), obj["kind"], obj["metadata"].get("namespace", ""),
                            obj["metadata"]["name"])


def diff(a, b, path=""):
    """The paths where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += diff(a.get(k), b.get(k), "%s.%s" % (path, k))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff(x, y, "%s[%d]" % (path, i))
        return out
    return [] if a == b else ["%s: kustomization %s, chart %s" % (path, json.dumps(a), json.dumps(b))]


def cmd_lint(source):
    helm, _ = tools(source)
    run([helm, "lint", "--strict", chart(source)])
    run([helm, "lint", "--strict", chart(source), "-f", values_file(WITH_MONITOR)])
    print("chart: helm lint --strict passes with the default values and with every option set")
    return 0


def cmd_drift(source):
    helm, kubectl = tools(source)
    kust = {key(o): normalize(o)
            for o in to_objects(run([kubectl, "kustomize", os.path.join(source, "daemonset")]))}
    helm_objs = {key(o): normalize(o) for o in to_objects(template(source, helm))}
    problems = []
    only_kust = sorted(set(kust) - set(helm_objs))
    expected_only = ["v1/Namespace /eni-agent"]
    if only_kust != expected_only:
        problems.append("objects only in the kustomization: %s (expected only %s: Helm makes the "
                        "namespace with --create-namespace)" % (only_kust, expected_only))
    for k in sorted(set(helm_objs) - set(kust)):
        problems.append("object only in the chart: %s" % k)
    for k in sorted(set(kust) & set(helm_objs)):
        for d in diff(kust[k], helm_objs[k]):
            problems.append("%s: %s" % (k, d))
    for p in problems:
        print("FAIL: " + p)
    n = len(set(kust) & set(helm_objs))
    print("chart drift: %s" % ("%d problem(s)" % len(problems) if problems else
                               "the chart's %d objects equal the kustomization's" % n))
    return 1 if problems else 0


def agent_pod(objects):
    ds = [o for o in objects if o["kind"] == "DaemonSet"]
    if len(ds) != 1:
        sys.exit("FAIL: %d DaemonSets rendered, not 1" % len(ds))
    return ds[0]["spec"]["template"]["spec"]


def dpdk_problems(pod, sriov_dir):
    """What is wrong with a DPDK rendering: the agent privileged and root, the two mounts, the
    flags; every other container not privileged."""
    problems = []
    agent = [c for c in pod["containers"] if c["name"] == "eni-agent"]
    if len(agent) != 1:
        return ["%d containers named eni-agent" % len(agent)]
    agent = agent[0]
    others = [c for c in pod["containers"] + pod.get("initContainers", []) if c is not agent]
    problems += ["container %s is privileged: only the agent needs it" % c["name"]
                 for c in others if c.get("securityContext", {}).get("privileged")]
    sc = agent.get("securityContext", {})
    if sc.get("privileged") is not True:
        problems.append("the agent container is not privileged: %s" % json.dumps(sc))
    if sc.get("allowPrivilegeEscalation") is False:
        problems.append("allowPrivilegeEscalation: false in the DPDK rendering (the API refuses "
                        "it with privileged)")
    args = agent["args"]
    if any(a.startswith("--run-as-user") for a in args):
        problems.append("--run-as-user in %s: DPDK binding needs the agent to stay root" % args)
    for want in ("--dpdk-sysfs-root=/host/sys", "--sriov-config-path=%s/config.json" % sriov_dir):
        if args.count(want) != 1:
            problems.append("args %s hold %s %d times, not once" % (args, want, args.count(want)))
    host_paths = {v["name"]: v["hostPath"]["path"] for v in pod.get("volumes", []) if "hostPath" in v}
    mounts = {m["mountPath"]: m for m in agent.get("volumeMounts", [])}
    for host, at in (("/sys", "/host/sys"), (sriov_dir, sriov_dir)):
        m = mounts.get(at)
        if m is None or host_paths.get(m["name"]) != host:
            problems.append("no hostPath %s mounted at %s: mounts %s, hostPaths %s"
                            % (host, at, json.dumps(list(mounts.values())), json.dumps(host_paths)))
        elif m.get("readOnly"):
            problems.append("%s is mounted read-only: binding writes it" % at)
    return problems


def default_problems(pod):
    """What is wrong with a rendering without DPDK: --dpdk-sysfs-root= and --run-as-user, and no
    privilege, host mount or SR-IOV flag."""
    agent = pod["containers"][0]
    args = agent["args"]
    problems = []
    for want in ("--run-as-user=65532:65532", "--dpdk-sysfs-root="):
        if args.count(want) != 1:
            problems.append("args %s hold %s %d times, not once" % (args, want, args.count(want)))
    problems += ["%s without dpdk.enabled" % a for a in args if a.startswith("--sriov-config-path")]
    if agent["securityContext"].get("privileged") or pod.get("volumes") or agent.get("volumeMounts"):
        problems.append("privileged, volumes or mounts without dpdk.enabled")
    return problems


def cmd_dpdk(source):
    helm, _ = tools(source)
    off = dict(ALL_ON, dpdk={"enabled": False, "sriovConfigDir": "/var/lib/pcidp"})
    on_objs, off_objs = to_objects(template(source, helm, ALL_ON)), to_objects(template(source, helm, off))
    problems = dpdk_problems(agent_pod(on_objs), "/var/lib/pcidp")
    problems += default_problems(agent_pod(to_objects(template(source, helm))))
    problems += default_problems(agent_pod(off_objs))
    # The switch changes the agent's args, securityContext and mounts, and the pod's volumes: no
    # other field of any object.
    if [key(o) for o in off_objs] != [key(o) for o in on_objs]:
        problems.append("dpdk.enabled changes the objects: %s, then %s"
                        % ([key(o) for o in off_objs], [key(o) for o in on_objs]))
    for a, b in zip(off_objs, on_objs):
        if a["kind"] == "DaemonSet":
            for o in (a, b):
                pod = o["spec"]["template"]["spec"]
                pod.pop("volumes", None)
                for k in ("args", "securityContext", "volumeMounts"):
                    pod["containers"][0].pop(k, None)
        problems += ["%s: %s" % (key(a), d) for d in diff(a, b)]
    bad = subprocess.run([helm, "template", "eni-agent", chart(source), "--kube-version", "1.34.4",
                          "--set", "dpdk.enabled=true", "--set", "dpdk.sriovConfigDir=etc/pcidp"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if bad.returncode == 0 or "dpdk.sriovConfigDir must be an absolute host directory" not in bad.stdout:
        problems.append("a relative dpdk.sriovConfigDir rendered (exit %d): %s"
                        % (bad.returncode, bad.stdout[-300:]))
    for p in problems:
        print("FAIL: " + p)
    print("chart dpdk: %s" % ("%d problem(s)" % len(problems) if problems else
                              "privileged root agent with /sys and the SR-IOV directory only when enabled"))
    return 1 if problems else 0


def cmd_dry_run(source):
    helm, kubectl = tools(source)
    with open(os.path.join(os.environ["ENI_STACK_DIR"], "stack.json")) as f:
        kubeconfig = json.load(f)["admin_kubeconfig"]
    for name, values in (("default values", None), ("every option set", ALL_ON)):
        out = run([kubectl, "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "-f", "-"],
                  input=template(source, helm, values))
        print("chart (%s): the API server accepts %d objects" % (name, len(out.splitlines())))
    return 0


def main(argv):
    cmds = {"lint": cmd_lint, "drift": cmd_drift, "dpdk": cmd_dpdk, "dry-run": cmd_dry_run}
    if len(argv) != 3 or argv[1] not in cmds:
        print(__doc__)
        return 2
    return cmds[argv[1]](argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
