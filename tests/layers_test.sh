#!/usr/bin/env bash
# The layering check passes on the tree and fails on a tree with a planted violation of each kind.
set -euo pipefail
root="$1"
"$root/scripts/check_layers.sh" "$root"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
plant() {  # plant FILE LINE EXPECTED: a one-file tree that must be refused, saying EXPECTED
  rm -rf "$work/t" && mkdir -p "$work/t/include/clickpipe" "$work/t/src" "$(dirname "$work/t/$1")"
  echo "$2" >"$work/t/$1"
  if out=$("$root/scripts/check_layers.sh" "$work/t" 2>&1); then
    echo "not refused: $1 with '$2'"
    exit 1
  fi
  if ! grep -qF "$3" <<<"$out"; then
    echo "refused for another reason: $1 with '$2' should say '$3', said: $out"
    exit 1
  fi
  echo "refused as it should be: $(head -1 <<<"$out")"
}
plant include/clickpipe/lifecycle/x.hpp '#include "clickpipe/runtime/pipe.hpp"' \
  'the model layer includes clickpipe/runtime/pipe.hpp'
plant include/clickpipe/lifecycle/x.hpp '#include <fmt/format.h>' 'the model layer includes <fmt/format.h>'
plant src/postgres/x.cpp '#include "clickpipe/clickhouse/client.hpp"' \
  'the postgres layer includes clickpipe/clickhouse/client.hpp'
plant src/clickhouse/x.cpp '#include <libpq-fe.h>' 'the clickhouse layer includes <libpq-fe.h>'
plant include/clickpipe/executors/x.hpp '#include "clickpipe/runtime/pipe.hpp"' \
  'the executors layer includes clickpipe/runtime/pipe.hpp'
plant include/clickpipe/status.hpp '#include <nlohmann/json.hpp>' 'the values layer includes <nlohmann/json.hpp>'
plant src/postgres/x.cpp '#include "../runtime/pipe_impl.hpp"' 'a path out of its folder'
plant src/mystery.cpp '#include <vector>' 'not in any layer'
