#!/usr/bin/env bash
# Assembles the managed plugin's directory: OUT/config.json and OUT/rootfs,
# from the Dockerfile. Without a golang image on this engine (no registry)
# it builds the binary on the host (scripts/build.sh) and uses the
# Dockerfile's prebuilt stage. VERSION and COMMIT stamp the binary as in
# scripts/build.sh.
# Usage: scripts/plugin-rootfs.sh OUT
set -euo pipefail
out=${1:?usage: plugin-rootfs.sh OUT}
cd "$(dirname "$0")/.."
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo unstamped)}
commit=${COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
go_image=golang:1.26-bookworm
tag=portal-volume-rootfs:build-$$
if docker image inspect "$go_image" >/dev/null 2>&1; then
  DOCKER_BUILDKIT=0 docker build -q --build-arg GO_IMAGE="$go_image" \
    --build-arg VERSION="$version" --build-arg COMMIT="$commit" --target plugin -t "$tag" . >/dev/null
else
  VERSION=$version COMMIT=$commit GOARCH=${GOARCH:-} scripts/build.sh >/dev/null
  DOCKER_BUILDKIT=0 docker build -q --target prebuilt -t "$tag" . >/dev/null
fi
cid=$(docker create "$tag")
cleanup() { docker rm -f "$cid" >/dev/null 2>&1 || true; docker rmi -f "$tag" >/dev/null 2>&1 || true; }
trap cleanup EXIT
rm -rf "$out"
mkdir -p "$out/rootfs"
docker export "$cid" | tar -x -C "$out/rootfs"
cp config.json "$out/config.json"
echo "plugin directory $out: $version, rootfs $(du -sh "$out/rootfs" | cut -f1)"
