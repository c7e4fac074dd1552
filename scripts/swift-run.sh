#!/usr/bin/env bash
# Run a command inside the Swift (Debian trixie) chroot made by swift-toolchain.sh.
#
#   scripts/swift-run.sh [-p PROJECT] [-C DIR] [-B DIR]... [-e VAR=VALUE | -e VAR]... -- CMD ARGS...
#
#   -p PROJECT  dir bound into the chroot at the same path (default: git toplevel of DIR or
#               of $PWD, else DIR or $PWD itself)
#   -C DIR      working dir inside the chroot (default: PROJECT); must lie in a bound dir
#   -B DIR      extra dir bound at the same path (e.g. a Rust target dir elsewhere); repeatable
#   -e VAR=VAL  set VAR in the command's clean environment; "-e VAR" copies the host's value
#
# The command gets a clean environment: PATH, HOME=/root, LANG=C.UTF-8, TERM, plus -e vars.
# Its exit status is returned. Mounts live in a private mount namespace (unshare), so they
# vanish with the process and concurrent runs do not collide.
set -euo pipefail

die() { echo "swift-run: error: $*" >&2; exit 2; }
usage() { sed -n '2,14s/^# \{0,1\}//p' "$0" >&2; exit 2; }

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
project="" workdir="" binds=() envs=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -p) [[ $# -ge 2 ]] || usage; project="$2"; shift 2 ;;
    -C) [[ $# -ge 2 ]] || usage; workdir="$2"; shift 2 ;;
    -B) [[ $# -ge 2 ]] || usage; binds+=("$2"); shift 2 ;;
    -e) [[ $# -ge 2 ]] || usage
        if [[ "$2" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; then envs+=("$2")
        elif [[ "$2" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
          [[ -n "${!2+x}" ]] || die "-e $2: not set on the host"
          envs+=("$2=${!2}")
        else die "-e expects VAR=VALUE or VAR, got: $2"; fi
        shift 2 ;;
    -h|--help) usage ;;
    --) shift; break ;;
    *) die "unknown option $1 (the command goes after --)" ;;
  esac
done
[[ $# -gt 0 ]] || usage
[[ $EUID -eq 0 ]] || die "must run as root (unshare --mount, chroot)"

canon() {  # existing dir -> absolute physical path
  [[ -d "$1" ]] || die "not a directory: $1"
  (cd -- "$1" && pwd -P)
}
start="$(canon "${workdir:-$PWD}")"
if [[ -z "$project" ]]; then
  project="$(git -C "$start" rev-parse --show-toplevel 2>/dev/null || printf '%s' "$start")"
fi
project="$(canon "$project")"
workdir="${workdir:+$start}"; workdir="${workdir:-$project}"
all_binds=("$project")
for b in ${binds[@]+"${binds[@]}"}; do all_binds+=("$(canon "$b")"); done
for b in "${all_binds[@]}"; do
  case "$b" in
    /|/bin|/boot|/etc|/lib|/lib64|/opt|/root|/run|/sbin|/srv|/tmp|/usr|/var|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/usr/*|/etc/*)
      die "refusing to bind $b over the chroot's own $b" ;;
  esac
done
# parents before children, so a nested bind is not hidden by its parent's bind
mapfile -d '' -t all_binds < <(printf '%s\0' "${all_binds[@]}" | sort -zu)
inside=0
for b in "${all_binds[@]}"; do
  [[ "$workdir" == "$b" || "$workdir" == "$b"/* ]] && inside=1
done
[[ $inside == 1 ]] || die "-C $workdir is not inside a bound dir (use -p or -B)"

LICENSE_BACKUP_SWIFT_QUIET=1 "$here/swift-toolchain.sh" >&2
ROOT="$(realpath -m -- "${LICENSE_BACKUP_SWIFT_ROOT:-$HOME/.cache/license-backup/swift-trixie}")"

# Inner script, run in a fresh private mount namespace. Arguments:
#   ROOT WORKDIR BIND... --env VAR=VALUE... -- CMD ARGS...
# (binds are absolute paths and env entries start with a letter, so the separators are safe)
# shellcheck disable=SC2016  # expanded by the inner bash
inner='
  root=$1 wd=$2; shift 2
  while [[ $1 != --env ]]; do
    mkdir -p "$root$1"
    mount --rbind "$1" "$root$1"
    mount --make-rslave "$root$1"
    shift
  done
  shift
  envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  for d in proc sys dev; do
    mount --rbind "/$d" "$root/$d"
    mount --make-rslave "$root/$d"
  done
  exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 "TERM=${TERM:-dumb}" ${envs[@]+"${envs[@]}"} \
    "$(command -v chroot)" "$root" /bin/sh -c '\''cd -- "$1" || exit 125; shift; exec "$@"'\'' \
    swift-run "$wd" "$@"
'
exec unshare --mount --propagation private -- bash -euc "$inner" swift-run-ns \
  "$ROOT" "$workdir" "${all_binds[@]}" --env ${envs[@]+"${envs[@]}"} -- "$@"
