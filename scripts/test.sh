#!/usr/bin/env bash
# Installs what is missing, builds, starts a throwaway PostgreSQL 15 and ClickHouse on 127.0.0.1,
# runs every test, and stops the servers again (also on failure). Exits non-zero on any failure.
#   1. the dev preset (Debug, AddressSanitizer + UBSan): every test
#   2. the tsan preset (ThreadSanitizer): the tests labelled "runtime" (threads and races)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$CLICKPIPE_ROOT/scripts/pg.sh"
source "$CLICKPIPE_ROOT/scripts/ch.sh"

ensure_packages "${CLICKPIPE_PACKAGES[@]}"
cd "$CLICKPIPE_ROOT"

configure_and_build dev
trap 'pg_stop; ch_stop' EXIT
pg_start
ch_start
echo "==> test (dev: ASan + UBSan)"
ctest --preset dev -j"$(nproc)"

configure_and_build tsan
echo "==> test (tsan: runtime under ThreadSanitizer)"
ctest --preset tsan -L runtime -j"$(nproc)"
