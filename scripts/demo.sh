#!/usr/bin/env bash
# The main job on the embedded default: build the agent, start the local stack (kube-apiserver,
# etcd, moto, the IMDS emulator), give the instance two ENIs with a pod on each, apply a NodeENI,
# run the agent against the stack under its own ServiceAccount and RBAC with its links in a
# network namespace of the demo's making (--link-netns), play the kernel's part for the ENI the
# agent attaches (a veth with that ENI's MAC), then show `eni-agent status`, the ENIs' tags as
# moto holds them and the EC2 calls made, and tear everything down.
# Needs root for the network namespace (it re-runs itself with sudo when not root).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then exec sudo -E "$0" "$@"; fi
START=$SECONDS
BUILD=${BUILD_DIR:-$PWD/build}
bash scripts/setup.sh
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENI_CURL_PREFIX="$(bash scripts/lean-curl.sh)" >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target eni-agent eni-test-netns
AGENT="$BUILD/agent/eni-agent"
NETNS_TOOL="$BUILD/tests/support/eni-test-netns"
STACK="$BUILD/demo-stack"
agent=""
NS=""
cleanup() {
  [[ -n "$agent" ]] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null
  [[ -n "$NS" ]] && "$NETNS_TOOL" delete "$NS" 2>/dev/null
  python3 tests/env/stack.py down --dir "$STACK" >/dev/null 2>&1 || true
}
trap cleanup EXIT
python3 tests/env/stack.py up --dir "$STACK"
field() { python3 -c "import json,sys;print(json.load(open('$STACK/stack.json'))['$1'])"; }
KUBECTL=$(field kubectl)
REGION=$(field region)
INSTANCE=$(field instance_id)
kc() { "$KUBECTL" --kubeconfig "$STACK/admin.kubeconfig" "$@"; }
ec2() {  # a tiny boto3 helper against moto: ec2 <python expression using c>
  python3 -c "import boto3,json;c=boto3.client('ec2',region_name='$REGION',endpoint_url='$(field moto_endpoint)',aws_access_key_id='demo',aws_secret_access_key='demo');print($1)"
}
status() {  # eni-agent status as an operator on the node runs it
  "$AGENT" status --kubeconfig "$STACK/agent.kubeconfig" --node-name demo-node --link-netns "$NS" "$@"
}
wait_for() {  # wait_for <what> <tries of 0.2 s> <command...>: bounded, and says what it waited for
  local what=$1 tries=$2
  shift 2
  for _ in $(seq 1 "$tries"); do "$@" && return 0; sleep 0.2; done
  echo "demo: gave up waiting for $what; see $LOG" >&2
  return 1
}

NS=$("$NETNS_TOOL" create eni-demo)
echo "== the node's network namespace: $NS (the agent manages its links with --link-netns)"

echo "== two ENIs attached to the instance, a pod on each"
declare -A ENI_OF IP_OF
for i in 1 2; do
  eni=$(ec2 "c.create_network_interface(SubnetId='$(field subnet_c)',TagSpecifications=[{'ResourceType':'network-interface','Tags':[{'Key':'Owner','Value':'finance'}]}])['NetworkInterface']['NetworkInterfaceId']")
  ec2 "c.attach_network_interface(NetworkInterfaceId='$eni',InstanceId='$INSTANCE',DeviceIndex=$i)['AttachmentId']" >/dev/null
  read -r ip mac < <(ec2 "(lambda n: n['PrivateIpAddress']+' '+n['MacAddress'])(c.describe_network_interfaces(NetworkInterfaceIds=['$eni'])['NetworkInterfaces'][0])")
  # The kernel's part for an ENI attached before the agent: its interface, up, as the CNI left it.
  "$NETNS_TOOL" veth "$NS" "eth$i" "$mac" "eth$i-peer" 9001 up
  "$NETNS_TOOL" up "$NS" "eth$i-peer"  # the far end has carrier, like a NIC's wire
  ENI_OF[$i]=$eni
  IP_OF[$i]=$ip
  echo "   $eni at device $i holds $ip, MAC $mac (eth$i); it already carries Owner=finance"
