#!/usr/bin/env bash
# The Debian package's test, run by release_test.go under unshare --mount:
# dpkg installs into a copy-on-write view of this machine (an overlay on /
# whose writes go to a tmpfs), so the machine never changes.
# Usage: package.sh DEB WORK
set -euo pipefail
deb=$1 work=$2
r=$work/root tree=/home/portal/user_data
mkdir -p "$work/rw" "$r"
mount -t tmpfs tmpfs "$work/rw"
mkdir -p "$work/rw/upper" "$work/rw/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/rw/upper,workdir=$work/rw/work" "$r"
mount --rbind /dev "$r/dev"
mount -t proc proc "$r/proc"
mount -t tmpfs tmpfs "$r/run"
mount -t tmpfs tmpfs "$r/tmp"
inroot() { chroot "$r" "$@"; }

cp "$deb" "$r/tmp/"
echo "== dpkg -i $(basename "$deb")"
inroot dpkg -i "/tmp/$(basename "$deb")"
echo "== portal-volume --version"
inroot portal-volume --version
echo "== systemd-analyze verify"
inroot systemd-analyze verify /lib/systemd/system/portal-volume.socket /lib/systemd/system/portal-volume.service
echo "verify: ok"
[ -L "$r/etc/systemd/system/sockets.target.wants/portal-volume.socket" ] && echo "socket enabled: ok"

# A tree with a state the installed daemon made, and data.
mkdir -p "$r$tree/app_data/app/data"
echo data >"$r$tree/app_data/app/data/f"
# chroot execs the daemon: $! is its pid.
chroot "$r" portal-volume --root "$tree" --socket /run/pv-test.sock --views /run/pv-views & pid=$!
for _ in $(seq 200); do [ -S "$r/run/pv-test.sock" ] && break; sleep 0.05; done
[ -S "$r/run/pv-test.sock" ] || { echo "the installed daemon did not start"; exit 1; }
kill -TERM $pid; wait $pid || true
[ -d "$r$tree/.portal-volume" ] || { echo "no state made"; exit 1; }
snapshot() { (cd "$r$tree" && find . -printf '%p %y %m %U:%G %s %T@\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
before=$(snapshot)
echo "== dpkg --purge portal-volume"
inroot dpkg --purge portal-volume
after=$(snapshot)
if [ "$before" = "$after" ]; then echo "tree and state unchanged by purge: ok"; else diff <(echo "$before") <(echo "$after"); exit 1; fi
if [ ! -e "$r/usr/bin/portal-volume" ] && [ ! -e "$r/lib/systemd/system/portal-volume.socket" ] && [ ! -L "$r/etc/systemd/system/sockets.target.wants/portal-volume.socket" ]; then
  echo "package files gone: ok"
fi
