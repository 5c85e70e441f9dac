#!/usr/bin/env bash
# The clickpipe CLI against the servers ./scripts/test.sh starts: run, pause, status, resume,
# a graceful stop, a resumed run; bad configs named by field; no password in any output; --help for
# every subcommand, --version, and command-line errors that name the bad argument.
# Usage: cli_test.sh PATH_TO_CLICKPIPE
set -u
B="$1"
fail() { echo "FAIL: $*"; exit 1; }
for v in CLICKPIPE_PG_HOST CLICKPIPE_PG_PORT CLICKPIPE_PG_DATABASE CLICKPIPE_PG_USER \
         CLICKPIPE_PG_PASSWORD CLICKPIPE_CH_HOST CLICKPIPE_CH_PORT CLICKPIPE_CH_USER CLICKPIPE_CH_PASSWORD; do
  [ -n "${!v:-}" ] || fail "$v is not set: run the tests through ./scripts/test.sh"
done
WORK=$(mktemp -d)
P=  # set by the first run; the trap needs it defined under set -u
trap 'kill -9 $P 2>/dev/null; rm -rf "$WORK"' EXIT
T="cli_t_$$"
PGPASSWORD=$CLICKPIPE_PG_PASSWORD psql -q -h "$CLICKPIPE_PG_HOST" -p "$CLICKPIPE_PG_PORT" \
  -U "$CLICKPIPE_PG_USER" -d "$CLICKPIPE_PG_DATABASE" \
  -c "CREATE TABLE $T (id int8 primary key, v text); INSERT INTO $T SELECT g, 'v' FROM generate_series(1, 1000) g" \
  || fail "cannot create the source table"
cat > "$WORK/pipe.json" <<J
{"id": "cli$$", "store": "$WORK/store", "tables": ["public.$T"],
 "source": {"host": "$CLICKPIPE_PG_HOST", "port": "$CLICKPIPE_PG_PORT", "dbname": "$CLICKPIPE_PG_DATABASE",
            "user": "$CLICKPIPE_PG_USER", "password_env": "CLICKPIPE_PG_PASSWORD"},
 "destination": {"url": "${CLICKPIPE_CH_URL:-http://$CLICKPIPE_CH_HOST:$CLICKPIPE_CH_PORT}", "user": "$CLICKPIPE_CH_USER",
                 "password_env": "CLICKPIPE_CH_PASSWORD"},
 "settings": {"sync_interval_ms": 200}}
J
"$B" diagram | grep -q "stateDiagram-v2" || fail "diagram"

# The command line itself: help on stdout with status 0, usage errors on stderr with status 2.
"$B" --help > "$WORK/help" || fail "--help exits non-zero"
SUBS="run check-config status pause resume resync add-table remove-table diagram"
for sub in $SUBS; do
  grep -q "^  $sub " "$WORK/help" || fail "--help does not list $sub"
  "$B" "$sub" --help > "$WORK/help.$sub" || fail "$sub --help exits non-zero"
  grep -q "^Usage: clickpipe $sub" "$WORK/help.$sub" || fail "$sub --help: no usage line"
  case $sub in
    run|check-config) opts="--config" ;;
    status) opts="--store" ;;
    diagram) opts="" ;;
    *) opts="--store --id" ;;
  esac
  for o in $opts; do grep -q -- "$o" "$WORK/help.$sub" || fail "$sub --help does not show $o"; done
done
grep -q "table" "$WORK/help.add-table" || fail "add-table --help does not show the table argument"
V=$(sed -n 's/^#define CLICKPIPE_VERSION_\(MAJOR\|MINOR\|PATCH\) //p' \
  "$(dirname "$0")/../../include/clickpipe/version.hpp" | paste -sd.)
[ "$("$B" --version)" = "clickpipe $V" ] || fail "--version: '$("$B" --version)', want 'clickpipe $V'"
# usage_error WORD ARGS...: clickpipe ARGS must exit 2 with WORD in its error message.
usage_error() {
  local word="$1"
  shift
  "$B" "$@" > /dev/null 2> "$WORK/err"
  local rc=$?
  [ $rc -eq 2 ] || fail "clickpipe $*: exit $rc, want 2"
  grep -q -- "$word" "$WORK/err" || fail "clickpipe $*: error does not name $word: $(cat "$WORK/err")"
}
usage_error "--bogus" status --store "$WORK/store" --bogus
usage_error "--bogus" --bogus
usage_error "unknown subcommand 'bogus'" bogus
usage_error "--store" status
usage_error "--store" status --store
usage_error "--id" pause --store "$WORK/store"
usage_error "table is required" add-table --store "$WORK/store" --id x
usage_error "nothere.json" run --config "$WORK/nothere.json"
usage_error "Usage: clickpipe"
echo '{"id": "x", "store": "/tmp/x", "tables": ["t"], "source": {"host": "h", "dbname": "d", "user": "u"},
       "destination": {"url": "http://x"}, "settings": {"pull_batch_size": 0}}' > "$WORK/bad.json"
"$B" check-config --config "$WORK/bad.json" 2>&1 | grep -q "settings.pull_batch_size" || fail "bad field not named"
echo '{"id": "x", "store": "/tmp/x", "tables": ["t"], "source": {"host": "h", "dbname": "d", "user": "u"},
       "destination": {"url": "http://x", "reconcile": "yes"}}' > "$WORK/bad2.json"
"$B" check-config --config "$WORK/bad2.json" 2>&1 | grep -q "destination.reconcile" || fail "reconcile not named"
# A config that is not JSON: the error gives the position, never what the parser read there.
printf '{"id": "x", "source": {"password": "canary-Zq81x" oops}}' > "$WORK/bad3.json"
usage_error "not valid JSON at byte" check-config --config "$WORK/bad3.json"
grep -q "canary-Zq81x" "$WORK/err" && fail "a config parse error printed the password"

"$B" run --config "$WORK/pipe.json" > "$WORK/run.log" 2>&1 &
P=$!
for i in $(seq 1 150); do grep -q -- "-\[snapshot_done\]-> Running" "$WORK/run.log" && break; sleep 0.2; done
grep -q -- "-\[snapshot_done\]-> Running" "$WORK/run.log" || { cat "$WORK/run.log"; fail "never Running"; }
"$B" pause --store "$WORK/store" --id "cli$$" | grep -q accepted || fail "pause"
sleep 1
"$B" status --store "$WORK/store" | grep -q '"state": "Paused"' || fail "status does not show Paused"
"$B" pause --store "$WORK/store" --id "cli$$" | grep -q "not allowed in state Paused" || fail "second pause not refused"
kill -TERM $P
wait $P || fail "run did not stop cleanly on SIGTERM"
# A later run resumes where it was: still paused, as asked.
"$B" run --config "$WORK/pipe.json" > "$WORK/run2.log" 2>&1 &
P=$!
sleep 2
"$B" status --store "$WORK/store" | grep -q '"state": "Paused"' || fail "not paused after the restart"
"$B" resume --store "$WORK/store" --id "cli$$" | grep -q accepted || fail "resume"
kill -TERM $P
wait $P || fail "second run did not stop cleanly"
if grep -q -e "$CLICKPIPE_PG_PASSWORD" -e "$CLICKPIPE_CH_PASSWORD" "$WORK"/*.log "$WORK"/store/*.json; then
  fail "a password appears in output or in the store"
fi
echo "1 passed, 0 failed"
