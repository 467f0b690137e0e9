#!/bin/bash
# bench-usage.sh: times `portal-volume usage` against du (and gdu, when it is
# installed) on one tree, in one run, with a warm and a cold page cache, and
# prints each tool's median time and its ratio to du's. Then the CPU time of
# one background refresh's walk of the same tree (one thread, idle
# I/O class, nice 19).
#
#   sudo scripts/bench-usage.sh [TREE]      (default /var/tmp/portal-volume-usage-bench)
#
# The tree (about 200,000 files in 20,000 directories, with hard links and
# symlinks, ~1.8 GB; made once by internal/cmd/usagetree and kept for the
# next run) gets a tmpfs mounted inside it for the run: a nested mount,
# which usage does not cross. du and gdu run with -x so that the three
# count the same files. Cold runs drop the page cache (echo 3 >
# /proc/sys/vm/drop_caches) before each command. It needs root, and it is
# heavy: run it on a quiet machine. WARM=5 COLD=3 set the rounds. Last,
# the latency of Get and Mount+Unmount while background refreshes walk the
# tree, against the same calls with no walk.
set -euo pipefail

tree=${1:-/var/tmp/portal-volume-usage-bench}
warm_rounds=${WARM:-5}
cold_rounds=${COLD:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" != 0 ]; then
	echo "bench-usage.sh: needs root (a mount, and dropping the page cache)" >&2
	exit 2
fi

work=$(mktemp -d)
mnt="$tree/app_data/app03/data/mnt"
cleanup() {
	mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$repo" && go build -o "$work/portal-volume" ./plugin)

if [ ! -e "$tree/.complete" ]; then
	echo "making the tree in $tree ..." >&2
	rm -rf "$tree"
	(cd "$repo" && go run ./internal/cmd/usagetree "$tree")
	touch "$tree/.complete"
fi
mkdir -p "$mnt"
mount -t tmpfs -o size=64m bench-usage "$mnt"
for i in $(seq 1 1000); do head -c $((i * 16)) /dev/zero >"$mnt/f$i"; done

ours=("$work/portal-volume" usage --root "$tree" --json)
du=(du -sx --block-size=1 "$tree")
gdu=()
if command -v gdu >/dev/null; then
	gdu=(gdu -npsx "$tree")
fi

# The figures first: usage's total is du's, to the byte.
ours_total=$("${ours[@]}" | sed -n '/"total"/,/}/s/.*"bytes": \([0-9]*\).*/\1/p')
du_total=$("${du[@]}" | cut -f1)
echo "total bytes on disk: portal-volume usage $ours_total, du -sx $du_total"
if [ "$ours_total" != "$du_total" ]; then
	echo "bench-usage.sh: the totals differ" >&2
	exit 1
fi
echo "tree: $(find "$tree" -xdev -type d | wc -l) directories, $(find "$tree" -xdev ! -type d | wc -l) other entries"

# time_once CMD...: the command's wall time in seconds.
time_once() {
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# rounds MODE N: N rounds, each timing the tools in turn.
declare -A times
rounds() {
	local mode=$1 n=$2 tool
	for _ in $(seq 1 "$n"); do
		for tool in ours du gdu; do
			unset -n cmd
			local -n cmd=$tool
			[ ${#cmd[@]} -gt 0 ] || continue
			if [ "$mode" = cold ]; then
				sync
				echo 3 >/proc/sys/vm/drop_caches
			fi
			times[$mode.$tool]+="$(time_once "${cmd[@]}") "
		done
	done
}

"${ours[@]}" >/dev/null # warm the cache
rounds warm "$warm_rounds"
rounds cold "$cold_rounds"

printf '\n%-22s %10s %10s\n' "median seconds" warm cold
for tool in ours du gdu; do
	[ -n "${times[warm.$tool]:-}" ] || continue
	for mode in warm cold; do
		declare "med_${mode}_$tool=$(echo "${times[$mode.$tool]}" | tr ' ' '\n' | grep . | median)"
	done
	w=med_warm_$tool c=med_cold_$tool
	printf '%-22s %10s %10s\n' "$tool" "${!w}" "${!c}"
done
printf '\n%-22s %10s %10s\n' "ratio to du" warm cold
for tool in ours gdu; do
	[ -n "${times[warm.$tool]:-}" ] || continue
	w=med_warm_$tool c=med_cold_$tool
	printf '%-22s %9.2fx %9.2fx\n' "$tool" "$(echo "${!w} / $med_warm_du" | bc -l)" "$(echo "${!c} / $med_cold_du" | bc -l)"
done

echo
echo "CPU time of one background refresh's walk (one worker, idle I/O class, nice 19), warm cache:"
(cd "$repo" && PORTAL_USAGE_BENCH_TREE=$tree go test -run '^$' -bench BenchmarkRefreshWalk -benchtime 3x ./internal/usage | grep Benchmark)

echo
echo "Get and Mount+Unmount in the driver while background refreshes walk the tree, against idle (ratio walking/idle):"
(cd "$repo" && PORTAL_USAGE_BENCH_TREE=$tree go test -run '^$' -bench BenchmarkCallsDuringWalk -benchtime 7x ./driver | grep Benchmark)
