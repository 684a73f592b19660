#!/usr/bin/env bash
# Fetches the Gateway API CRDs (standard channel: GatewayClass, Gateway, HTTPRoute, ReferenceGrant) that
# the kubernetes driver's tests install into their real test API server, from the Go module proxy
# (module sigs.k8s.io/gateway-api at a pinned version, config/crd/standard/), into a cache outside the
# repository:
#
#   ${MERIDIAN_K8S_CACHE:-$HOME/.cache/meridian-k8s}/gateway-api-<version>/crds
#
# The second run is a no-op. Prints the CRD directory on its last line of stdout.
# Environment: MERIDIAN_K8S_CHECK_ONLY=1 (print the directory when fetched, else fail: no download),
# MERIDIAN_K8S_CACHE (cache root).
set -euo pipefail

GATEWAY_API_VERSION=1.6.3   # sigs.k8s.io/gateway-api; v1.7.0 needs a newer Go than 1.26
CRDS=(gatewayclasses gateways httproutes referencegrants)

CACHE_ROOT=${MERIDIAN_K8S_CACHE:-$HOME/.cache/meridian-k8s}
DIR="$CACHE_ROOT/gateway-api-$GATEWAY_API_VERSION/crds"

# the directory is moved into place only once every CRD is in it, so its presence means complete
if [[ -d "$DIR" ]]; then
  echo "k8s-gateway-crds: up to date in $DIR" >&2 && echo "$DIR" && exit 0
elif [[ -n "${MERIDIAN_K8S_CHECK_ONLY:-}" ]]; then
  echo "k8s-gateway-crds: the Gateway API CRDs are not fetched yet; run: bash scripts/k8s-gateway-crds.sh" >&2 && exit 1
fi
command -v go >/dev/null || {
  echo "k8s-gateway-crds: Go is required (https://go.dev/dl/, or apt-get install golang-go >= 1.26)" >&2
  exit 1
}

# `go mod download` needs no module of its own; it fetches (or finds in GOMODCACHE) the module's source.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src=$(cd "$tmp" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/gateway-api@v$GATEWAY_API_VERSION" |
  sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
[[ -n "$src" && -d "$src/config/crd/standard" ]] || {
  echo "k8s-gateway-crds: go mod download sigs.k8s.io/gateway-api@v$GATEWAY_API_VERSION gave no config/crd/standard" >&2
  exit 1
}
rm -rf "$DIR.tmp" && mkdir -p "$DIR.tmp"
for c in "${CRDS[@]}"; do cp "$src/config/crd/standard/gateway.networking.k8s.io_$c.yaml" "$DIR.tmp/"; done
rm -rf "$DIR" && mv "$DIR.tmp" "$DIR"
echo "k8s-gateway-crds: fetched into $DIR" >&2
echo "$DIR"
