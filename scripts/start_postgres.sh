#!/usr/bin/env bash
# Start (or reuse) a throwaway PostgreSQL for the tests on 127.0.0.1 and print its URL on stdout.
#   VIDRAY_TEST_PG_URL="$(bash scripts/start_postgres.sh)"
# Idempotent: the cluster lives in .cache/pg (git-ignored); a second call finds it running and only
# prints the URL. Port 55432 is fixed (override with VIDRAY_PG_PORT) so the URL is predictable and
# far from a system PostgreSQL on 5432. Runs as the `postgres` user when started as root (initdb
# refuses root). Everything it logs goes to stderr or .cache/pg/log so stdout is just the URL.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${VIDRAY_PG_PORT:-55432}"
db=vidray_test
root="$(pwd)/.cache/pg"
data="$root/data"
bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -n "$bindir" ] || bindir="$(dirname "$(command -v pg_ctl)")"
[ -x "$bindir/pg_ctl" ] || { echo "start_postgres: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

mkdir -p "$root"
if [ "$(id -u)" = 0 ]; then chown postgres "$root"; fi
if [ ! -s "$data/PG_VERSION" ]; then
  as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >"$root/initdb.log" 2>&1 \
    || { cat "$root/initdb.log" >&2; exit 1; }
fi
if ! as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  # listen on loopback only; the socket dir is ours so no system directory permissions are needed
  as_pg "$bindir/pg_ctl" -D "$data" -l "$root/log" -w -t 30 \
    -o "-h 127.0.0.1 -p $port -k $data -c fsync=off -c max_connections=200" start >&2
fi
if ! as_pg "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$db'" \
    | grep -q 1; then
  as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db" >&2
fi
echo "postgresql+psycopg://postgres@127.0.0.1:$port/$db"
