#!/usr/bin/env bash
# Starts a throwaway ClickHouse on 127.0.0.1, runs the insert benchmark (release build) against
# it, and stops the server.   bench/clickhouse_bench.sh [rows]
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
source "$CLICKPIPE_ROOT/scripts/pg.sh"
source "$CLICKPIPE_ROOT/scripts/ch.sh"
ensure_packages "${CLICKPIPE_PACKAGES[@]}"
configure_and_build release
ch_start
trap ch_stop EXIT
"$CLICKPIPE_ROOT/build/release/bench/clickpipe_bench_clickhouse" "$@"
