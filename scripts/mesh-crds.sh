#!/usr/bin/env bash
# Fetches the CRD schemas the Istio and Gateway API exporters' tests validate against, from the Go module
# proxy at pinned versions, into a cache outside the repository (shared with scripts/k8s-gateway-crds.sh,
# same layout):
#
#   ${MERIDIAN_K8S_CACHE:-$HOME/.cache/meridian-k8s}/gateway-api-<version>/crds/gateway.networking.k8s.io_<kind>.yaml
#   ${MERIDIAN_K8S_CACHE:-$HOME/.cache/meridian-k8s}/istio-api-<version>/crds/customresourcedefinitions.gen.yaml
#
# Module sigs.k8s.io/gateway-api (config/crd/standard/) and istio.io/api (kubernetes/). The second run is a
# no-op. Prints the cache root on its last line of stdout.
set -euo pipefail

GATEWAY_API_VERSION=1.6.3 # sigs.k8s.io/gateway-api; v1.7.0 needs a newer Go than 1.26
ISTIO_API_VERSION=1.32.0  # istio.io/api
GATEWAY_CRDS=(gatewayclasses gateways httproutes referencegrants)

CACHE_ROOT=${MERIDIAN_K8S_CACHE:-$HOME/.cache/meridian-k8s}
GW="$CACHE_ROOT/gateway-api-$GATEWAY_API_VERSION/crds"
ISTIO="$CACHE_ROOT/istio-api-$ISTIO_API_VERSION/crds"

have_all() {
  local c
  for c in "${GATEWAY_CRDS[@]}"; do [[ -s "$GW/gateway.networking.k8s.io_$c.yaml" ]] || return 1; done
  [[ -s "$ISTIO/customresourcedefinitions.gen.yaml" ]]
}

if have_all; then
  echo "mesh-crds: up to date in $CACHE_ROOT" >&2
  echo "$CACHE_ROOT"
  exit 0
fi
command -v go >/dev/null || {
  echo "mesh-crds: Go is required (apt-get install golang-go >= 1.26)" >&2
  exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# `go mod download` needs no module of its own; it fetches (or finds in GOMODCACHE) the module's source
dir_of() { (cd "$tmp" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p'); }

gw=$(dir_of "sigs.k8s.io/gateway-api@v$GATEWAY_API_VERSION")
[[ -n "$gw" && -d "$gw/config/crd/standard" ]] || {
  echo "mesh-crds: go mod download sigs.k8s.io/gateway-api@v$GATEWAY_API_VERSION gave no config/crd/standard" >&2
  exit 1
}
mkdir -p "$GW.tmp"
for c in "${GATEWAY_CRDS[@]}"; do cp "$gw/config/crd/standard/gateway.networking.k8s.io_$c.yaml" "$GW.tmp/"; done
rm -rf "$GW" && mv "$GW.tmp" "$GW"

istio=$(dir_of "istio.io/api@v$ISTIO_API_VERSION")
[[ -n "$istio" && -s "$istio/kubernetes/customresourcedefinitions.gen.yaml" ]] || {
  echo "mesh-crds: go mod download istio.io/api@v$ISTIO_API_VERSION gave no kubernetes/customresourcedefinitions.gen.yaml" >&2
  exit 1
}
mkdir -p "$ISTIO.tmp"
cp "$istio/kubernetes/customresourcedefinitions.gen.yaml" "$ISTIO.tmp/"
rm -rf "$ISTIO" && mv "$ISTIO.tmp" "$ISTIO"
echo "mesh-crds: fetched into $CACHE_ROOT" >&2
echo "$CACHE_ROOT"
