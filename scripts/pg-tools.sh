#!/usr/bin/env bash
# Installs the PostgreSQL server the service's PostgreSQL tests and bench start for themselves
# (service/tests/support/pg.rs: initdb into a temporary folder, pg_ctl on 127.0.0.1; no system
# cluster is used or started). Idempotent: apt-get runs only when initdb is missing.
#
#   scripts/pg-tools.sh          install what is missing (needs root and Debian's apt-get)
#   scripts/pg-tools.sh --check  exit 1 and say what is missing, install nothing
set -euo pipefail

found() {
  [[ -n "${LB_PG_BIN:-}" && -x "${LB_PG_BIN}/initdb" ]] && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1
}

if found; then
  exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
  echo "PostgreSQL is missing; install with: apt-get install -y postgresql" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "PostgreSQL is missing and cannot be installed here (needs root and apt-get):" >&2
  echo "  apt-get install -y postgresql    (or set LB_PG_BIN to a folder with initdb, pg_ctl, psql)" >&2
  exit 1
fi
echo "pg-tools: installing PostgreSQL (Debian's postgresql package)"
apt-get update -qq
# The package's own cluster is never used: the tests and the bench make theirs.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
found || { echo "pg-tools: PostgreSQL installed but initdb was not found" >&2; exit 1; }
