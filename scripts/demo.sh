#!/usr/bin/env bash
# Installs what is missing, builds, and runs the demo:
#   ./scripts/demo.sh              a real pipe: throwaway PostgreSQL 15 and ClickHouse on
#                                  127.0.0.1, a sample database with a write load, the whole
#                                  lifecycle, and a check that ClickHouse equals PostgreSQL
#   ./scripts/demo.sh --chdb       the same real pipe into ClickHouse 26.7 embedded in this process
#                                  (chDB, from the npm registry): a local directory, no server
#   ./scripts/demo.sh --embedded   the same walk over in-memory executors, no servers
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$CLICKPIPE_ROOT/scripts/pg.sh"
source "$CLICKPIPE_ROOT/scripts/ch.sh"

ensure_packages "${CLICKPIPE_PACKAGES[@]}"
configure_and_build release
if [ "${1:-}" = "--embedded" ]; then
  shift
  exec "$CLICKPIPE_ROOT/build/release/examples/lifecycle_demo" "$@"
fi
CHDB_DIR=
trap 'pg_stop; ch_stop; [ -z "$CHDB_DIR" ] || rm -rf "$CHDB_DIR"' EXIT
pg_start
if [ "${1:-}" = "--chdb" ]; then
  ensure_chdb
  CHDB_DIR=$(mktemp -d /tmp/clickpipe-demo-chdb.XXXXXX)
  export CLICKPIPE_CH_URL="chdb://$CHDB_DIR"
else
  ch_start
fi
"$CLICKPIPE_ROOT/build/release/examples/postgres_demo"
