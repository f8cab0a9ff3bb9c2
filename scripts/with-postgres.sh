#!/usr/bin/env bash
# with-postgres.sh COMMAND...: runs COMMAND with a PostgreSQL server answering at the test address.
#
# The address is the host and port of ZENCOURT_TEST_POSTGRES_URL (default 127.0.0.1:5432, the
# tests' default too). When a server already answers there, COMMAND runs against it. Otherwise a
# throwaway cluster of our own is made (Debian's `postgresql` package, installed first when its
# binaries are missing, the way `make browser` installs Chromium), started on that address with
# trust auth for the `postgres` user, and stopped and deleted when COMMAND ends, whatever its exit.
# COMMAND's exit status is this script's. ZENCOURT_BENCH_POSTGRES_URL follows the same server.
set -euo pipefail

url="${ZENCOURT_TEST_POSTGRES_URL:-postgresql+psycopg2://postgres@127.0.0.1:5432/postgres}"
read -r host port < <(python3 - "$url" <<'PY'
import sys
from urllib.parse import urlsplit
parts = urlsplit(sys.argv[1])
print(parts.hostname or "127.0.0.1", parts.port or 5432)
PY
)
export ZENCOURT_TEST_POSTGRES_URL="$url"
export ZENCOURT_BENCH_POSTGRES_URL="${ZENCOURT_BENCH_POSTGRES_URL:-$url}"

answers() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

if answers; then
  exec "$@"
fi

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "with-postgres: no PostgreSQL server binaries: installing Debian's postgresql package" >&2
  SUDO=$( [ "$(id -u)" = 0 ] || echo sudo )
  $SUDO apt-get update -q
  # Only the server binaries are wanted: no cluster of the package's own is created.
  $SUDO mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/zencourt-no-main.conf >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends postgresql
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  if answers; then exec "$@"; fi  # a package that started a server of its own after all
fi

# PostgreSQL refuses to run as root: as root, the cluster belongs to the package's `postgres` user.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

dir=$(mktemp -d /tmp/zencourt-pg.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
cleanup() {
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "with-postgres: nothing answers on $host:$port: starting a throwaway cluster in $dir" >&2
as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-instructions >/dev/null
as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-p $port -k $dir -c listen_addresses=$host -c max_connections=200" start >/dev/null

status=0
"$@" || status=$?
exit "$status"
