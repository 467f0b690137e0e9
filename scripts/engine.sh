#!/usr/bin/env bash
# Builds a Docker Engine for the end-to-end suite from the Go module proxy and
# caches it outside the repository, then prints the directory that holds its
# binaries (dockerd, docker-proxy, containerd, containerd-shim-runc-v2, runc).
#
#   scripts/engine.sh 29      current engine (moby v2 module, containerd 2, runc 1.5)
#   scripts/engine.sh 28      Docker 28.5.2
#   scripts/engine.sh 27      Docker 27.5.1
#   scripts/engine.sh 20.10   Debian's docker.io: nothing is built
#
# Cache: ${PORTAL_ENGINE_CACHE:-/var/cache/portal-volume/engines}/<version>.
# A cached build is reused when its stamp names the same pins. The first
# build of 29 takes 11-17 minutes on 2 idle cores; 27 or 28 after it about
# 5 (on 2 cores shared with other builds: 47 minutes for 29, 31 for 28).
# Progress goes to stderr; stdout is the binary directory alone.
set -euo pipefail
want=${1:?usage: scripts/engine.sh 20.10|27|28|29}
cache=${PORTAL_ENGINE_CACHE:-/var/cache/portal-volume/engines}

# Pins. containerd and runc are the ones a current engine ships with; 27 and
# 28 run on them too (runc >= 1.2 is needed by 29's private time namespace).
moby29=github.com/moby/moby/v2@v2.0.0-beta.24   # master between 29.8.0 and 29.8.1
moby29_version=29.8.1-dev   # what docker version reports for it
containerd=github.com/containerd/containerd/v2@v2.3.5
runc=github.com/opencontainers/runc@v1.5.1
declare -A docker_release=([27]=v27.5.1 [28]=v28.5.2)
engine_tags="netgo osusergo static_build exclude_graphdriver_btrfs exclude_graphdriver_zfs nri_no_wasm"

log() { echo "engine.sh: $*" >&2; }

if [ "$want" = 20.10 ]; then
  dirname "$(command -v dockerd)"
  exit 0
fi
case "$want" in 27|28|29) ;; *) log "unknown engine \"$want\": 20.10, 27, 28 or 29"; exit 2;; esac

if ! [ -e /usr/include/seccomp.h ] || ! command -v gcc >/dev/null; then
  log "installing libseccomp-dev and gcc (runc's seccomp support)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libseccomp-dev gcc >/dev/null
fi

dir=$cache/$want
stamp="moby29=$moby29 $moby29_version release=${docker_release[$want]:-} containerd=$containerd runc=$runc tags=$engine_tags go=$(go env GOVERSION)"
if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ]; then
  echo "$dir"; exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=$tmp/bin; mkdir -p "$bin"
export GOBIN=$bin GOFLAGS=-trimpath
start=$SECONDS

# containerd and runc are shared by every engine version: build them once.
shared=$cache/runtime
rstamp="containerd=$containerd runc=$runc go=$(go env GOVERSION)"
if ! [ -f "$shared/.stamp" ] || [ "$(cat "$shared/.stamp")" != "$rstamp" ]; then
  log "building containerd ${containerd#*@} and runc ${runc#*@}"
  rbin=$tmp/runtime; mkdir -p "$rbin"
  GOBIN=$rbin CGO_ENABLED=0 go install -tags "no_btrfs no_devmapper no_zfs no_cri" \
    "${containerd%@*}/cmd/containerd@${containerd#*@}" \
    "${containerd%@*}/cmd/containerd-shim-runc-v2@${containerd#*@}"
  GOBIN=$rbin CGO_ENABLED=1 go install -tags "seccomp urfave_cli_no_docs" \
    -ldflags '-extldflags -static' "$runc"
  rm -rf "$shared"; mkdir -p "$(dirname "$shared")"
  cp -r "$rbin" "$shared"
  echo "$rstamp" >"$shared/.stamp"
fi
cp "$shared"/containerd "$shared"/containerd-shim-runc-v2 "$shared"/runc "$bin"/

if [ "$want" = 29 ]; then
  log "building dockerd ${moby29#*@}"
  # The version docker version reports (and clients read): a plain go
  # install leaves "library-import".
  CGO_ENABLED=0 go install -tags "$engine_tags" \
    -ldflags "-X ${moby29%@*}/dockerversion.Version=$moby29_version -X ${moby29%@*}/dockerversion.GitCommit=${moby29#*@}" \
    "${moby29%@*}/cmd/dockerd@${moby29#*@}" "${moby29%@*}/cmd/docker-proxy@${moby29#*@}"
else
  # github.com/docker/docker has no go.mod: a throwaway module requires it
  # and every module its release pins in vendor.mod, so -mod=mod resolves
  # exactly what the release was built with.
  rel=${docker_release[$want]}
  log "building dockerd $rel"
  mod=$tmp/mod; mkdir -p "$mod"
  ( cd "$mod"
    go mod init portal-volume.test/engine >/dev/null 2>&1
    go mod download -json "github.com/docker/docker@$rel+incompatible" >"$tmp/dl.json"
    src=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' "$tmp/dl.json")
    {
      echo "require github.com/docker/docker $rel+incompatible"
      sed -n '/^require (/,/^)/p' "$src/vendor.mod"
      sed -n '/^replace /p; /^replace (/,/^)/p' "$src/vendor.mod"
    } >>go.mod
    GOFLAGS="-mod=mod -trimpath" CGO_ENABLED=0 go build -tags "$engine_tags" \
      -ldflags "-X github.com/docker/docker/dockerversion.Version=${rel#v} -X github.com/docker/docker/dockerversion.GitCommit=$rel" \
      -o "$bin/dockerd" github.com/docker/docker/cmd/dockerd
    GOFLAGS="-mod=mod -trimpath" CGO_ENABLED=0 go build -tags "$engine_tags" -o "$bin/docker-proxy" github.com/docker/docker/cmd/docker-proxy
  )
fi
rm -rf "$dir"; mkdir -p "$cache"
cp -r "$bin" "$dir"
echo "$stamp" >"$dir/.stamp"
log "engine $want built in $((SECONDS - start)) s into $dir"
echo "$dir"
