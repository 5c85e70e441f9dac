#!/usr/bin/env bash
# Installs what is missing, builds, starts a throwaway PostgreSQL 15 (configured as real servers
# differ from the defaults) and ClickHouse 18.16 on 127.0.0.1, runs every test, and stops the
# servers again (also on failure). Exits non-zero on any failure.
#   1. the dev preset (Debug, AddressSanitizer + UBSan): every test, ClickHouse 18.16 over HTTP
#   2. the tsan preset (ThreadSanitizer): the tests labelled "runtime" (threads and races) and
#      the cluster's (a heartbeat thread beside the pipes; its worker processes built so too)
#   3. the release preset, unoptimized: the destination and end-to-end tests again, against
#      ClickHouse 26.7 embedded (chDB from the npm registry; libchdb.so cannot be loaded under the
#      sanitizers); only those are built there, to keep a run from scratch well under 30 minutes
# The benchmarks are not built here (they are run on demand: docs/performance.md).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$CLICKPIPE_ROOT/scripts/pg.sh"
source "$CLICKPIPE_ROOT/scripts/ch.sh"

ensure_packages "${CLICKPIPE_PACKAGES[@]}"
cd "$CLICKPIPE_ROOT"

# Unity builds (up to 8 sources a unit) halve the build: each header is parsed once a unit, not
# once a source. The consumer checks still build the library source by source. Line tables only
# (-g1): sanitizer reports keep file and line, and a file compiles a fifth faster than with full
# debug info. To debug in gdb: cmake --preset dev -DCMAKE_CXX_FLAGS_DEBUG=-g
UNITY=-DCMAKE_UNITY_BUILD=ON
configure_and_build dev -DCLICKPIPE_WERROR=ON -DCLICKPIPE_BUILD_BENCHMARKS=OFF $UNITY \
  -DCMAKE_CXX_FLAGS_DEBUG=-g1
CHDB_DIR=
trap 'pg_stop; ch_stop; [ -z "$CHDB_DIR" ] || rm -rf "$CHDB_DIR"' EXIT
pg_start
ch_start
echo "==> test (dev: ASan + UBSan; ClickHouse 18.16 over HTTP)"
ctest --preset dev -j"$(nproc)"

# Only what runs under ThreadSanitizer is built there: the runtime's and the cluster's tests (not
# cli.cluster, whose command is built in the dev tree only).
echo "==> configure (tsan)"
cmake --preset tsan -DCLICKPIPE_WERROR=ON $UNITY "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" \
  >/dev/null
echo "==> build (tsan: the runtime's and the cluster's tests)"
cmake --build --preset tsan --target clickpipe_runtime_tests clickpipe_cluster_tests -- -j"$(nproc)"
echo "==> test (tsan: runtime and cluster under ThreadSanitizer)"
ctest --preset tsan -L "runtime|cluster" -E '^cli\.' -j"$(nproc)"

# Again only what runs there: the tests labelled clickhouse or e2e and what they start.
ensure_chdb
echo "==> configure (release)"
# No optimizer: this phase checks what ClickHouse 26 accepts, not speed, and -O2 would double
# its build time. The command line ran on 18.16 above; its SQL is the library's, tested here.
cmake --preset release -DCLICKPIPE_WERROR=ON -DCMAKE_BUILD_TYPE=None $UNITY >/dev/null
echo "==> build (release: the destination's and the end-to-end tests)"
cmake --build --preset release --target clickpipe_destination_tests -- -j"$(nproc)"
CHDB_DIR=$(mktemp -d /tmp/clickpipe-chdb.XXXXXX)
echo "==> test (release: destination and end-to-end on ClickHouse 26.7 embedded in $CHDB_DIR)"
# One directory, one process at a time: an embedded ClickHouse locks its directory. The process
# time zone has a half-hour offset, as the servers' have.
CLICKPIPE_CH_URL="chdb://$CHDB_DIR" TZ=America/St_Johns \
  ctest --preset release -L "clickhouse|e2e" -E '^cli\.' -j1
