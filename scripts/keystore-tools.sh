#!/usr/bin/env bash
# Installs what the Secret Service protector's test needs: a D-Bus session bus
# (dbus-run-session) and GNOME Keyring's Secret Service daemon, plus secret-tool to look at
# what the library stored. Idempotent: installs only what is missing (Debian packages).
set -euo pipefail
need=()
command -v dbus-run-session >/dev/null || need+=(dbus-bin dbus-daemon)
command -v gnome-keyring-daemon >/dev/null || need+=(gnome-keyring)
command -v secret-tool >/dev/null || need+=(libsecret-tools)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
echo "keystore-tools: installing ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
