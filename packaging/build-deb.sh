#!/usr/bin/env bash
# make deb: build dist/dd-procmgr_VERSION_ARCH.deb with dpkg-deb.
# The daemon and CLI with their Python dependencies under /usr/lib/dd-procmgr, wrappers
# in /usr/bin, the unit in /lib/systemd/system, /etc/pm/processes.d/, man pages and
# bash/zsh/fish completions (packaging/install.sh does the staging).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PYTHON=${PYTHON:-python3}
out=${OUT_DIR:-$root/dist}
command -v dpkg-deb >/dev/null || { echo "build-deb: dpkg-deb is needed (apt-get install dpkg)" >&2; exit 1; }
version=$("$PYTHON" -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$root/pyproject.toml")
arch=$(dpkg --print-architecture)
pyver=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
next=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % (sys.version_info[0], sys.version_info[1] + 1))')
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
DESTDIR="$stage/root" PREFIX=/usr SYSCONFDIR=/etc UNITDIR=/lib/systemd/system \
  PYTHON="$PYTHON" TARGET_PYTHON=/usr/bin/python3 bash "$here/install.sh" >/dev/null
mkdir -p "$stage/root/DEBIAN"
install -m 0755 "$here/deb/postinst" "$here/deb/prerm" "$here/deb/postrm" "$stage/root/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$stage/root" | cut -f1)
cat > "$stage/root/DEBIAN/control" <<CONTROL
Package: dd-procmgr
Version: $version
Architecture: $arch
Maintainer: trio-procmgr developers <root@localhost>
Installed-Size: $size
Depends: python3 (>= $pyver), python3 (<< $next), util-linux
Recommends: systemd
Section: admin
Priority: optional
Description: per-host process supervisor with systemd semantics (dd-procmgrd)
 dd-procmgrd starts, watches, restarts, health-checks, limits and stops every managed
 component of a host as its child processes, with systemd semantics that behave the
 same everywhere; dd-procmgr is its command line. Clients use a length-prefixed msgpack
 RPC on a Unix socket; watchers follow events over a websocket and a live dashboard.
CONTROL
mkdir -p "$out"
deb="$out/dd-procmgr_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$stage/root" "$deb" >/dev/null
echo "$deb"
