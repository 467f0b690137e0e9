#!/usr/bin/env bash
# Removes the managed plugin. Volume records and data stay in the host tree;
# installing again with the same DATA_SOURCE brings every volume back.
# Running containers keep their mounts; new mounts of its volumes fail until
# it is installed again. Idempotent.
# Usage: scripts/uninstall-managed.sh [--name NAME]
set -euo pipefail
name=portal-volume
[ "${1:-}" = --name ] && name=$2
if docker plugin inspect "$name" >/dev/null 2>&1; then
  # -f: Docker refuses to disable a plugin whose volumes exist.
  docker plugin disable -f "$name" >/dev/null 2>&1 || true
  docker plugin rm "$name" >/dev/null
  echo "managed plugin $name removed; the Portal tree is untouched"
else
  echo "no managed plugin $name"
fi
