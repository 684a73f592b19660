#!/usr/bin/env bash
# Builds the binaries of a real Kubernetes control plane for Meridian's kubernetes-driver tests and
# benchmark: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (simulated nodes and
# pods) and kubectl (benchmark peer). Everything comes from the Go module proxy at pinned versions and
# is compiled into a cache outside the repository:
#
#   ${MERIDIAN_K8S_CACHE:-$HOME/.cache/meridian-k8s}/<versions>/bin
#
# The second run is a no-op. Prints the bin directory on its last line of stdout.
#
# Why a wrapper module: k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
# local paths, so `go install k8s.io/kubernetes/cmd/...@v1.x` is refused. The wrapper requires
# k8s.io/kubernetes and replaces every staging module with its published v0.Y.Z tag. kwok and etcd
# are built in the same module so the packages they share with Kubernetes compile once.
#
# Environment: MERIDIAN_K8S_CHECK_ONLY=1 (print the bin directory when built, else fail: no build),
# MERIDIAN_K8S_CACHE (cache root), MERIDIAN_K8S_BUILD_JOBS (go build -p, default: number
# of cores), MERIDIAN_K8S_NICE (nice level of the build, default 10). On a shared machine run it with
# MERIDIAN_K8S_BUILD_JOBS=1 MERIDIAN_K8S_NICE=19.
set -euo pipefail

K8S_VERSION=1.36.1   # k8s.io/kubernetes; staging modules at v0.36.1
ETCD_VERSION=3.6.8   # the etcd server k8s.io/kubernetes v1.36.1 itself pins
KWOK_VERSION=0.8.0   # built against k8s.io/* v0.36.1

CACHE_ROOT=${MERIDIAN_K8S_CACHE:-$HOME/.cache/meridian-k8s}
DIR="$CACHE_ROOT/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
BIN="$DIR/bin"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubectl)

have_all() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
  [[ -f "$DIR/.complete" ]]
}

if have_all; then
  echo "k8s-test-bins: up to date in $BIN" >&2
  echo "$BIN"
  exit 0
fi
if [[ -n "${MERIDIAN_K8S_CHECK_ONLY:-}" ]]; then
  echo "k8s-test-bins: the Kubernetes test binaries are not built yet; run: bash scripts/k8s-test-bins.sh" >&2
  exit 1
fi

command -v go >/dev/null || {
  echo "k8s-test-bins: Go is required (https://go.dev/dl/, or apt-get install golang-go >= 1.26)" >&2
  exit 1
}

JOBS=${MERIDIAN_K8S_BUILD_JOBS:-$(nproc)}
NICE=${MERIDIAN_K8S_NICE:-10}
export GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -mod=mod" CGO_ENABLED=0
SRC="$DIR/src"
mkdir -p "$SRC" "$BIN"
cd "$SRC"

if [[ ! -f go.sum || ! -f .resolved ]]; then
  echo "k8s-test-bins: resolving modules (k8s $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION)" >&2
  rm -f go.mod go.sum
  go mod init example.invalid/meridian-k8s-test-bins >/dev/null 2>&1
  go mod edit -go=1.26.0
  go mod edit -require="k8s.io/kubernetes@v$K8S_VERSION"
  gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  for m in $(awk '$2=="v0.0.0" && $1 ~ /^k8s\.io\// {print $1}' "$gomod"); do
    go mod edit -replace="$m=$m@v0.${K8S_VERSION#1.}"
  done
  mkdir -p etcd
  cat >etcd/main.go <<'EOF'
// Command etcd is etcd's own main, built from the go.etcd.io/etcd/server/v3 module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  # go get with package paths records exactly the go.sum entries the builds below need.
  k=k8s.io/kubernetes/cmd
  go get "$k/kube-apiserver@v$K8S_VERSION" "$k/kube-controller-manager@v$K8S_VERSION" \
    "$k/kube-scheduler@v$K8S_VERSION" "$k/kubectl@v$K8S_VERSION" \
    "go.etcd.io/etcd/server/v3/etcdmain@v$ETCD_VERSION" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" >&2
  touch .resolved
fi

LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
build() { # name package
  [[ -x "$BIN/$1" ]] && return 0
  echo "k8s-test-bins: building $1 (go build -p $JOBS, nice $NICE)" >&2
  nice -n "$NICE" go build -p "$JOBS" -trimpath -ldflags "$LDFLAGS" -o "$BIN/$1.tmp" "$2"
  mv "$BIN/$1.tmp" "$BIN/$1"
}
build etcd ./etcd
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
build kwok sigs.k8s.io/kwok/cmd/kwok
build kubectl k8s.io/kubernetes/cmd/kubectl
touch "$DIR/.complete"
echo "k8s-test-bins: built into $BIN" >&2
echo "$BIN"
