#!/usr/bin/env bash
# The main job on the embedded default: build the agent, start the local stack (kube-apiserver,
# etcd, moto, the IMDS emulator), give the instance an ENI, annotate a pod whose IP is on it, run
# the agent against the stack under its own ServiceAccount and RBAC, show the ENI's tags as moto
# holds them and the pod's condition, then tear everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-$PWD/build}
bash scripts/setup.sh
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target eni-agent
STACK="$BUILD/demo-stack"
agent=""
cleanup() {
  [[ -n "$agent" ]] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null
  python3 tests/env/stack.py down --dir "$STACK" >/dev/null 2>&1 || true
}
trap cleanup EXIT
python3 tests/env/stack.py up --dir "$STACK"
field() { python3 -c "import json,sys;print(json.load(open('$STACK/stack.json'))['$1'])"; }
KUBECTL=$(field kubectl)
kc() { "$KUBECTL" --kubeconfig "$STACK/admin.kubeconfig" "$@"; }
ec2() {  # a tiny boto3 helper against moto: ec2 <python expression using c>
  python3 -c "import boto3,json;c=boto3.client('ec2',region_name='$(field region)',endpoint_url='$(field moto_endpoint)',aws_access_key_id='demo',aws_secret_access_key='demo');print($1)"
}

echo "== an ENI attached to the instance, and a pod on it"
ENI=$(ec2 "c.create_network_interface(SubnetId='$(field subnet_c)',TagSpecifications=[{'ResourceType':'network-interface','Tags':[{'Key':'Owner','Value':'finance'}]}])['NetworkInterface']['NetworkInterfaceId']")
ec2 "c.attach_network_interface(NetworkInterfaceId='$ENI',InstanceId='$(field instance_id)',DeviceIndex=1)['AttachmentId']" >/dev/null
IP=$(ec2 "c.describe_network_interfaces(NetworkInterfaceIds=['$ENI'])['NetworkInterfaces'][0]['PrivateIpAddress']")
echo "   $ENI holds $IP and already carries Owner=finance (not the agent's)"
kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata: {name: demo-node, labels: {eni-agent.io/enabled: "true"}}
spec: {providerID: "aws:///us-east-1a/$(field instance_id)"}
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  annotations:
    eni-tagger.io/tags: '{"Team":"Platform","CostCenter":"1234"}'
spec:
  nodeName: demo-node
  containers: [{name: app, image: registry.invalid/app}]
YAML
# Play the kubelet: the pod runs with the ENI's IP.
kc -n default patch pod web --subresource=status --type=merge \
  -p "{\"status\":{\"phase\":\"Running\",\"podIP\":\"$IP\",\"podIPs\":[{\"ip\":\"$IP\"}]}}" >/dev/null

echo "== the agent"
LOG="$BUILD/demo-agent.log"
AWS_REGION=$(field region) AWS_EC2_METADATA_SERVICE_ENDPOINT=$(field imds_endpoint) \
  AWS_ENDPOINT_URL_EC2=$(field ec2_proxy_endpoint) AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo \
  "$BUILD/agent/eni-agent" --kubeconfig "$STACK/agent.kubeconfig" --node-name demo-node \
  --log-format text >"$LOG" 2>&1 &
agent=$!
for _ in $(seq 1 100); do
  reason=$(kc -n default get pod web -o jsonpath='{.status.conditions[?(@.type=="eni-tagger.io/tagged")].reason}')
  [[ "$reason" == "Synced" ]] && break
  sleep 0.1
done
sleep 1  # let the debounced node-state write land
sed 's/^/  agent | /' "$LOG"

echo
echo "== the pod's condition and last-applied tags"
kc -n default get pod web -o jsonpath='{range .status.conditions[?(@.type=="eni-tagger.io/tagged")]}  {.type}={.status} reason={.reason}: {.message}{"\n"}{end}'
kc -n default get pod web -o jsonpath='  last-applied-tags={.metadata.annotations.eni-tagger\.io/last-applied-tags}{"\n"}'
echo "== events"
kc -n default get events --field-selector involvedObject.name=web -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message --no-headers | sed 's/^/  /'
echo "== the ENI's tags, as moto holds them"
ec2 "'\n'.join('  %s=%s' % (t['Key'], t['Value']) for t in sorted(c.describe_network_interfaces(NetworkInterfaceIds=['$ENI'])['NetworkInterfaces'][0]['TagSet'], key=lambda t: t['Key']))"
echo "== the node state (eni-agent.io/state on demo-node)"
kc get node demo-node -o jsonpath='{.metadata.annotations.eni-agent\.io/state}' | python3 -m json.tool | sed 's/^/  /'
echo "== EC2 calls the agent made (counted at the fault proxy)"
python3 -c "import json,urllib.request;print('  ', json.load(urllib.request.urlopen('$(field ec2_proxy_endpoint)/_proxy/stats'))['requests'])"
[[ "$reason" == "Synced" ]] || { echo "demo: the pod was not tagged; see $LOG" >&2; exit 1; }
echo
echo "demo: done (eni-agent status and the NodeENI part come with their issues)"
