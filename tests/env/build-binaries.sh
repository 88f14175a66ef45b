#!/usr/bin/env bash
# Builds the test stack's Kubernetes components, etcd and Helm from their official Go modules at
# pinned versions, and caches them under $HOME/.cache/eni-agent/test-stack/<name>-<version>/:
#   kubernetes-<v>/       kube-apiserver, kubectl (every integration test)
#   kubernetes-node-<v>/  kubelet, kube-scheduler, kube-controller-manager (label realcluster)
#   etcd-<v>/             etcd
#   helm-<v>/             helm (the chart's tests)
# A cached binary is reused; nothing is downloaded except Go modules through the module proxy.
# Prints NAME_BIN_DIR=<directory> lines, one per group. Each group's cold build time goes to
# stderr and to $CACHE_ROOT/build-times.txt (scripts/test.sh reports them).
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.19.5}"
CACHE_ROOT="${ENI_AGENT_CACHE:-$HOME/.cache/eni-agent}/test-stack"

log() { echo "build-binaries: $*" >&2; }
timed() {  # NAME COMMAND...: runs it, and records how long a cold build took
  local start=$SECONDS
  "${@:2}"
  log "$1 built in $((SECONDS - start))s"
  echo "$1 $((SECONDS - start))s $(date -u +%FT%TZ)" >> "$CACHE_ROOT/build-times.txt"
}

# A wrapper module in $PWD that builds commands of k8s.io/kubernetes at $KUBE_VERSION: the module
# requires its staging modules at v0.0.0 and replaces them with local paths that do not exist
# outside its repository; point each at its published version (v1.34.4 -> v0.34.4).
kube_module() {
  local staging="v0${KUBE_VERSION#v1}"
  go mod init eni-agent.test/kubestack >/dev/null 2>&1
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
  } >> go.mod
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for cmd in "$@"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$cmd"; done
    printf ')\n'
  } > tools.go
  go mod tidy >/dev/null 2>&1 || go get "k8s.io/kubernetes@$KUBE_VERSION" >/dev/null
  go mod tidy
}

# The version the binaries report (kubectl version, the Node's kubeletVersion).
kube_ldflags() {
  local minor; minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld="$ld -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$ld"
}

# build_kube_cmds OUT_DIR CMD...: builds k8s.io/kubernetes/cmd/CMD for each CMD into OUT_DIR,
# unless all are there already.
build_kube_cmds() {
  local out=$1; shift
  local cmd missing=0
  for cmd in "$@"; do [[ -x "$out/$cmd" ]] || missing=1; done
  if ((missing == 0)); then
    log "$* $KUBE_VERSION cached in $out"
    return
  fi
  local work; work=$(mktemp -d)
  log "building $* $KUBE_VERSION (cold: several minutes)"
  (
    cd "$work"
    kube_module "$@"
    local ld; ld=$(kube_ldflags)
    mkdir -p "$out.tmp"
    for cmd in "$@"; do
      CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$out.tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd"
    done
  )
  rm -rf "$out" && mv "$out.tmp" "$out"
  rm -rf "$work"
}

build_etcd() {
  local out="$CACHE_ROOT/etcd-$ETCD_VERSION"
  if [[ -x "$out/etcd" ]]; then
    log "etcd $ETCD_VERSION cached in $out"
    return
  fi
  local work; work=$(mktemp -d)
  log "building etcd $ETCD_VERSION"
  (
    cd "$work"
    go mod init eni-agent.test/etcdstack >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null
    cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
    go mod tidy
    mkdir -p "$out.tmp"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3
  )
  rm -rf "$out" && mv "$out.tmp" "$out"
  rm -rf "$work"
}

build_helm() {
  local out="$CACHE_ROOT/helm-$HELM_VERSION"
  if [[ -x "$out/helm" ]]; then
    log "helm $HELM_VERSION cached in $out"
    return
  fi
  local work; work=$(mktemp -d)
  log "building helm $HELM_VERSION"
  (
    cd "$work"
    go mod init eni-agent.test/helm >/dev/null 2>&1
    go get "helm.sh/helm/v3@$HELM_VERSION" >/dev/null 2>&1
    printf '//go:build tools\n\npackage tools\n\nimport _ "helm.sh/helm/v3/cmd/helm"\n' > tools.go
    go mod tidy >/dev/null 2>&1
    mkdir -p "$out.tmp"
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
      -o "$out.tmp/helm" helm.sh/helm/v3/cmd/helm
  )
  rm -rf "$out" && mv "$out.tmp" "$out"
  rm -rf "$work"
}

mkdir -p "$CACHE_ROOT"
# Only what is missing is built, and timed; a warm run only checks the cache.
cached() { for f in "$@"; do [[ -x "$f" ]] || return 1; done; }
K=$CACHE_ROOT/kubernetes-$KUBE_VERSION N=$CACHE_ROOT/kubernetes-node-$KUBE_VERSION
cached "$CACHE_ROOT/etcd-$ETCD_VERSION/etcd" || timed "etcd-$ETCD_VERSION" build_etcd
cached "$K/kube-apiserver" "$K/kubectl" ||
  timed "kube-apiserver+kubectl-$KUBE_VERSION" build_kube_cmds "$K" kube-apiserver kubectl
cached "$N/kubelet" "$N/kube-scheduler" "$N/kube-controller-manager" ||
  timed "kubelet+scheduler+controller-manager-$KUBE_VERSION" \
    build_kube_cmds "$N" kubelet kube-scheduler kube-controller-manager
cached "$CACHE_ROOT/helm-$HELM_VERSION/helm" || timed "helm-$HELM_VERSION" build_helm
echo "KUBE_BIN_DIR=$K"
echo "KUBE_NODE_BIN_DIR=$N"
echo "ETCD_BIN_DIR=$CACHE_ROOT/etcd-$ETCD_VERSION"
echo "HELM_BIN_DIR=$CACHE_ROOT/helm-$HELM_VERSION"
