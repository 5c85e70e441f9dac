#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 on 127.0.0.1, runs the PostgreSQL source benchmark against it
# (release build), and stops the server.   bench/postgres_bench.sh [rows] [changes]
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
source "$CLICKPIPE_ROOT/scripts/pg.sh"
ensure_packages "${CLICKPIPE_PACKAGES[@]}"
configure_and_build release
pg_start
trap pg_stop EXIT
"$CLICKPIPE_ROOT/build/release/bench/clickpipe_bench_postgres" "$@"
