#!/usr/bin/env bash
# Builds the static portal-volume binary, stamped with its version.
# Usage: scripts/build.sh [OUT]          (default bin/portal-volume)
#   VERSION  the version it reports (default: git describe --tags --always
#            --dirty, or "unstamped" outside a git checkout)
#   COMMIT   the commit it reports (default: git rev-parse --short=12 HEAD)
#   GOARCH   the architecture (default: the host's)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bin/portal-volume}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo unstamped)}
commit=${COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X main.version=$version -X main.commit=$commit" \
  -o "$out" ./plugin
echo "built $out: $version ($commit) for linux/${GOARCH:-$(go env GOARCH)}"
