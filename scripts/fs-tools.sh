#!/usr/bin/env bash
# Installs the file-system tools the removable-media tests mount real images with (FAT through
# fusefat, exFAT through exfat-fuse on a loop device, NTFS through ntfs-3g, a network share
# through sshfs over loopback). Idempotent: apt-get runs only when a tool is missing.
#
#   scripts/fs-tools.sh          install what is missing (needs root and Debian's apt-get)
#   scripts/fs-tools.sh --check  exit 1 and say what is missing, install nothing
set -euo pipefail

# tool -> Debian package
declare -A NEEDED=(
  [fusefat]=fusefat
  [mkfs.vfat]=dosfstools
  [mount.exfat-fuse]=exfat-fuse
  [mkfs.exfat]=exfatprogs
  [ntfs-3g]=ntfs-3g
  [mkntfs]=ntfs-3g
  [fusermount3]=fuse3
  [losetup]=mount
  [sshfs]=sshfs
  [sshd]=openssh-server
  [ssh-keygen]=openssh-client
)

missing=()
for tool in "${!NEEDED[@]}"; do
  if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1; then
    missing+=("${NEEDED[$tool]}")
  fi
done
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
  echo "missing file-system tools; install with: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "fs-tools: cannot install ${missing[*]} (needs root and apt-get); the removable-media tests will fail" >&2
  exit 1
fi
echo "fs-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; then
  apt-get update >/dev/null
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
fi
