#!/usr/bin/env bash
# Install the Debian packages the relay and its tests need, if missing.
# Usage: scripts/system-deps.sh run|test
set -euo pipefail
what=${1:-test}
pkgs=(python3-venv libmagic1 clamav-daemon clamdscan)
if [ "$what" = test ]; then
  pkgs+=(clamav-testfiles postgresql postfix swaks libmail-dkim-perl opendkim opendkim-tools docker-compose
        systemd)   # systemd: systemd-analyze verify checks deploy/systemd/relay.service
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}" >&2
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
