#!/usr/bin/env bash
# The clickpipe CLI against the servers ./scripts/test.sh starts: run, pause, status, resume,
# a graceful stop, a resumed run; bad configs named by field; no password in any output.
# Usage: cli_test.sh PATH_TO_CLICKPIPE
set -u
B="$1"
fail() { echo "FAIL: $*"; exit 1; }
for v in CLICKPIPE_PG_HOST CLICKPIPE_PG_PORT CLICKPIPE_PG_DATABASE CLICKPIPE_PG_USER \
         CLICKPIPE_PG_PASSWORD CLICKPIPE_CH_HOST CLICKPIPE_CH_PORT CLICKPIPE_CH_USER CLICKPIPE_CH_PASSWORD; do
  [ -n "${!v:-}" ] || fail "$v is not set: run the tests through ./scripts/test.sh"
done
WORK=$(mktemp -d)
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
echo '{"id": "x", "store": "/tmp/x", "tables": ["t"], "source": {"host": "h", "dbname": "d", "user": "u"},
       "destination": {"url": "http://x"}, "settings": {"pull_batch_size": 0}}' > "$WORK/bad.json"
"$B" check-config --config "$WORK/bad.json" 2>&1 | grep -q "settings.pull_batch_size" || fail "bad field not named"
echo '{"id": "x", "store": "/tmp/x", "tables": ["t"], "source": {"host": "h", "dbname": "d", "user": "u"},
       "destination": {"url": "http://x", "reconcile": "yes"}}' > "$WORK/bad2.json"
"$B" check-config --config "$WORK/bad2.json" 2>&1 | grep -q "destination.reconcile" || fail "reconcile not named"

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
