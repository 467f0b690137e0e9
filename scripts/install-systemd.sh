#!/usr/bin/env bash
# Builds portal-volume and installs it as a legacy plugin under systemd:
# the binary in /usr/local/bin, the socket and service units, the socket
# enabled and started so that Docker never starts before the plugin.
# Usage: scripts/install-systemd.sh [--root DIR]   (default /home/portal/user_data)
# A root other than the default is written to /etc/default/portal-volume
# and to a drop-in that lets the service write it.
set -euo pipefail
root=/home/portal/user_data
[ "${1:-}" = --root ] && root=$2
cd "$(dirname "$0")/.."
scripts/build.sh
install -m 0755 bin/portal-volume /usr/local/bin/portal-volume
install -m 0644 scripts/systemd/portal-volume.socket scripts/systemd/portal-volume.service /etc/systemd/system/
mkdir -p "$root"
if [ "$root" != /home/portal/user_data ]; then
  echo "PORTAL_ROOT=$root" >/etc/default/portal-volume
  mkdir -p /etc/systemd/system/portal-volume.service.d
  printf '[Service]\nReadWritePaths=%s\n' "$root" >/etc/systemd/system/portal-volume.service.d/root.conf
fi
systemctl daemon-reload
systemctl enable --now portal-volume.socket
# A running service keeps the old binary until restarted.
systemctl try-restart portal-volume.service
echo "portal-volume installed: socket enabled; Portal tree $root"
