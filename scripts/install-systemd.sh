#!/usr/bin/env bash
# Builds portal-volume and installs it as a legacy plugin under systemd:
# the binary in /usr/local/bin, the socket and service units, the socket
# enabled and started so that Docker never starts before the plugin.
# Usage: scripts/install-systemd.sh [--root DIR]
#   --root DIR  the Portal tree, written as PORTAL_ROOT to
#               /etc/default/portal-volume (its other settings stay).
#               Without it the tree stays what that file says, or is
#               /home/portal/user_data: running the script again from a
#               new release's source upgrades in place.
#   DESTDIR     install below this directory instead of /, and start
#               nothing (for packaging, or a look at what it writes)
set -euo pipefail
usage="usage: scripts/install-systemd.sh [--root DIR]"
root=
case "${1:-}" in
  --root) root=${2:?$usage} ;;
  "") ;;
  *) echo "install-systemd.sh: unknown argument \"$1\" ($usage)" >&2; exit 2 ;;
esac
if [ $# -gt 2 ]; then
  echo "install-systemd.sh: unknown argument \"$3\" ($usage)" >&2
  exit 2
fi
if [ -n "$root" ] && [[ $root != /* ]]; then
  echo "install-systemd.sh: --root \"$root\": want an absolute path" >&2
  exit 2
fi
dest=${DESTDIR:-}
units=$dest/etc/systemd/system
conf=$dest/etc/default/portal-volume
cd "$(dirname "$0")/.."
scripts/build.sh
install -D -m 0755 bin/portal-volume "$dest/usr/local/bin/portal-volume"
install -D -m 0644 -t "$units" scripts/systemd/portal-volume.socket scripts/systemd/portal-volume.service

if [ -n "$root" ]; then
  mkdir -p "$(dirname "$conf")"
  { [ -f "$conf" ] && grep -v '^PORTAL_ROOT=' "$conf" || true; echo "PORTAL_ROOT=$root"; } >"$conf.new"
  mv "$conf.new" "$conf"
else
  root=$( { [ -f "$conf" ] && sed -n 's/^PORTAL_ROOT=//p' "$conf" || true; } | tail -n 1)
  root=${root:-/home/portal/user_data}
fi
mkdir -p "$dest$root"

# Earlier releases of this script wrote a drop-in with ReadWritePaths for a
# root other than the default. That gives the service a mount namespace of
# its own, from which the views that volumes are mounted through never
# reach dockerd. It goes, if it is still only what the script wrote.
dropin=$units/portal-volume.service.d/root.conf
if [ -f "$dropin" ] && ! grep -qv -e '^\[Service\]$' -e '^ReadWritePaths=' "$dropin"; then
  rm "$dropin"
  rmdir "$(dirname "$dropin")" 2>/dev/null || true
  echo "removed $dropin (an earlier release's; it hid the views from Docker)"
fi
if [ -n "$(ls -A "$units/portal-volume.service.d" 2>/dev/null)" ]; then
  echo "install-systemd.sh: note: $units/portal-volume.service.d has drop-ins; one that gives the service a mount namespace (ProtectSystem, ReadWritePaths, PrivateTmp and the like) hides the views from Docker" >&2
fi

if [ -n "$dest" ]; then
  echo "portal-volume installed below $dest (nothing enabled or started); Portal tree $root"
  exit 0
fi
systemctl daemon-reload
systemctl enable --now portal-volume.socket
# A running service keeps the old binary until restarted.
systemctl try-restart portal-volume.service
echo "portal-volume installed: socket enabled; Portal tree $root"
