#!/usr/bin/env bash
# Installs libshmbus (built with `cargo build --release -p shmbus-capi`),
# shmbus.h and shmbus.pc under PREFIX (default /usr/local):
#   bash capi/install.sh [PREFIX]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="${1:-/usr/local}"
target="${CARGO_TARGET_DIR:-$here/../target}/${SHMBUS_PROFILE:-release}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/../Cargo.toml" | head -1)"
install -d "$prefix/include" "$prefix/lib/pkgconfig"
install -m644 "$here/include/shmbus.h" "$prefix/include/shmbus.h"
install -m755 "$target/libshmbus.so" "$prefix/lib/libshmbus.so"
install -m644 "$target/libshmbus.a" "$prefix/lib/libshmbus.a"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$here/shmbus.pc.in" \
  >"$prefix/lib/pkgconfig/shmbus.pc"
echo "installed under $prefix; compile with: cc prog.c \$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs shmbus)"
