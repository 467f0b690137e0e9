#!/usr/bin/env bash
# Builds portal-volume and installs it as a managed Docker plugin, enabled.
# Idempotent, and the upgrade path: an installed plugin of the same name is
# disabled, replaced and enabled again. Volume records and data live in the
# host tree, so every volume survives.
# Usage: scripts/install-managed.sh [--name NAME] [--data DIR] [KEY=VALUE ...]
#   --data DIR    the Portal tree on the host (default /home/portal/user_data)
#   KEY=VALUE     more plugin settings, e.g. LOG_LEVEL=debug
set -euo pipefail
name=portal-volume
data=/home/portal/user_data
while [ $# -gt 0 ]; do
  case "$1" in
    --name) name=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    *) break ;;
  esac
done
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
scripts/plugin-rootfs.sh "$work/plugin" >/dev/null
mkdir -p "$data"
if docker plugin inspect "$name" >/dev/null 2>&1; then
  # Refuses while a container uses one of its volumes: stop those first.
  docker plugin disable "$name" >/dev/null 2>&1 || true
  docker plugin rm "$name" >/dev/null
fi
docker plugin create "$name" "$work/plugin" >/dev/null
docker plugin set "$name" data.source="$data" "$@"
docker plugin enable "$name" >/dev/null
echo "managed plugin $name enabled; Portal tree $data"
