#!/usr/bin/env bash
# Starts throwaway PostgreSQL and ClickHouse on 127.0.0.1, runs the end-to-end benchmark (release
# build) against them, and stops them.   bench/e2e_bench.sh [rows] [changes]
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
source "$CLICKPIPE_ROOT/scripts/pg.sh"
source "$CLICKPIPE_ROOT/scripts/ch.sh"
ensure_packages "${CLICKPIPE_PACKAGES[@]}"
configure_and_build release
pg_start
ch_start
trap 'ch_stop; pg_stop' EXIT
"$CLICKPIPE_ROOT/build/release/bench/clickpipe_bench_e2e" "$@"
