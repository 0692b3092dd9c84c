#!/usr/bin/env bash
# Stop the test PostgreSQL started by scripts/start_postgres.sh (no-op when it is not running).
set -euo pipefail
cd "$(dirname "$0")/.."
data="$(pwd)/.cache/pg/data"
bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -s "$data/PG_VERSION" ] || exit 0
if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bindir/pg_ctl" -D "$data" -m fast stop || true
else "$bindir/pg_ctl" -D "$data" -m fast stop || true; fi
