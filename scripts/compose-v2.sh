#!/usr/bin/env bash
# Installs Compose v2 as the Docker CLI plugin (docker compose) when
# `docker compose version` fails: Debian packages docker-compose v1 only.
# It builds the release pinned in scripts/compose-v2/go.mod from the Go
# module proxy (go.sum pins every module) into
# ${DOCKER_CONFIG:-~/.docker}/cli-plugins/docker-compose.
#
# v5.6.0: v5.7.x needs Go 1.26.10. It talks to Debian's dockerd 20.10 (API
# 1.41), which the suite runs.
set -euo pipefail
if docker compose version >/dev/null 2>&1; then
  exit 0
fi
cd "$(dirname "$0")/compose-v2"
module=github.com/docker/compose/v5
version=$(go list -m -f '{{.Version}}' "$module")
dest=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
mkdir -p "$dest"
echo "building Compose $version (a few minutes on first use)"
CGO_ENABLED=0 go build -buildvcs=false -trimpath -ldflags "-s -w -X $module/internal.Version=$version" \
  -o "$dest/docker-compose.new" "$module/cmd"
mv "$dest/docker-compose.new" "$dest/docker-compose"
docker compose version
