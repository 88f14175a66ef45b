#!/usr/bin/env bash
# Builds the test stack's kube-apiserver and etcd from the official Go modules at pinned
# versions, and caches them under $HOME/.cache/eni-agent/test-stack/<name>-<version>/.
# A cached binary is reused; nothing is downloaded except Go modules through the module proxy.
# Prints the directory that holds the binaries (one `bin` directory per version pair).
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE_ROOT="${ENI_AGENT_CACHE:-$HOME/.cache/eni-agent}/test-stack"

log() { echo "build-binaries: $*" >&2; }

build_kube() {
  local out="$CACHE_ROOT/kubernetes-$KUBE_VERSION"
  if [[ -x "$out/kube-apiserver" && -x "$out/kubectl" ]]; then
    log "kube-apiserver $KUBE_VERSION cached in $out"
    return
  fi
  local work; work=$(mktemp -d)
  log "building kube-apiserver and kubectl $KUBE_VERSION (cold: several minutes)"
  local staging="v0${KUBE_VERSION#v1}"   # v1.34.4 -> v0.34.4
  (
    cd "$work"
    go mod init eni-agent.test/kubestack >/dev/null 2>&1
    # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with local
    # paths that do not exist outside its repository; point each at its published version.
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    {
      echo "require k8s.io/kubernetes $KUBE_VERSION"
      grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
    } >> go.mod
    cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    go mod tidy >/dev/null 2>&1 || go get "k8s.io/kubernetes@$KUBE_VERSION" >/dev/null
    go mod tidy
    local minor; minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
    local ld="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld="$ld -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
      ld="$ld -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
    done
    mkdir -p "$out.tmp"
    CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$out.tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
    CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$out.tmp/kubectl" k8s.io/kubernetes/cmd/kubectl
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

mkdir -p "$CACHE_ROOT"
build_etcd
build_kube
echo "KUBE_BIN_DIR=$CACHE_ROOT/kubernetes-$KUBE_VERSION"
echo "ETCD_BIN_DIR=$CACHE_ROOT/etcd-$ETCD_VERSION"
