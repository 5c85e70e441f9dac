#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 on 127.0.0.1, runs the scale-out benchmark against it (release
# build): takeover p50/p99 over 100 kills, PgStore vs FileStore saves, coordination cost per pipe.
#   bench/cluster_bench.sh [--kills N] [--lease-ms L]
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
source "$CLICKPIPE_ROOT/scripts/pg.sh"
ensure_packages "${CLICKPIPE_PACKAGES[@]}"
configure_and_build release
pg_start
trap pg_stop EXIT
"$CLICKPIPE_ROOT/build/release/bench/clickpipe_bench_cluster" "$@"
