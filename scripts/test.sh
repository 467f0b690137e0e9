#!/usr/bin/env bash
# The whole test suite: formatting, vet, unit tests under the race detector,
# a bounded run of every fuzz target, and the end-to-end suite in legacy and
# managed mode against Docker engines of its own (Debian's 20.10 and a
# current 29 by default).
#
# Needs root and Go; scripts/deps.sh installs the rest when it is missing
# (Debian's docker.io, docker-compose v1, busybox-static, ...; Compose v2
# built from the Go module proxy), so that both compose clients are tested.
# Settings (environment):
#   FUZZTIME=10s            how long each fuzz target runs (0 skips fuzzing)
#   PORTAL_E2E_MODES=legacy,managed
#   PORTAL_E2E_DOCKERD=private   the suite's own dockerd, in its own mount
#                           namespace; "ambient" uses the engine DOCKER_HOST
#                           names and never restarts it (then the engines
#                           below do not apply: the suite runs once)
#   PORTAL_TEST_ENGINES="20.10 29 29+containerd"
#                           the engines the suite's own dockerd runs, one
#                           end-to-end run each: 20.10 is Debian's docker.io;
#                           27, 28 and 29 are built by scripts/engine.sh and
#                           cached outside the repository; 29+containerd
#                           runs the cases where the engine copies an
#                           image's content into a volume (TestImages) on 29
#                           with the containerd image store
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
dockerd_mode=${PORTAL_E2E_DOCKERD:-private}
engines=${PORTAL_TEST_ENGINES:-20.10 29 29+containerd}

started=$SECONDS
step() { printf '\n== %s (at %d s)\n' "$*" $((SECONDS - started)); }

step dependencies
scripts/deps.sh

# An engine that is not cached takes minutes to build (scripts/engine.sh):
# the build runs beside the unit tests, the fuzzing and the run on
# Debian's engine, and the first run on a built engine waits for it.
if [ "$dockerd_mode" = private ]; then
  engine_log=$(mktemp)
  trap 'rm -f "$engine_log"' EXIT
  ( for spec in $engines; do
      nice -n 5 scripts/engine.sh "${spec%+containerd}" >/dev/null || exit 1
    done ) 2>"$engine_log" &
  engine_build=$!
fi

step gofmt
unformatted=$(gofmt -l $(git ls-files -co --exclude-standard '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step go vet
go vet ./...

step unit tests, race detector
go test -race -count=1 $(go list ./... | grep -v /e2e)

# fuzz PKG DIR TARGET runs one fuzz target for $fuzztime. go test -fuzz
# fails now and then with no fault of the code under test: the fuzztime
# deadline ends a worker mid-input ("context deadline exceeded"), or a
# loaded machine makes a worker miss its heartbeat ("fuzzing process hung
# or terminated unexpectedly"). A real failure writes an input that fails
# again when run alone; only that fails the suite, and a run that stops
# without one is tried again, three times in all. Minimizing a new input
# may take a minute by default, most of a short run: 3 s is enough.
fuzz() {
  local pkg=$1 corpus=$2/testdata/fuzz/$3 target=$3 out input try
  for try in 1 2 3; do
    local before; before=$(ls "$corpus" 2>/dev/null || true)
    if out=$(go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" -fuzzminimizetime 3s "$pkg" 2>&1); then
      echo "$out" | tail -3; return 0
    fi
    echo "$out" | tail -40
    for input in $(ls "$corpus" 2>/dev/null); do
      grep -qxF "$input" <<<"$before" && continue
      if ! go test -count=1 -run "^$target/$input\$" "$pkg"; then
        echo "fuzzing $target found a failing input: $corpus/$input"; return 1
      fi
      echo "the input $input passes when run alone: not a fault of the code"
      rm -f "$corpus/$input"
    done
    echo "fuzzing $target stopped without a reproducible failure (try $try)"
  done
  echo "fuzzing $target stopped without a reproducible failure three times"; return 1
}

if [ "$fuzztime" != 0 ]; then
  step "fuzzing, $fuzztime per target"
  for pkg in $(go list ./... | grep -v /e2e); do
    dir=$(go list -f '{{.Dir}}' "$pkg")
    for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | cut -d' ' -f2); do
      echo "-- $pkg $target"
      fuzz "$pkg" "$dir" "$target"
    done
  done
fi

e2e=(go test -count=1 -v -timeout 45m ./e2e)
if [ "$dockerd_mode" != private ]; then
  step "end-to-end, modes ${PORTAL_E2E_MODES:-legacy,managed}, dockerd $dockerd_mode"
  PORTAL_E2E_DOCKERD=$dockerd_mode "${e2e[@]}"
  exit 0
fi

failed=() built=
for spec in $engines; do
  version=${spec%+containerd} store= only=()
  if [ "$version" != 20.10 ] && [ -z "$built" ]; then
    step "waiting for the engines: $engines"
    if ! wait "$engine_build"; then
      cat "$engine_log"; echo "building the engines failed"; exit 1
    fi
    grep 'built in' "$engine_log" || true
    built=1
  fi
  if [ "$spec" != "$version" ]; then
    store=containerd only=(-run '^TestImages$')
  fi
  step "end-to-end on Docker Engine $spec, modes ${PORTAL_E2E_MODES:-legacy,managed}"
  PORTAL_E2E_DOCKERD=private PORTAL_E2E_ENGINE=$version PORTAL_E2E_IMAGE_STORE=$store \
    "${e2e[@]}" "${only[@]}" || failed+=("$spec")
done
step done
if [ ${#failed[@]} -gt 0 ]; then
  echo "the end-to-end suite failed on: ${failed[*]}"; exit 1
fi
