#!/usr/bin/env bash
# Checks that the include graph follows docs/architecture.md: each file includes only clickpipe
# headers of its own layer or of the layers it may know, and the heavy or foreign libraries stay
# where they belong. Prints every violation; exits non-zero when there is one.
#   scripts/check_layers.sh [SOURCE_DIR]
set -euo pipefail
cd "${1:-$(dirname "${BASH_SOURCE[0]}")/..}"

# The layer of a path (a file in the tree, or a header named as "clickpipe/...").
layer_of() {
  local p="${1#include/}"
  p="${p#clickpipe/}"
  case "$p" in
    lifecycle/*) echo model ;;
    change.hpp | clock.hpp | error.hpp | lsn.hpp | settings.hpp | slot.hpp | status.hpp | \
      table.hpp | utf8.hpp | version.hpp | src/clock.cpp | src/lsn.cpp | src/settings.cpp) echo values ;;
    format.hpp | json.hpp | src/json.cpp) echo formatting ;;
    executors/*) echo executors ;;
    store/* | src/store/*) echo store ;;
    runtime/* | src/runtime/*) echo runtime ;;
    postgres/* | src/postgres/*) echo postgres ;;
    clickhouse/* | src/clickhouse/*) echo clickhouse ;;
    pg_to_clickhouse/* | src/pg_to_clickhouse/*) echo pg_to_clickhouse ;;
    cluster/* | src/cluster/*) echo cluster ;;
    testing/* | src/testing/*) echo testing ;;
    clickpipe.hpp) echo umbrella ;;
    *) echo unknown ;;
  esac
}

# What each layer may include besides itself.
declare -A allowed=(
  [model]=""
  [values]="model"
  [formatting]="model values"
  [executors]="model values"
  [store]="model values formatting"
  [runtime]="model values formatting executors store"
  [postgres]="model values formatting"
  [clickhouse]="model values formatting"
  [pg_to_clickhouse]="model values formatting executors postgres clickhouse"
  [cluster]="model values formatting executors store runtime postgres"
  [testing]="model values formatting executors store runtime"
  [umbrella]="model values formatting executors store runtime"
)

# Libraries a layer must not include (a regular expression on the included name).
declare -A forbidden=(
  [model]='^(fmt|spdlog|nlohmann|libpq|curl)/|^libpq-fe\.h$|^(thread|mutex|condition_variable|future|iostream)$'
  [values]='^(spdlog|nlohmann|libpq|curl)/|^libpq-fe\.h$'
  [executors]='^(nlohmann|libpq|curl)/|^libpq-fe\.h$'
  [postgres]='^curl/'
  [cluster]='^curl/|^nlohmann/'
  [clickhouse]='^libpq-fe\.h$|^libpq/'
  [runtime]='^nlohmann/|^libpq-fe\.h$|^curl/'
)

failures=0
while IFS= read -r file; do
  from=$(layer_of "$file")
  if [ "$from" = unknown ]; then
    echo "$file: not in any layer of docs/architecture.md"
    failures=$((failures + 1))
    continue
  fi
  while IFS= read -r inc; do
    if [[ "$inc" == *../* ]]; then
      # A relative path out of the file's folder would reach another layer's internals unseen.
      echo "$file: includes $inc (a path out of its folder)"
      failures=$((failures + 1))
    elif [[ "$inc" == clickpipe/* ]]; then
      to=$(layer_of "$inc")
      if [ "$to" != "$from" ] && [[ " ${allowed[$from]} " != *" $to "* ]]; then
        echo "$file: the $from layer includes $inc ($to layer)"
        failures=$((failures + 1))
      fi
    elif [ -n "${forbidden[$from]:-}" ] && [[ "$inc" =~ ${forbidden[$from]} ]]; then
      echo "$file: the $from layer includes <$inc>"
      failures=$((failures + 1))
    fi
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]\([^">]*\)[">].*/\1/p' "$file")
  # Public headers stay light: the full nlohmann/json.hpp only in .cpp files.
  if [[ "$file" == include/* ]] && grep -q '#include <nlohmann/json.hpp>' "$file"; then
    echo "$file: a public header includes <nlohmann/json.hpp> (use json_fwd.hpp)"
    failures=$((failures + 1))
  fi
done < <(find include/clickpipe src -name '*.hpp' -o -name '*.cpp' | sed 's#^src/#src/#' | sort)

if [ "$failures" -gt 0 ]; then
  echo "$failures layering violation(s); see docs/architecture.md"
  exit 1
fi
echo "layering ok: $(find include/clickpipe src -name '*.[ch]pp' | wc -l) files follow docs/architecture.md"
