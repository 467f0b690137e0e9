#!/usr/bin/env bash
# Builds Distribution's image registry, the release pinned in
# scripts/registry/go.mod (go.sum pins every module), from the Go module
# proxy into OUT. The end-to-end suite runs it on 127.0.0.1 to push the
# managed plugin to and install it from, as users do with theirs.
# Usage: scripts/registry.sh OUT
set -euo pipefail
out=${1:?usage: registry.sh OUT}
case $out in /*) ;; *) out=$PWD/$out ;; esac
cd "$(dirname "$0")/registry"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out" github.com/distribution/distribution/v3/cmd/registry
