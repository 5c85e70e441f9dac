#!/usr/bin/env bash
# Starts throwaway PostgreSQL and ClickHouse 18.16 on 127.0.0.1, runs the end-to-end benchmark
# (release build) against them over HTTP, then again with ClickHouse 26.7 embedded (chDB), and
# stops them.   bench/e2e_bench.sh [rows] [changes]
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
source "$CLICKPIPE_ROOT/scripts/pg.sh"
source "$CLICKPIPE_ROOT/scripts/ch.sh"
ensure_packages "${CLICKPIPE_PACKAGES[@]}"
ensure_chdb
configure_and_build release
CHDB_DIR=$(mktemp -d /tmp/clickpipe-bench-chdb.XXXXXX)
trap 'ch_stop; pg_stop; rm -rf "$CHDB_DIR"' EXIT
pg_start
ch_start
echo "==> ClickHouse 18.16 over HTTP"
"$CLICKPIPE_ROOT/build/release/bench/clickpipe_bench_e2e" "$@"
echo
echo "==> ClickHouse 26.7 embedded in $CHDB_DIR"
CLICKPIPE_CH_URL="chdb://$CHDB_DIR" "$CLICKPIPE_ROOT/build/release/bench/clickpipe_bench_e2e" "$@"
