#!/usr/bin/env bash
# Provide a Swift toolchain (Debian 13 "trixie" swiftlang) in a chroot on a Debian 12 host.
#
#   scripts/swift-toolchain.sh          # install if needed, then print where swift is
#
# Root dir: ${LICENSE_BACKUP_SWIFT_ROOT:-$HOME/.cache/license-backup/swift-trixie}
# Mirror:   ${LICENSE_BACKUP_SWIFT_MIRROR:-http://deb.debian.org/debian}
# Quiet:    LICENSE_BACKUP_SWIFT_QUIET=1 suppresses the "ready" line of a cached run.
#
# Idempotent and safe to interrupt: the root counts as usable only once the ready marker
# exists, which is written last. A root without it is resumed (if debootstrap had finished)
# or wiped and rebuilt. Every mount is made inside a private mount namespace
# (unshare --mount), so nothing stays mounted when a process dies. Needs root.
set -euo pipefail

ROOT="${LICENSE_BACKUP_SWIFT_ROOT:-$HOME/.cache/license-backup/swift-trixie}"
MIRROR="${LICENSE_BACKUP_SWIFT_MIRROR:-http://deb.debian.org/debian}"
SUITE=trixie
PACKAGES=(swiftlang libc6-dev)

OWNER=".license-backup-swift-owner"    # we created this dir: we may wipe it
STAGE1=".license-backup-swift-stage1"  # debootstrap completed
READY=".license-backup-swift-ready"    # everything completed; holds the swift version
LOG=".license-backup-swift.log"
SWIFT_REL="usr/libexec/swift/bin/swift" # /usr/bin/swift is an absolute symlink

say() { echo "swift-toolchain: $*"; }
die() { echo "swift-toolchain: error: $*" >&2; exit 1; }

# ---- fast path: cached and complete (no locks, no subprocesses beyond the builtins) ----
if [[ -f "$ROOT/$READY" && -x "$ROOT/$SWIFT_REL" ]]; then
  if [[ "${LICENSE_BACKUP_SWIFT_QUIET:-0}" != 1 ]]; then
    read -r version < "$ROOT/$READY" || true
    say "ready: $ROOT/$SWIFT_REL (${version:-unknown version})"
  fi
  exit 0
fi

[[ $EUID -eq 0 ]] || die "must run as root (debootstrap, chroot, mount)"
ROOT="$(realpath -m -- "$ROOT")"
case "$ROOT" in
  /|/bin|/boot|/dev|/etc|/home|/lib|/lib64|/opt|/proc|/root|/run|/sbin|/srv|/sys|/tmp|/usr|/var|/work)
    die "refusing to use $ROOT as the chroot dir" ;;
esac
if git -C "$(dirname -- "$ROOT")" rev-parse --show-toplevel >/dev/null 2>&1; then
  say "warning: $ROOT is inside a git work tree; keep it ignored"
fi

mkdir -p -- "$(dirname -- "$ROOT")"
exec 9>"$ROOT.lock"
if ! flock -n 9; then
  say "another install is running; waiting for $ROOT.lock"
  flock 9
fi
# Another process may have finished the job while we waited.
if [[ -f "$ROOT/$READY" && -x "$ROOT/$SWIFT_REL" ]]; then
  exec "$0" "$@"
fi

logfile="$ROOT/$LOG"
fail() {
  echo "swift-toolchain: error: $1; last lines of $logfile:" >&2
  tail -n 25 -- "$logfile" >&2 || true
  exit 1
}

mounts_under() {   # prints mount points at or below $1 (host namespace)
  findmnt -rn -o TARGET | awk -v r="$1" '$0 == r || index($0, r "/") == 1'
}

root_users() {   # PIDs of processes chrooted into $ROOT (e.g. a dpkg orphaned by a kill:
                  # apt starts dpkg in its own process group, without our lock fd)
  local p r
  for p in /proc/[0-9]*; do
    r="$(readlink "$p/root" 2>/dev/null)" || continue
    [[ "$r" == "$ROOT" ]] && printf '%s ' "${p#/proc/}"
  done
  return 0
}

