#!/usr/bin/env bash
# Builds the static portal-volume binary into bin/.
set -euo pipefail
cd "$(dirname "$0")/.."
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/portal-volume ./plugin
echo "built $(pwd)/bin/portal-volume"
