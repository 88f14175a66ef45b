#!/usr/bin/env bash
# The main job on the embedded default. Until the tagger and ENI manager land, the demo builds
# the agent, starts the local test stack (kube-apiserver, etcd, moto, IMDS emulator), runs the
# agent against it under its own RBAC until it reports ready, prints its --help, and tears
# everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-$PWD/build}
bash scripts/setup.sh
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target eni-agent
STACK="$BUILD/demo-stack"
trap 'python3 tests/env/stack.py down --dir "$STACK" >/dev/null 2>&1 || true' EXIT
python3 tests/env/stack.py up --dir "$STACK"
KUBECTL="$(python3 -c "import json;print(json.load(open('$STACK/stack.json'))['kubectl'])")"
"$KUBECTL" --kubeconfig "$STACK/admin.kubeconfig" apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: demo
  namespace: default
  annotations:
    eni-tagger.io/tags: '{"Team":"Platform","CostCenter":"1234"}'
spec:
  nodeName: demo-node
  containers: [{name: app, image: registry.invalid/app}]
YAML
LOG="$BUILD/demo-agent.log"
"$BUILD/agent/eni-agent" --kubeconfig "$STACK/agent.kubeconfig" --node-name demo-node \
  --log-format text --log-level debug >"$LOG" 2>&1 &
agent=$!
for _ in $(seq 1 100); do grep -q " ready " "$LOG" && break; sleep 0.1; done
kill "$agent" 2>/dev/null || true
wait "$agent" 2>/dev/null || true
echo "== the agent, under its own ServiceAccount and RBAC, against the local stack:"
sed 's/^/  agent | /' "$LOG"
echo
"$BUILD/agent/eni-agent" --help
