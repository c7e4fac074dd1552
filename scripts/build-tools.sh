#!/usr/bin/env bash
# Installs the tools the release builds and checks need, idempotently, and prints the folder
# to put first in PATH (the venv's bin, with maturin, zig's python module, cargo-zigbuild,
# auditwheel and a `zig` wrapper; the cargo-installed tools).
#
#   scripts/build-tools.sh python     the venv only (what `make test` needs)
#   scripts/build-tools.sh targets    + the Rust targets of every artifact (rustup)
#   scripts/build-tools.sh dist       + Debian's mingw-w64 (Windows), llvm, file, musl
#   scripts/build-tools.sh deny       cargo-deny (cargo install, cached)
#   scripts/build-tools.sh about      cargo-about (cargo install, cached)
#
# Cache: ${LICENSE_BACKUP_TOOLS:-$HOME/.cache/license-backup/tools}: build-venv-<hash of
# build-tools.txt>/ and bin/ (cargo install --root). A venv counts once its stamp exists.
set -euo pipefail
here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
TOOLS="${LICENSE_BACKUP_TOOLS:-$HOME/.cache/license-backup/tools}"
PYTHON3="${PYTHON3:-python3}"
CARGO_DENY_VERSION=0.20.2
CARGO_ABOUT_VERSION=0.8.4
TARGETS=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-unknown-linux-musl
         aarch64-apple-darwin x86_64-apple-darwin aarch64-apple-ios x86_64-pc-windows-gnu)
say() { echo "build-tools: $*" >&2; }
mkdir -p "$TOOLS"

venv() {
  local hash dir
  hash="$(sha256sum "$here/build-tools.txt" | cut -c1-12)"
  dir="$TOOLS/build-venv-$hash"
  if [[ ! -f $dir/.stamp ]]; then
    exec 8>"$TOOLS/build-venv.lock"; flock 8
    if [[ ! -f $dir/.stamp ]]; then
      say "installing $(grep -v '^#' "$here/build-tools.txt" | tr '\n' ' ')into $dir"
      rm -rf "$dir"
      "$PYTHON3" -m venv "$dir"
      "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/build-tools.txt"
      # `zig` on PATH for cargo-zigbuild and our C-compiler wrappers: the ziglang module's binary.
      printf '#!/bin/sh\nexec "%s" -m ziglang "$@"\n' "$dir/bin/python" >"$dir/bin/zig"
      chmod +x "$dir/bin/zig"
      touch "$dir/.stamp"
    fi
  fi
  echo "$dir/bin"
}

targets() {
  local installed missing=()
  installed="$(rustup target list --installed)"
  for t in "${TARGETS[@]}"; do grep -qx "$t" <<<"$installed" || missing+=("$t"); done
  if [[ ${#missing[@]} -gt 0 ]]; then
    say "rustup target add ${missing[*]}"
    rustup target add "${missing[@]}" >&2
  fi
}

apt_tools() {
  local missing=()
  command -v x86_64-w64-mingw32-gcc-posix >/dev/null || missing+=(gcc-mingw-w64-x86-64-posix)
  command -v llvm-readobj >/dev/null || missing+=(llvm)
  command -v file >/dev/null || missing+=(file)
  [[ -e /usr/lib/x86_64-linux-musl/libc.so ]] || missing+=(musl)   # auditwheel of the musl wheel
  if [[ ${#missing[@]} -gt 0 ]]; then
    say "apt-get install ${missing[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >&2
  fi
}

cargo_tool() {  # cargo_tool NAME VERSION
  if [[ ! -x $TOOLS/bin/$1 ]] || ! "$TOOLS/bin/$1" --version 2>/dev/null | grep -qF "$2"; then
    exec 7>"$TOOLS/cargo-install.lock"; flock 7
    say "cargo install $1 $2 (compiles for several minutes, once)"
    # A build folder of its own, kept until the install succeeds (an interrupted one resumes).
    nice -n 19 cargo install --quiet --locked --root "$TOOLS" --target-dir "$TOOLS/cargo-build" \
      "$1" --version "$2" >&2
    rm -rf "$TOOLS/cargo-build"
  fi
}

case "${1:-python}" in
  python) venv ;;
  targets) targets; venv ;;
  dist) targets; apt_tools; venv ;;
  deny) cargo_tool cargo-deny "$CARGO_DENY_VERSION"; echo "$TOOLS/bin" ;;
  about) cargo_tool cargo-about "$CARGO_ABOUT_VERSION"; echo "$TOOLS/bin" ;;
  *) echo "usage: $0 python|targets|dist|deny|about" >&2; exit 2 ;;
esac
