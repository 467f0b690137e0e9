#!/usr/bin/env bash
# Builds portal-volume and runs it in the foreground as a legacy plugin:
# Docker finds it at /run/docker/plugins/portal-volume.sock by itself.
# Flags go to the daemon (see --help); the Portal tree defaults to
# /home/portal/user_data and is made if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
root=${PORTAL_ROOT:-/home/portal/user_data}
for ((i = 1; i <= $#; i++)); do
  case "${!i}" in
    --root=*) root=${!i#--root=} ;;
    --root) j=$((i + 1)); root=${!j} ;;
  esac
done
mkdir -p "$root"
exec bin/portal-volume --root "$root" "$@"
