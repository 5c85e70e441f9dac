#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test. Exits non-zero on any failure.
#   ./scripts/test.sh          the dev preset (Debug, AddressSanitizer + UBSan): every test
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ensure_packages "${CLICKPIPE_PACKAGES[@]}"

configure_and_build dev
echo "==> test (dev: ASan + UBSan)"
cd "$CLICKPIPE_ROOT"
ctest --preset dev -j"$(nproc)"
