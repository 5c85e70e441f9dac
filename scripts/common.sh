# Shared by scripts/*.sh: package installation and the build. Source it; do not run it.
set -euo pipefail

CLICKPIPE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CLICKPIPE_ROOT

# Debian packages the build and tests need.
CLICKPIPE_PACKAGES=(
  cmake ninja-build g++ pkg-config git
  libfmt-dev libspdlog-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libpq-dev postgresql-15 postgresql-client-15
  libcurl4-openssl-dev libcpp-httplib-dev clickhouse-server clickhouse-client curl procps locales openssl python3
)

# ClickHouse 26 as a library (chDB), from the npm registry; loaded at run time, never built
# against. ensure_chdb installs it once into a cache folder and exports CLICKPIPE_CHDB_LIBRARY.
CHDB_PACKAGE="@chdb/lib-linux-x64-gnu@26.7.3-stable.1"
CHDB_SHA256=36ad4e999882821ef13cf2d0f52c93f48e6ee1b4498b35a201c23ce4b8d15bf5  # its libchdb.so
CHDB_CACHE="${CLICKPIPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clickpipe}/chdb-26.7.3-stable.1"

ensure_chdb() {
  if [ "$(uname -m)" != x86_64 ]; then
    echo "error: $CHDB_PACKAGE exists for x86_64 Linux only, not $(uname -m)" >&2
    return 1
  fi
  if [ ! -f "$CHDB_CACHE/package/libchdb.so" ]; then
    # The machine's own npm where it has one (Debian's npm conflicts with a newer Node.js).
    command -v npm >/dev/null 2>&1 || ensure_packages npm
    echo "==> installing $CHDB_PACKAGE (npm) into $CHDB_CACHE"
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$CHDB_PACKAGE" >/dev/null && tar xzf ./*.tgz) || {
      echo "error: cannot fetch $CHDB_PACKAGE from the npm registry" >&2
      rm -rf "$tmp"
      return 1
    }
    if ! echo "$CHDB_SHA256  $tmp/package/libchdb.so" | sha256sum -c --quiet -; then
      echo "error: $CHDB_PACKAGE's libchdb.so does not have the expected sha256" >&2
      rm -rf "$tmp"
      return 1
    fi
    mkdir -p "$CHDB_CACHE"
    rm -rf "$CHDB_CACHE/package"
    mv "$tmp/package" "$CHDB_CACHE/package"
    rm -rf "$tmp"
  fi
  [ -f "$CHDB_CACHE/package/libchdb.so" ] || { echo "error: no libchdb.so in $CHDB_CACHE" >&2; return 1; }
  export CLICKPIPE_CHDB_LIBRARY="$CHDB_CACHE/package/libchdb.so"
}

# Runs a command as the unprivileged user $1 (the database servers refuse or should not run as
# root), from root or through sudo.
as_user() {
  local user=$1
  shift
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$user" -- "$@"
  else
    sudo -u "$user" "$@"
  fi
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "error: need root or sudo to run: $*" >&2
    return 1
  fi
}

# Installs whichever of the given packages are missing; runs apt-get update only when needed.
ensure_packages() {
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# configure_and_build PRESET [-DVAR=VALUE...]: configure and build with the CMake preset.
configure_and_build() {
  local preset="$1"
  shift
  cd "$CLICKPIPE_ROOT"
  echo "==> configure ($preset)"
  cmake --preset "$preset" "$@" >/dev/null
  echo "==> build ($preset)"
  cmake --build --preset "$preset" -- -j"$(nproc)"
}
