#!/usr/bin/env bash
# make demo: the license-backup command-line tool backs up device A to a "USB stick", shows
# the archive and the quota, restores onto device B, then shows a refusal. Every status event
# is printed (--verbose). The devices and the service ledger are created by the library's
# demo program (`demo --prepare`), as a media player would have them.
#
#   scripts/demo.sh BIN_DIR       BIN_DIR holds license-backup and examples/demo
#   DEMO_DIR=...                  where the devices live (default target/demo; wiped first)
set -euo pipefail

bin=${1:?usage: scripts/demo.sh BIN_DIR}
export DEMO_DIR=${DEMO_DIR:-target/demo}
export LICENSE_BACKUP_SERVICE=$DEMO_DIR/license-service.db
usb=$DEMO_DIR/usb-stick

# Shows the command as typed in a terminal, runs it, and shows a failure's exit code.
run() {
    echo
    echo "\$ license-backup $*"
    local code=0
    "$bin/license-backup" "$@" || code=$?
    if [ "$code" != 0 ]; then
        echo "(exit code $code)"
    fi
}

"$bin/examples/demo" --prepare
echo "   (the service ledger is $LICENSE_BACKUP_SERVICE: every command below uses it through LICENSE_BACKUP_SERVICE)"

echo
echo "== Backing up device A to the USB stick"
run backup --store "$DEMO_DIR/device-a.db" --to "$usb" --verbose --no-progress --progress-interval 10
run backup --store "$DEMO_DIR/device-a.db" --to "$usb"
run inspect "$usb"

echo
echo "== Device B: what the quota allows, then the restore"
run quota --store "$DEMO_DIR/device-b.db" --from "$usb"
run restore --store "$DEMO_DIR/device-b.db" --from "$usb" --verbose --no-progress --progress-interval 10
run verify --store "$DEMO_DIR/device-b.db"

echo
echo "== Device C, under a stricter policy (2 devices a license): A and B already count"
run restore --store "$DEMO_DIR/device-c.db" --create-store --from "$usb" --max-devices 2 --verbose --no-progress
