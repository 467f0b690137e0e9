#!/usr/bin/env bash
# Installs portal-volume as a managed Docker plugin from a registry, as
# users do, or upgrades an installed one to REF. Volume records and data
# live in the host tree, so every volume survives an upgrade; containers
# keep running (their mounts stay), new mounts wait for the enable.
#
# Usage: scripts/install-managed.sh [--name NAME] [--data DIR] REF [KEY=VALUE ...]
#   REF         the plugin, such as registry.example.org/portal/portal-volume:1.2.0
#   --name      the name it is installed as (default portal-volume)
#   --data DIR  the Portal tree on the host (DATA_SOURCE); an install
#               defaults to /home/portal/user_data, an upgrade keeps it
#   KEY=VALUE   more settings at install, such as LOG_LEVEL=debug
set -euo pipefail
usage="usage: scripts/install-managed.sh [--name NAME] [--data DIR] REF [KEY=VALUE ...]"
name=portal-volume
data=
while [ $# -gt 0 ]; do
  case "$1" in
    --name) name=${2:?$usage}; shift 2 ;;
    --data) data=${2:?$usage}; shift 2 ;;
    *) break ;;
  esac
done
ref=${1:-}
[ -n "$ref" ] || { echo "install-managed.sh: REF is missing ($usage)" >&2; exit 2; }
shift
if [ -n "$data" ] && [ ! -d "$data" ]; then
  echo "install-managed.sh: --data \"$data\": want an existing directory, the Portal tree" >&2
  exit 2
fi

repo() { local r=${1%@*}; [[ ${r##*/} == *:* ]] && r=${r%:*}; echo "$r"; }

if ! docker plugin inspect "$name" >/dev/null 2>&1; then
  data=${data:-/home/portal/user_data}
  if [ ! -d "$data" ]; then
    echo "install-managed.sh: the Portal tree \"$data\" does not exist: give --data DIR" >&2
    exit 2
  fi
  docker plugin install --grant-all-permissions --alias "$name" "$ref" DATA_SOURCE="$data" "$@"
  echo "managed plugin $name installed from $ref; Portal tree $data"
  exit 0
fi

installed=$(docker plugin inspect -f '{{.PluginReference}}' "$name")
if [ "$(repo "$installed")" != "$(repo "$ref")" ]; then
  echo "install-managed.sh: REF \"$ref\" is another plugin than $name ($installed): want $(repo "$installed"):VERSION" >&2
  exit 2
fi
[ $# -eq 0 ] || { echo "install-managed.sh: settings ($*) are for an install; an upgrade keeps the plugin's" >&2; exit 2; }
# A release before DATA_SOURCE had the tree as the mount data.source, which
# an upgrade resets: carry it over.
env=$(docker plugin inspect -f '{{range .Settings.Env}}{{println .}}{{end}}' "$name")
if [ -z "$data" ] && ! grep -q '^DATA_SOURCE=' <<<"$env"; then
  data=$(docker plugin inspect -f '{{range .Settings.Mounts}}{{if eq .Name "data"}}{{.Source}}{{end}}{{end}}' "$name")
fi
# disable -f: Docker refuses to disable a plugin whose volumes exist.
docker plugin disable -f "$name" >/dev/null 2>&1 || true
# Our own name check is above; the CLI would ask for any other tag too.
docker plugin upgrade --grant-all-permissions --skip-remote-check "$name" "$ref"
[ -z "$data" ] || docker plugin set "$name" DATA_SOURCE="$data"
docker plugin enable "$name"
echo "managed plugin $name upgraded to $ref"
