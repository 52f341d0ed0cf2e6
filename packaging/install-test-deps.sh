#!/usr/bin/env bash
# Installs the real third-party programs the interop tests drive (Debian packages),
# and headless Chromium with its driver for the dashboard's browser tests.
# Only as root and only what is missing; package post-install scripts must not start
# services on the machine, so a policy-rc.d refusing every start is put in place first.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || need+=(nginx-light)
command -v systemd-notify >/dev/null || need+=(systemd)
command -v setpriv >/dev/null || need+=(util-linux)
command -v chromium >/dev/null || need+=(chromium chromium-driver fonts-dejavu-core)
command -v tmux >/dev/null || need+=(tmux)
command -v groff >/dev/null || need+=(groff-base)
command -v dpkg-deb >/dev/null || need+=(dpkg)
# unit files converted by the import tests (SPEC §17): only their .service files are used
[ -e /lib/systemd/system/ssh.service ] || need+=(openssh-server)
[ -e /lib/systemd/system/cron.service ] || need+=(cron)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-test-deps: not root; missing ${need[*]} (their tests will skip)" >&2
  exit 0
fi
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
