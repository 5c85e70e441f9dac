#!/usr/bin/env bash
# Starts throwaway PostgreSQL and ClickHouse 18.16 on 127.0.0.1, runs the end-to-end benchmark
# (release build) against them over HTTP, then again with ClickHouse 26.7 embedded (chDB), and
# stops them.   bench/e2e_bench.sh [rows] [changes]
# The servers' process ids go to the benchmark for its CPU split (CLICKPIPE_BENCH_PG_PID,
# CLICKPIPE_BENCH_CH_PID); the pipes' FileStore goes under TMPDIR (default /tmp).
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
CLICKPIPE_BENCH_PG_PID=$(as_user postgres head -n 1 "$PG_DATA/data/postmaster.pid")
CLICKPIPE_BENCH_CH_PID=$(pgrep -o -f "config-file=$CH_DIR/config.xml")
export CLICKPIPE_BENCH_PG_PID CLICKPIPE_BENCH_CH_PID
echo "==> ClickHouse 18.16 over HTTP"
"$CLICKPIPE_ROOT/build/release/bench/clickpipe_bench_e2e" "$@"
echo
echo "==> ClickHouse 26.7 embedded in $CHDB_DIR (the 18.16 server idles meanwhile)"
CLICKPIPE_CH_URL="chdb://$CHDB_DIR" env -u CLICKPIPE_BENCH_CH_PID \
  "$CLICKPIPE_ROOT/build/release/bench/clickpipe_bench_e2e" "$@"
