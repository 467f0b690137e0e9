#!/usr/bin/env bash
# Installs what the test suite needs and a fresh Debian machine with Go
# lacks: Debian's packages, then Compose v2 (scripts/compose-v2.sh).
set -euo pipefail
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v busybox >/dev/null || need+=(busybox-static)
command -v unshare >/dev/null || need+=(util-linux)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v git >/dev/null || need+=(git)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
"$(dirname "$0")/compose-v2.sh"
