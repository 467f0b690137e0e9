#!/usr/bin/env bash
# Makes a release into one folder:
#   portal-volume-linux-amd64, portal-volume-linux-arm64   static binaries
#   portal-volume_VERSION_amd64.deb, …_arm64.deb          the host daemon for
#                                                          systemd (nfpm)
#   portal-volume-plugin-VERSION-linux-ARCH.tar.gz         the managed plugin
#                                                          (config.json, rootfs)
#   SHA256SUMS                                             of all the above
# and creates the managed plugin (for this engine's architecture) on the
# local engine as portal-volume:VERSION, or, with --registry, as
# REGISTRY/portal-volume:VERSION and pushes it there as that and as
# REGISTRY/portal-volume:latest.
#
# Usage: scripts/release.sh [--registry REGISTRY] VERSION [OUT]
#   VERSION   MAJOR.MINOR.PATCH or MAJOR.MINOR.PATCH-PRERELEASE (1.2.0,
#             1.3.0-rc.1): what --version reports, the plugin's tag, the
#             package's version
#   OUT       a folder that does not exist yet (default dist/VERSION)
# Every check runs before anything is built, pushed or created.
set -euo pipefail
usage="usage: scripts/release.sh [--registry REGISTRY] VERSION [OUT]"
registry=
if [ "${1:-}" = --registry ]; then
  registry=${2:?$usage}
  shift 2
fi
version=${1:-}
if [ -z "$version" ]; then
  echo "release.sh: VERSION is missing: want MAJOR.MINOR.PATCH or MAJOR.MINOR.PATCH-PRERELEASE, such as 1.2.0 ($usage)" >&2
  exit 2
fi
if ! [[ $version =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z]+(\.[0-9A-Za-z]+)*)?$ ]]; then
  echo "release.sh: VERSION = \"$version\": want MAJOR.MINOR.PATCH or MAJOR.MINOR.PATCH-PRERELEASE of letters, digits and dots, such as 1.2.0 or 1.3.0-rc.1" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
out=${2:-dist/$version}
if [ -e "$out" ]; then
  echo "release.sh: OUT = \"$out\" exists: want a folder that does not exist yet" >&2
  exit 2
fi
if [ -n "$registry" ] && ! [[ $registry =~ ^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*$ ]]; then
  echo "release.sh: --registry \"$registry\": want HOST[:PORT][/PATH], such as registry.example.org/portal or 127.0.0.1:5000" >&2
  exit 2
fi
plugin=portal-volume:$version
[ -n "$registry" ] && plugin=$registry/$plugin
if docker plugin inspect "$plugin" >/dev/null 2>&1; then
  echo "release.sh: a plugin $plugin exists on this engine: remove it (docker plugin rm $plugin) or release another version" >&2
  exit 2
fi
commit=$(git rev-parse --short=12 HEAD)
git diff --quiet HEAD -- || commit=$commit-dirty
engine_arch=$(docker version -f '{{.Server.Arch}}')

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for arch in amd64 arm64; do
  VERSION=$version COMMIT=$commit GOARCH=$arch scripts/build.sh "$out/portal-volume-linux-$arch" >/dev/null
done

# The managed plugin runs on the engine's architecture only: an engine of
# the other one makes its own with this script.
VERSION=$version COMMIT=$commit GOARCH=$engine_arch scripts/plugin-rootfs.sh "$work/plugin" >/dev/null
tar -C "$work/plugin" -czf "$out/portal-volume-plugin-$version-linux-$engine_arch.tar.gz" config.json rootfs
# The engine refuses to create a plugin whose content its store holds: the
# same plugin under another name, or one just removed, until the engine's
# collector has run. So the tags are made one after the other, with a wait.
create() {
  local out
  for _ in $(seq 150); do
    out=$(docker plugin create "$1" "$work/plugin" 2>&1) && return 0
    case $out in *"already exists"*) sleep 0.2 ;; *) break ;; esac
  done
  echo "release.sh: docker plugin create $1: $out" >&2
  return 1
}
create "$plugin"
if [ -n "$registry" ]; then
  latest=$registry/portal-volume:latest
  docker plugin push "$plugin" >/dev/null
  docker plugin rm "$plugin" >/dev/null
  create "$latest"
  docker plugin push "$latest" >/dev/null
  docker plugin rm "$latest" >/dev/null
  create "$plugin"
fi

# The packages: the units as the repository has them, the binary where a
# package puts it.
maintainer=${MAINTAINER:-portal-volume developers <portal-volume@localhost>}
go -C scripts/nfpm build -o "$work/nfpm" github.com/goreleaser/nfpm/v2/cmd/nfpm
for arch in amd64 arm64; do
  stage=$work/deb-$arch
  mkdir -p "$stage"
  cp "$out/portal-volume-linux-$arch" "$stage/portal-volume"
  sed 's#/usr/local/bin/portal-volume#/usr/bin/portal-volume#' scripts/systemd/portal-volume.service >"$stage/portal-volume.service"
  cp scripts/systemd/portal-volume.socket scripts/nfpm/portal-volume.yaml scripts/nfpm/postinst scripts/nfpm/prerm scripts/nfpm/postrm "$stage/"
  (cd "$stage" && VERSION=$version ARCH=$arch MAINTAINER=$maintainer \
    "$work/nfpm" package -f portal-volume.yaml -p deb -t "$out/" >/dev/null)
done

(cd "$out" && sha256sum -- * >SHA256SUMS)
echo "release $version ($commit) in $out:"
(cd "$out" && ls -l --block-size=K -- *)
echo "managed plugin: $plugin$([ -n "$registry" ] && echo " (pushed, and as $registry/portal-volume:latest)")"