done
kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata: {name: demo-node, labels: {eni-agent.io/enabled: "true", storage: "yes"}}
spec: {providerID: "aws:///us-east-1a/$INSTANCE"}
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
---
apiVersion: v1
kind: Pod
metadata:
  name: api
  namespace: default
  annotations:
    eni-tagger.io/tags: 'Team=Payments,CostCenter=5678'
spec:
  nodeName: demo-node
  containers: [{name: app, image: registry.invalid/app}]
---
apiVersion: networking.k8s.aws/v1alpha1
kind: NodeENI
metadata: {name: storage}
spec:
  nodeSelector: {storage: "yes"}
  subnetID: $(field subnet_a)
  securityGroupIDs: [$(field security_group_id)]
  deviceIndex: 3
  mtu: 9001
  description: storage network
YAML
# Play the kubelet: each pod runs with its ENI's IP.
for pair in web:1 api:2; do
  pod=${pair%%:*}
  ip=${IP_OF[${pair##*:}]}
  kc -n default patch pod "$pod" --subresource=status --type=merge \
    -p "{\"status\":{\"phase\":\"Running\",\"podIP\":\"$ip\",\"podIPs\":[{\"ip\":\"$ip\"}]}}" >/dev/null
done
echo "   pods default/web and default/api annotated; NodeENI storage asks for an ENI in $(field subnet_a) with MTU 9001"

echo "== the agent"
LOG="$BUILD/demo-agent.log"
free_port() { python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])"; }
METRICS=127.0.0.1:$(free_port)
AWS_REGION=$REGION AWS_EC2_METADATA_SERVICE_ENDPOINT=$(field imds_endpoint) \
  AWS_ENDPOINT_URL_EC2=$(field ec2_proxy_endpoint) AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo \
  "$AGENT" --kubeconfig "$STACK/agent.kubeconfig" --node-name demo-node --link-netns "$NS" \
  --metrics-bind-address "$METRICS" --health-probe-bind-address "127.0.0.1:$(free_port)" \
  --log-format text >"$LOG" 2>&1 &
agent=$!
synced() {
  local pod
  for pod in web api; do
    [[ $(kc -n default get pod "$pod" -o jsonpath='{.status.conditions[?(@.type=="eni-tagger.io/tagged")].reason}') == Synced ]] || return 1
  done
}
wait_for "both pods to be tagged" 150 synced

# The kernel's part for the ENI the agent attaches: once moto shows it attached, an interface
# with its MAC appears (down, default MTU); the agent brings it up with MTU 9001 from the event.
STORAGE_ENI=""
attached() {
  read -r STORAGE_ENI STORAGE_MAC < <(ec2 "' '.join((lambda n: [n[0]['NetworkInterfaceId'], n[0]['MacAddress']] if n and n[0].get('Attachment',{}).get('Status')=='attached' else ['-','-'])(c.describe_network_interfaces(Filters=[{'Name':'tag:NodeENI','Values':['storage']}])['NetworkInterfaces']))")
  [[ "$STORAGE_ENI" != "-" ]]
}
wait_for "the NodeENI's ENI to be attached" 150 attached
"$NETNS_TOOL" veth "$NS" ens7 "$STORAGE_MAC" ens7-peer
"$NETNS_TOOL" up "$NS" ens7-peer
echo "   the kernel announces ens7 ($STORAGE_MAC) for $STORAGE_ENI"
configured() {
  status --output json 2>/dev/null | python3 -c "
import json, sys
s = json.load(sys.stdin)
e = {x['eniId']: x for x in s['enis']}.get('$STORAGE_ENI')
sys.exit(0 if e and e['link'] == 'up' and e['mtu'] == 9001 and e['attachmentState'] == 'attached' and e['recordedLink'] == 'Configured' and len(s['enis']) == 3 else 1)"
}
wait_for "ens7 up with MTU 9001 in the node state" 150 configured
sed 's/^/  agent | /' "$LOG"

echo
echo "== the pods' conditions"
for pod in web api; do
  kc -n default get pod "$pod" -o jsonpath="{range .status.conditions[?(@.type==\"eni-tagger.io/tagged\")]}  default/$pod {.type}={.status} reason={.reason}: {.message}{\"\\n\"}{end}"
done
echo "== eni-agent status (the node annotation merged with the live links of $NS)"
status | sed 's/^/  /; s/^ *$//'
echo "== eni-agent status --output json, for scripts (one ENI shown)"
status --output json | python3 -c "
import json, sys
s = json.load(sys.stdin)
print('  ' + json.dumps([e for e in s['enis'] if e['eniId'] == '$STORAGE_ENI'][0], sort_keys=True))"
echo "== the ENIs' tags, as moto holds them"
for eni in "${ENI_OF[1]}" "${ENI_OF[2]}" "$STORAGE_ENI"; do
  echo "  $eni"
  ec2 "'\n'.join('    %s=%s' % (t['Key'], t['Value']) for t in sorted(c.describe_network_interfaces(NetworkInterfaceIds=['$eni'])['NetworkInterfaces'][0]['TagSet'], key=lambda t: t['Key']))"
done
echo "== the node's NodeENIAttachment (per-node status)"
kc get nodeeniattachments --field-selector spec.nodeENI=storage
kc get nodeeniattachments --field-selector spec.nodeENI=storage -o jsonpath='{range .items[*]}{range .status.attachments[*]}  eni={.eniID} device={.deviceIndex} mtu={.mtu} status={.status}{"\n"}{end}{end}'
echo "== EC2 latency per attempt (eni_agent_aws_api_duration_seconds, from /metrics)"
python3 -c "
import re, urllib.request
text = urllib.request.urlopen('http://$METRICS/metrics').read().decode()
n = {m[0]: m[1] for m in re.findall(r'eni_agent_aws_api_duration_seconds_count\{operation=\"(\w+)\"\} (\S+)', text)}
s = {m[0]: m[1] for m in re.findall(r'eni_agent_aws_api_duration_seconds_sum\{operation=\"(\w+)\"\} (\S+)', text)}
for op in sorted(n):
    print('  %-32s %3d attempts, mean %.1f ms' % (op, float(n[op]), 1000 * float(s[op]) / float(n[op])))"
echo "== EC2 calls the agent made (counted at the fault proxy)"
python3 -c "import json,urllib.request;print('  ', json.load(urllib.request.urlopen('$(field ec2_proxy_endpoint)/_proxy/stats'))['requests'])"
# What the output above must show, checked so that a wrong demo fails loudly.
tags_of() { ec2 "','.join(sorted('%s=%s' % (t['Key'], t['Value']) for t in c.describe_network_interfaces(NetworkInterfaceIds=['$1'])['NetworkInterfaces'][0]['TagSet']))"; }
[[ $(tags_of "${ENI_OF[1]}") == *"Owner=finance"*"Team=Platform"* ]] || { echo "demo: web's ENI lacks its tags or lost Owner=finance" >&2; exit 1; }
[[ $(tags_of "${ENI_OF[2]}") == *"Owner=finance"*"Team=Payments"* ]] || { echo "demo: api's ENI lacks its tags or lost Owner=finance" >&2; exit 1; }
[[ $(tags_of "$STORAGE_ENI") == *"eni-agent.io/managed-by=eni-agent"* ]] || { echo "demo: the NodeENI's ENI lacks its ownership tag" >&2; exit 1; }
status | grep -q "ens7 .*up .*9001 .*storage" || { echo "demo: status does not show ens7 up with MTU 9001" >&2; exit 1; }
echo
echo "demo: checked (tags in moto, foreign tag kept, ens7 up with MTU 9001); done in $((SECONDS - START)) s (tearing down)"
