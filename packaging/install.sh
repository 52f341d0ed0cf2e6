#!/usr/bin/env bash
# Installs dd-procmgrd and dd-procmgr (make install; make deb uses it with DESTDIR).
#
#   DESTDIR     staging root (default: empty, i.e. the live system)
#   PREFIX      /usr/local by default; the .deb uses /usr
#   SYSCONFDIR  /etc (the config directory is SYSCONFDIR/pm/processes.d)
#   UNITDIR     the systemd unit directory (default: /lib/systemd/system for PREFIX=/usr,
#               else PREFIX/lib/systemd/system)
#   PYTHON      the Python that builds (pip); TARGET_PYTHON the one that runs the
#               programs (default /usr/bin/python3). Both must be the same major.minor,
#               because compiled dependencies (msgpack, psutil) are built for it.
#
# Layout: the package and its dependencies in PREFIX/lib/dd-procmgr/site (a plain
# directory, relocatable, never on anybody else's sys.path), small wrappers in
# PREFIX/bin that run TARGET_PYTHON -I with that directory first on sys.path, the unit,
# man pages dd-procmgr(1) and dd-procmgrd(8) generated from the programs' own
# definitions, and bash/zsh/fish completions in their standard directories.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
if [ -z "${UNITDIR:-}" ]; then
  if [ "$PREFIX" = /usr ]; then UNITDIR=/lib/systemd/system; else UNITDIR=$PREFIX/lib/systemd/system; fi
fi
PYTHON=${PYTHON:-python3}
TARGET_PYTHON=${TARGET_PYTHON:-/usr/bin/python3}

die() { echo "install: $*" >&2; exit 1; }
[ -x "$TARGET_PYTHON" ] || die "TARGET_PYTHON $TARGET_PYTHON is not an executable Python"
build_ver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
target_ver=$("$TARGET_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$build_ver" = "$target_ver" ] || \
  die "PYTHON is $build_ver but TARGET_PYTHON ($TARGET_PYTHON) is $target_ver: set PYTHON to a $target_ver with pip"
"$TARGET_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python >= 3.11 needed"

libdir=$PREFIX/lib/dd-procmgr
site=$libdir/site
stage() { echo "$DESTDIR$1"; }

rm -rf "$(stage "$site")"
mkdir -p "$(stage "$site")" "$(stage "$PREFIX/bin")" "$(stage "$UNITDIR")" \
  "$(stage "$SYSCONFDIR/pm/processes.d")" \
  "$(stage "$PREFIX/share/man/man1")" "$(stage "$PREFIX/share/man/man8")" \
  "$(stage "$PREFIX/share/bash-completion/completions")" \
  "$(stage "$PREFIX/share/zsh/vendor-completions")" \
  "$(stage "$PREFIX/share/fish/vendor_completions.d")" \
  "$(stage "$PREFIX/share/doc/dd-procmgr")"

# A regular (not editable) install of this tree and its runtime dependencies only.
piplog=$(mktemp)
if ! "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile \
    --target "$(stage "$site")" "$root" >"$piplog" 2>&1; then
  cat "$piplog" >&2; rm -f "$piplog"; die "pip could not install the package (above)"
fi
rm -f "$piplog"
rm -rf "$(stage "$site")/bin"
"$TARGET_PYTHON" -m compileall -q -j 0 -d "$site" "$(stage "$site")" >/dev/null

wrapper() {  # wrapper NAME MODULE
  cat > "$(stage "$PREFIX/bin/$1")" <<WRAP
#!$TARGET_PYTHON -I
# $1: installed by trio-procmgr (packaging/install.sh).
import sys
sys.path.insert(0, "$site")
from $2 import main
sys.exit(main())
WRAP
  chmod 0755 "$(stage "$PREFIX/bin/$1")"
}
wrapper dd-procmgrd trio_procmgr.daemon.main
wrapper dd-procmgr dd_procmgr_cli.entry

sed "s#^ExecStart=/usr/bin/dd-procmgrd#ExecStart=$PREFIX/bin/dd-procmgrd#; s#/etc/pm/processes.d#$SYSCONFDIR/pm/processes.d#g" \
  "$here/dd-procmgrd.service" > "$(stage "$UNITDIR/dd-procmgrd.service")"
chmod 0644 "$(stage "$UNITDIR/dd-procmgrd.service")"

# Generated from the installed code itself, with the target Python.
run_installed() { "$TARGET_PYTHON" -I -c "import sys; sys.path.insert(0, '$(stage "$site")'); $1"; }
mantmp=$(mktemp -d)
trap 'rm -rf "$mantmp"' EXIT
run_installed "from dd_procmgr_cli.manpage import main; sys.exit(main(['$mantmp']))" >/dev/null
gzip -9n -c "$mantmp/dd-procmgr.1" > "$(stage "$PREFIX/share/man/man1/dd-procmgr.1.gz")"
gzip -9n -c "$mantmp/dd-procmgrd.8" > "$(stage "$PREFIX/share/man/man8/dd-procmgrd.8.gz")"
write_completion() {  # write_completion SHELL DEST
  run_installed "from dd_procmgr_cli.completion import completion_source; sys.stdout.write(completion_source('$1'))" \
    > "$(stage "$2")"
}
write_completion bash "$PREFIX/share/bash-completion/completions/dd-procmgr"
write_completion zsh "$PREFIX/share/zsh/vendor-completions/_dd-procmgr"
write_completion fish "$PREFIX/share/fish/vendor_completions.d/dd-procmgr.fish"
cp "$here/deb/copyright" "$(stage "$PREFIX/share/doc/dd-procmgr/copyright")"
echo "installed dd-procmgrd and dd-procmgr under ${DESTDIR}${PREFIX}"