wait_root_users() {
  local pids waited=0 limit="${LICENSE_BACKUP_SWIFT_WAIT:-300}"
  while pids="$(root_users)"; [[ -n "$pids" ]]; do
    (( waited == 0 )) && say "waiting for leftover processes in the root: $pids"
    (( waited >= limit )) && die "processes still running in $ROOT after ${limit}s: $pids"
    sleep 1; waited=$((waited + 1))
  done
}

wipe_root() {
  local m
  wait_root_users
  m="$(mounts_under "$ROOT")"
  [[ -z "$m" ]] || die "$ROOT still has mounts, not wiping:"$'\n'"$m"
  say "wiping incomplete root $ROOT"
  rm -rf --one-file-system -- "$ROOT"
}

# Runs "$@" inside the chroot with /proc /sys /dev bound, in a private mount namespace.
in_root() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  unshare --mount --propagation private -- bash -euc '
    root=$1; shift
    for d in proc sys dev; do
      mkdir -p "$root/$d"
      mount --rbind "/$d" "$root/$d"
      mount --make-rslave "$root/$d"
    done
    exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
      "$(command -v chroot)" "$root" "$@"
  ' in_root "$ROOT" "$@"
}

# ---- decide: fresh, resume, or wipe ----
if [[ -e "$ROOT" ]]; then
  if [[ ! -f "$ROOT/$OWNER" ]] && [[ -n "$(ls -A -- "$ROOT")" ]]; then
    die "$ROOT exists, is not empty and was not created by this script; remove it or set LICENSE_BACKUP_SWIFT_ROOT"
  fi
  if [[ -f "$ROOT/$READY" ]]; then
    say "ready marker present but $SWIFT_REL missing: rebuilding"
    wipe_root
  elif [[ -f "$ROOT/$STAGE1" ]]; then
    say "resuming incomplete install in $ROOT"
  else
    wipe_root
  fi
fi
mkdir -p -- "$ROOT"
touch -- "$ROOT/$OWNER"
: >>"$logfile"
echo "=== $(date -Is) swift-toolchain.sh start" >>"$logfile"

# ---- host: debootstrap ----
if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap on the host"
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap; } \
    >>"$logfile" 2>&1 || fail "installing debootstrap failed"
fi

# ---- stage 1: minimal trixie root ----
if [[ ! -f "$ROOT/$STAGE1" ]]; then
  say "debootstrap $SUITE (minbase) into $ROOT"
  # Own mount namespace: debootstrap mounts proc/sys in the target itself and would leave
  # them mounted on the host if killed.
  unshare --mount --propagation private -- \
    debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >>"$logfile" 2>&1 \
    || fail "debootstrap failed (re-run to retry from scratch)"
  touch -- "$ROOT/$STAGE1"
fi

# ---- stage 2: swiftlang + libc6-dev ----
wait_root_users
say "installing ${PACKAGES[*]} in the root (apt log: $logfile)"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"   # never start services
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
in_root sh -ec "
  dpkg --configure -a
  apt-get -o DPkg::Lock::Timeout=120 -y -f install
  apt-get update
  apt-get -o DPkg::Lock::Timeout=120 install -y --no-install-recommends ${PACKAGES[*]}
  apt-get clean
" >>"$logfile" 2>&1 || fail "apt-get in the root failed (re-run to resume)"

[[ -x "$ROOT/$SWIFT_REL" ]] || fail "$SWIFT_REL missing after install"
version="$(in_root /usr/bin/swift --version 2>&1 | grep -m1 -i 'swift version')" \
  || fail "swift --version failed in the root"
printf '%s\n' "$version" >"$ROOT/$READY.tmp"
mv -f -- "$ROOT/$READY.tmp" "$ROOT/$READY"
say "ready: $ROOT/$SWIFT_REL ($version)"
