#!/usr/bin/env bash
# Installs what is missing, builds, and runs the lifecycle demo.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ensure_packages "${CLICKPIPE_PACKAGES[@]}"
configure_and_build release
"$CLICKPIPE_ROOT/build/release/examples/lifecycle_demo" "$@"
