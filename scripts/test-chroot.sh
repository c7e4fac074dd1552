#!/usr/bin/env bash
# Debian chroots that run the release artifacts where the host cannot: an old glibc, arm64.
#
#   scripts/test-chroot.sh ensure NAME                  build NAME once (idempotent), print its path
#   scripts/test-chroot.sh run NAME [-B DIR]... [-C DIR] [-e VAR=VAL]... -- CMD ARGS...
#
#   bullseye-amd64  Debian 11: glibc 2.31, Python 3.9 (the oldest glibc a user still has, and
#                   the oldest Python the wheel declares)
#   trixie-amd64    Debian 13: Python 3.13 (the newest CPython Debian packages)
#   bookworm-arm64  Debian 12 for arm64 under qemu-user: glibc 2.36, Python 3.11, Node 18
#
# Roots live in ${LICENSE_BACKUP_CHROOTS:-$HOME/.cache/license-backup}/NAME. A root counts as
# usable only once its ready marker exists (written last); an incomplete one is wiped and built
# again. `run` binds each -B DIR at the same path, works in -C DIR (default: the first -B), and
# gives CMD a clean environment (PATH, HOME=/root, LANG, the -e variables). Mounts live in a
# private mount namespace (unshare), so they vanish with the process. Needs root.
set -euo pipefail

say() { echo "test-chroot: $*" >&2; }
die() { echo "test-chroot: error: $*" >&2; exit 2; }
[[ $EUID -eq 0 ]] || die "must run as root (debootstrap, unshare, chroot)"
[[ $# -ge 2 ]] || die "usage: $0 ensure|run NAME ..."
cmd=$1 name=$2; shift 2

CACHE="${LICENSE_BACKUP_CHROOTS:-$HOME/.cache/license-backup}"
MIRROR="${LICENSE_BACKUP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
case "$name" in
  bullseye-amd64) suite=bullseye arch=amd64 packages=python3,python3-venv ;;
  trixie-amd64) suite=trixie arch=amd64 packages=python3,python3-venv ;;
  bookworm-arm64) suite=bookworm arch=arm64 packages=python3,python3-venv,nodejs ;;
  *) die "unknown chroot $name (bullseye-amd64, trixie-amd64, bookworm-arm64)" ;;
esac
ROOT="$CACHE/$name"
READY="$ROOT/.license-backup-ready"

# Host packages, installed when missing.
need_host() {  # need_host COMMAND PACKAGE...
  command -v "$1" >/dev/null 2>&1 && return 0
  say "installing ${*:2} on the host"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${@:2}"; } >&2
}

# arm64 programs run through qemu-user, registered with binfmt_misc (the kernel's, shared by
# the whole machine; enabling it again is harmless).
enable_qemu() {
  [[ $arch == arm64 ]] || return 0
  need_host qemu-aarch64-static qemu-user-static binfmt-support
  if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || update-binfmts --enable qemu-aarch64 >&2
  [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || die "qemu-aarch64 is not registered with binfmt_misc"
}

ensure() {
  enable_qemu
  [[ -f $READY ]] && return 0
  need_host debootstrap debootstrap
  mkdir -p "$CACHE"
  exec 9>"$ROOT.lock"
  flock 9
  [[ -f $READY ]] && return 0
  if [[ -e $ROOT ]]; then
    [[ -z "$(findmnt -rn -o TARGET | awk -v r="$ROOT" 'index($0, r "/") == 1')" ]] \
      || die "$ROOT has mounts; not wiping it"
    say "wiping the incomplete $ROOT"
    rm -rf --one-file-system -- "$ROOT"
  fi
  say "debootstrap $suite ($arch) into $ROOT (a few minutes; log: $ROOT.log)"
  # Its own mount namespace: debootstrap mounts proc in the target and would leave it mounted.
  unshare --mount --propagation private -- debootstrap --variant=minbase --arch="$arch" \
    --include="$packages" "$suite" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 \
    || { tail -n 20 "$ROOT.log" >&2; die "debootstrap failed (run again to retry)"; }
  rm -rf "$ROOT/var/cache/apt/archives/"*.deb
  date -Is >"$READY"
  say "ready: $ROOT ($(du -sh "$ROOT" | cut -f1))"
}

case "$cmd" in
  ensure) ensure; echo "$ROOT" ;;
  run)
    binds=() envs=() workdir=""
    while [[ $# -gt 0 ]]; do
      case "$1" in
        -B) binds+=("$(cd -- "$2" && pwd -P)"); shift 2 ;;
        -C) workdir="$2"; shift 2 ;;
        -e) envs+=("$2"); shift 2 ;;
        --) shift; break ;;
        *) die "unknown option $1 (the command goes after --)" ;;
      esac
    done
    [[ $# -gt 0 ]] || die "no command"
    ensure
    for b in ${binds[@]+"${binds[@]}"}; do
      case "$b" in /|/bin|/etc|/lib|/lib64|/usr|/usr/*|/proc*|/sys*|/dev*|/root|/tmp|/var) die "refusing to bind $b";; esac
    done
    workdir="${workdir:-${binds[0]:-/}}"
    # shellcheck disable=SC2016  # expanded by the inner bash
    exec unshare --mount --propagation private -- bash -euc '
      root=$1 wd=$2; shift 2
      mount -t tmpfs tmpfs "$root/tmp"   # first: binds below /tmp go on top of it
      while [[ $1 != --env ]]; do
        mkdir -p "$root$1"; mount --rbind "$1" "$root$1"; mount --make-rslave "$root$1"; shift
      done
      shift; envs=()
      while [[ $1 != -- ]]; do envs+=("$1"); shift; done
      shift
      mount -t proc proc "$root/proc"
      for d in dev sys; do mount --rbind "/$d" "$root/$d"; mount --make-rslave "$root/$d"; done
      exec env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 ${envs[@]+"${envs[@]}"} \
        "$(command -v chroot)" "$root" /bin/sh -c '\''cd -- "$1" || exit 125; shift; exec "$@"'\'' \
        test-chroot "$wd" "$@"
    ' test-chroot-ns "$ROOT" "$workdir" ${binds[@]+"${binds[@]}"} --env ${envs[@]+"${envs[@]}"} -- "$@"
    ;;
  *) die "unknown command $cmd (ensure, run)" ;;
esac
