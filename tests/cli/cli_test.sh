#!/usr/bin/env bash
# The clickpipe CLI against the servers ./scripts/test.sh starts: run (its log on stderr in the text
# format, stdout empty), pause, status, resume, a graceful stop, a resumed run; bad configs named by
# field; no password in any output; --help for every subcommand, --version, and command-line errors
# that name the bad argument.
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
# pipe_state: the pipe's state as `clickpipe status --json` shows it (a live file or the record).
pipe_state() {
  "$B" status --store "$WORK/store" --json 2>/dev/null | python3 -c '
import json, sys
doc = json.load(sys.stdin)
doc = doc["pipes"] if isinstance(doc, dict) and "pipes" in doc else doc
doc = [doc] if isinstance(doc, dict) else doc
print(next((p.get("state", "") for p in doc if p.get("id") == sys.argv[1]), ""))' "cli$$"
}
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
SUBS="run check-config status pause resume resync retry add-table remove-table cancel-add update-settings delete diagram"
for sub in $SUBS; do
  grep -q "^  $sub " "$WORK/help" || fail "--help does not list $sub"
  "$B" "$sub" --help > "$WORK/help.$sub" || fail "$sub --help exits non-zero"
  grep -q "^Usage: clickpipe $sub" "$WORK/help.$sub" || fail "$sub --help: no usage line"
  case $sub in
    check-config) opts="--config" ;;
    status) opts="--store --id --json" ;;
    run) opts="--config --log-level --log-format --listen --listen-remote" ;;
    diagram) opts="" ;;
    *) opts="--store --id" ;;
  esac
  for o in $opts; do grep -q -- "$o" "$WORK/help.$sub" || fail "$sub --help does not show $o"; done
done
grep -q "table" "$WORK/help.add-table" || fail "add-table --help does not show the table argument"
grep -q -- "--drop-destination" "$WORK/help.delete" || fail "delete --help does not show --drop-destination"
V=$(sed -n 's/^#define CLICKPIPE_VERSION_\(MAJOR\|MINOR\|PATCH\) //p' \
  "$(dirname "$0")/../../include/clickpipe/version.hpp" | paste -sd.)
[ "$("$B" --version)" = "clickpipe $V" ] || fail "--version: '$("$B" --version)', want 'clickpipe $V'"
# usage_error WORD ARGS...: clickpipe ARGS must exit 2 with WORD in its error message (at once: a
# run that starts instead is killed after 20 s).
usage_error() {
  local word="$1"
  shift
  timeout -s KILL 20 "$B" "$@" > /dev/null 2> "$WORK/err"
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
usage_error "--id" delete --store "$WORK/store"
usage_error "--log-level" run --config "$WORK/pipe.json" --log-level loud
usage_error "--log-format" run --config "$WORK/pipe.json" --log-format yaml
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

# The log goes to stderr, one line per event; stdout stays empty.
"$B" run --config "$WORK/pipe.json" > "$WORK/run.out" 2> "$WORK/run.log" &
P=$!
for _ in $(seq 1 150); do grep -q -- "-\[snapshot_done\]-> Running" "$WORK/run.log" && break; sleep 0.2; done
grep -q -- "-\[snapshot_done\]-> Running" "$WORK/run.log" || { cat "$WORK/run.log"; fail "never Running"; }
out=$("$B" pause --store "$WORK/store" --id "cli$$" 2>&1) || fail "pause exited $?: $out"
grep -q accepted <<< "$out" || fail "pause: $out"
for _ in $(seq 1 50); do [ "$(pipe_state)" = Paused ] && break; sleep 0.2; done
[ "$(pipe_state)" = Paused ] || fail "status --json does not show Paused: $("$B" status --store "$WORK/store" --json 2>&1)"
"$B" status --store "$WORK/store" > "$WORK/status.txt" 2>&1 || fail "status exited $?"
grep "cli$$" "$WORK/status.txt" | grep -q Paused || fail "status does not show Paused: $(cat "$WORK/status.txt")"
# The transition the command started is logged too, in the text format: time, level, pipe.
grep -Eq -- "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z +info +cli$$ .*Running -\[pause\]-> Pausing" "$WORK/run.log" \
  || fail "no text log line for Running -[pause]-> Pausing: $(cat "$WORK/run.log")"
"$B" pause --store "$WORK/store" --id "cli$$" > "$WORK/pause2.out" 2> "$WORK/pause2.err"
rc=$?
[ $rc = 1 ] || fail "second pause: exit $rc, want 1"
grep -Eq "rejected.*pause.*not allowed in (state )?Paused" "$WORK/pause2.err" \
  || fail "second pause not refused with its reason on stderr: $(cat "$WORK/pause2.out" "$WORK/pause2.err")"
kill -TERM $P
wait $P || fail "run did not stop cleanly on SIGTERM"
[ -s "$WORK/run.out" ] && fail "run wrote to stdout: $(head -c 300 "$WORK/run.out")"
# A later run resumes where it was: still paused, as asked.
"$B" run --config "$WORK/pipe.json" > "$WORK/run2.out" 2> "$WORK/run2.log" &
P=$!
sleep 2
[ "$(pipe_state)" = Paused ] || fail "not paused after the restart"
out=$("$B" resume --store "$WORK/store" --id "cli$$" 2>&1) || fail "resume exited $?: $out"
grep -q accepted <<< "$out" || fail "resume: $out"
kill -TERM $P
wait $P || fail "second run did not stop cleanly"
[ -s "$WORK/run2.out" ] && fail "the second run wrote to stdout: $(head -c 300 "$WORK/run2.out")"
if grep -rqF -e "$CLICKPIPE_PG_PASSWORD" -e "$CLICKPIPE_CH_PASSWORD" "$WORK"/*.log "$WORK"/*.out \
  "$WORK"/*.err "$WORK"/*.txt "$WORK/store"; then
  fail "a password appears in output or in the store"
fi
echo "1 passed, 0 failed"
