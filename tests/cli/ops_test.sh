#!/usr/bin/env bash
# What an operator does with `clickpipe run`, end to end on the servers of ./scripts/test.sh
# (issue 15): two pipes in one process from one config in the `pipes` form, sharing a store, with
# JSON logs at debug level and the HTTP API on 127.0.0.1. It checks that /metrics moves as rows
# are written, that `clickpipe status` shows lag and rows per table (readable and --json), and
# drives every command through both the shell and HTTP: pause (twice: the second refused with its
# reason), resume, update-settings, add-table then cancel-add while the table is copied,
# add-table, remove-table, resync (ClickHouse's FINAL equals PostgreSQL after it), retry (refused
# on a pipe that did not fail, accepted on one that failed because its slot was dropped, which a
# resync then recovers) and delete with the destination dropped (slot, publication and that
# pipe's tables gone, the other pipe's untouched); the API refuses a POST without the token
# (401), a malformed body (400), an oversized one (413) and an unknown pipe (404). SIGTERM stops
# the process with status 0. Every log line must be a JSON object with time, level and msg, with
# transition (a command-started pause too), batch and command events; no line, no answer and no
# file of the store may hold the source's canary password, the ClickHouse password, the API token
# or a row value.
# Usage: ops_test.sh PATH_TO_CLICKPIPE
set -u
B="${1:-}"
# shellcheck source=leftovers.sh
source "$(dirname "${BASH_SOURCE[0]}")/leftovers.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
H="$HERE/ops_helper.py"
LOG= # the clickpipe run's stderr, once it runs
RUN= # the pid of the clickpipe run, for the trap
fail() {
  echo "FAIL: $*"
  if [ -s "$LOG" ]; then
    echo "--- the last 50 lines of the clickpipe log ---"
    tail -n 50 "$LOG"
  fi
  exit 1
}
for v in CLICKPIPE_PG_HOST CLICKPIPE_PG_PORT CLICKPIPE_PG_DATABASE CLICKPIPE_PG_USER \
  CLICKPIPE_PG_PASSWORD CLICKPIPE_CH_HOST CLICKPIPE_CH_PORT CLICKPIPE_CH_USER CLICKPIPE_CH_PASSWORD; do
  [ -n "${!v:-}" ] || fail "$v is not set: run the tests through ./scripts/test.sh"
done
[ -x "$B" ] || fail "no clickpipe binary at '$B'"
for tool in psql python3 curl timeout; do command -v $tool > /dev/null || fail "$tool is not installed"; done
WORK=$(mktemp -d)
OUT="$WORK/out"       # everything clickpipe printed or answered; searched for the secrets
SECRET="$WORK/secret" # what holds them on purpose (curl's header files), searched for nothing
mkdir -p "$OUT" "$SECRET"
chmod 700 "$SECRET"

# Fresh secrets each run. The source connects as a role of its own whose password is the canary,
# so the secret is one that really works; ClickHouse's password comes through another variable.
# Leaks are searched by the random parts.
HEX=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
TOKEN_HEX=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
ROW_HEX=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
PG_CANARY="CANARY-pg-$HEX"
PG_ENV="OPS_PG_SECRET_${HEX:0:8}"
CH_ENV="OPS_CH_SECRET_${HEX:0:8}"
export "$PG_ENV=$PG_CANARY" "$CH_ENV=$CLICKPIPE_CH_PASSWORD"
export CLICKPIPE_API_TOKEN="tok-CANARY-$TOKEN_HEX"
ROWMARK="rowvalue-$ROW_HEX" # in every row written: no row value may reach a log or a file
SECRETS=$(printf '%s\n' "$HEX" "$CLICKPIPE_CH_PASSWORD" "$TOKEN_HEX" "$ROW_HEX" "$PG_ENV" "$CH_ENV")
printf 'Authorization: Bearer %s\n' "$CLICKPIPE_API_TOKEN" > "$SECRET/auth"
printf 'X-ClickHouse-User: %s\nX-ClickHouse-Key: %s\n' "$CLICKPIPE_CH_USER" "$CLICKPIPE_CH_PASSWORD" \
  > "$SECRET/ch"

ID="ops$$"
ROLE="${ID}_canary"
PA="${ID}_pa" # pipe a: tables 1 and 2; the big table is added to it and cancelled
PB="${ID}_pb" # pipe b: table 3; table x is added to it and removed
T1="${ID}_t1" T2="${ID}_t2" T3="${ID}_t3" BIG="${ID}_big" TX="${ID}_x"
R1=1500 R2=600 R3=1200 RBIG=200000 RX=300
S="$WORK/store"
CH_URL="http://$CLICKPIPE_CH_HOST:$CLICKPIPE_CH_PORT"

pg() {
  PGPASSWORD=$CLICKPIPE_PG_PASSWORD psql -X -q -At -v ON_ERROR_STOP=1 -h "$CLICKPIPE_PG_HOST" \
    -p "$CLICKPIPE_PG_PORT" -U "$CLICKPIPE_PG_USER" -d "$CLICKPIPE_PG_DATABASE" -c "$1"
}
ch() { curl -sS --fail --max-time 20 -H @"$SECRET/ch" --data-binary "$1" "$CH_URL/"; }
cleanup() {
  [ -z "$RUN" ] || kill -9 "$RUN" 2> /dev/null
  # The role's connections first: a slot still in use cannot be dropped.
  pg "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '$ROLE'" > /dev/null 2>&1
  drop_leftovers "$ID"
  pg "DROP TABLE IF EXISTS $T1, $T2, $T3, $BIG, $TX" > /dev/null 2>&1
  pg "DROP OWNED BY $ROLE" > /dev/null 2>&1
  pg "DROP ROLE IF EXISTS $ROLE" > /dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

# Milliseconds since the epoch (the decimal separator of EPOCHREALTIME follows the locale).
now_ms() {
  local us=${EPOCHREALTIME//[.,]/}
  echo $((us / 1000))
}
since() { echo "$(($(now_ms) - $1)) ms"; }

N=0        # numbers the files of answers and outputs
N0=0       # the transition count before a command, set by transitions()
# api METHOD PATH [BODY [AUTH]]: one request to the API; sets CODE and ANSWER (the body's file).
# AUTH: token (default), wrong or none. A BODY of @FILE sends the file.
api() {
  local method=$1 path=$2 body=${3:-} auth=${4:-token}
  N=$((N + 1))
  ANSWER="$OUT/http.$N"
  local args=(-sS --max-time 20 -o "$ANSWER" -w '%{http_code}' -X "$method")
  case $auth in
    token) args+=(-H @"$SECRET/auth") ;;
    wrong) args+=(-H "Authorization: Bearer wrong-$TOKEN_HEX") ;;
  esac
  [ -z "$body" ] || args+=(-H 'Content-Type: application/json' --data-binary "$body")
  CODE=$(curl "${args[@]}" "$BASE$path" 2>> "$OUT/curl.err") || true
}
# call WANT METHOD PATH [BODY [AUTH]]: api, failing unless the answer has HTTP status WANT.
call() {
  local want=$1
  shift
  api "$@"
  [ "$CODE" = "$want" ] || fail "$1 $2 ${3:-}: HTTP $CODE, want $want: $(head -c 500 "$ANSWER" 2> /dev/null)"
}
# post WANT PIPE BODY [AUTH]: a command through the API.
post() { call "$1" POST "/pipes/$2/state" "$3" "${4:-token}"; }
# expect CHECK...: checks on the last answer's JSON (ops_helper.py expect).
expect() { python3 "$H" expect "$ANSWER" "$@" || fail "the answer to request $N"; }
# cli WANT SUBCOMMAND ARGS...: clickpipe SUBCOMMAND ARGS must exit WANT within CLI_TIMEOUT seconds
# (60); CLI_OUT and CLI_ERR hold what it printed.
cli() {
  local want=$1
  shift
  N=$((N + 1))
  CLI_OUT="$OUT/cli.$N.out"
  CLI_ERR="$OUT/cli.$N.err"
  timeout -s KILL "${CLI_TIMEOUT:-60}" "$B" "$@" > "$CLI_OUT" 2> "$CLI_ERR"
  local rc=$?
  [ "$rc" = "$want" ] || fail "clickpipe $*: exit $rc, want $want; stdout: $(head -c 300 "$CLI_OUT"); stderr: $(head -c 300 "$CLI_ERR")"
}
# wait_for PIPE STATE [OPTIONS]: until GET /pipes/PIPE shows STATE (ops_helper.py wait).
wait_for() { python3 "$H" wait "$BASE" "$@" > /dev/null || fail "waiting for $1 to be $2"; }
# transitions VAR PIPE: VAR = how many transitions the pipe has taken (its status says).
transitions() {
  local n
  n=$(python3 "$H" field "$BASE" "$2" transitions) || fail "GET /pipes/$2"
  printf -v "$1" '%s' "$n"
}
# eventually WHAT SECONDS COMMAND...: retries COMMAND every 0.2 s until it succeeds.
eventually() {
  local what=$1 end=$((SECONDS + $2))
  shift 2
  until "$@"; do
    [ $SECONDS -lt $end ] || fail "$what"
    sleep 0.2
  done
}
# The rows of a table, as count and sum of keys: PostgreSQL's, and ClickHouse's FINAL view.
pg_rows() { pg "SELECT count(*) || ' ' || coalesce(sum(id), 0) FROM $1"; }
ch_rows() { ch "SELECT concat(toString(count()), ' ', toString(sum(id))) FROM default.\`$1\` FINAL WHERE _is_deleted = 0"; }
same_rows() {
  local p c
  p=$(pg_rows "$1") && c=$(ch_rows "$1") && [ "$p" = "$c" ]
}
# EXISTS opens that table only (18.16 fails a read of system.tables while any table is dropped).
ch_has() { [ "$(ch "EXISTS TABLE default.\`$1\`")" = 1 ]; }
ch_lacks() { [ "$(ch "EXISTS TABLE default.\`$1\`")" = 0 ]; }
pub_tables() { pg "SELECT tablename FROM pg_publication_tables WHERE pubname = 'clickpipe_$1'"; }
pub_has() {
  local t
  t=$(pub_tables "$1") && grep -qx "$2" <<< "$t"
}
pub_lacks() {
  local t
  t=$(pub_tables "$1") && ! grep -qx "$2" <<< "$t"
}
# Whether the pipe's slot and publication exist (1) or not (0), as "SLOT PUBLICATION".
pg_objects() {
  pg "SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'clickpipe_$1') || ' ' ||
             (SELECT count(*) FROM pg_publication WHERE pubname = 'clickpipe_$1')"
}
objects_gone() { [ "$(pg_objects "$1")" = "0 0" ]; }

V=$("$B" --version) || fail "--version"
V=${V#clickpipe }

# The source tables (the big one is copied in 200 partitions when added, with one partition at a
# time: long enough to cancel the addition while it runs), and the role the pipes connect as.
pg "CREATE ROLE $ROLE LOGIN SUPERUSER REPLICATION PASSWORD '$PG_CANARY';
    CREATE TABLE $T1 (id int8 primary key, v text);
    CREATE TABLE $T2 (id int8 primary key, v text);
    CREATE TABLE $T3 (id int8 primary key, v text);
    CREATE TABLE $BIG (id int8 primary key, v text);
    CREATE TABLE $TX (id int8 primary key, v text);
    INSERT INTO $T1 SELECT g, '$ROWMARK ' || g FROM generate_series(1, $R1) g;
    INSERT INTO $T2 SELECT g, '$ROWMARK ' || g FROM generate_series(1, $R2) g;
    INSERT INTO $T3 SELECT g, '$ROWMARK ' || g FROM generate_series(1, $R3) g;
    INSERT INTO $BIG SELECT g, '$ROWMARK' FROM generate_series(1, $RBIG) g;
    INSERT INTO $TX SELECT g, '$ROWMARK ' || g FROM generate_series(1, $RX) g;
    ANALYZE $T1, $T2, $T3, $BIG, $TX" > /dev/null || fail "cannot create the role and the source tables"

# config FILE STORE PIPES: a config in the `pipes` form.
config() {
  cat > "$1" << J
{"store": "$2",
 "source": {"host": "$CLICKPIPE_PG_HOST", "port": $CLICKPIPE_PG_PORT, "dbname": "$CLICKPIPE_PG_DATABASE",
            "user": "$ROLE", "password_env": "$PG_ENV"},
 "destination": {"url": "$CH_URL", "user": "$CLICKPIPE_CH_USER", "password_env": "$CH_ENV"},
 "pipes": [$3]}
J
}
config "$WORK/pipes.json" "$S" "
  {\"id\": \"$PA\", \"tables\": [\"public.$T1\", \"public.$T2\"],
   \"settings\": {\"sync_interval_ms\": 200, \"rows_per_partition\": 1000, \"partitions_in_parallel\": 1}},
  {\"id\": \"$PB\", \"tables\": [\"public.$T3\"], \"settings\": {\"sync_interval_ms\": 200}}"
cli 0 check-config --config "$WORK/pipes.json"

PORT=$(python3 "$H" port) || fail "no free port"
BASE="http://127.0.0.1:$PORT"

# An address off loopback is refused: without --listen-remote, and with it but without a token.
# 192.0.2.1 (TEST-NET-1) is on no interface here: even a wrong acceptance cannot listen beyond
# loopback.
config "$WORK/refused.json" "$WORK/refused.store" "{\"id\": \"${ID}_pz\", \"tables\": [\"public.$T1\"]}"
CLI_TIMEOUT=15 cli 2 run --config "$WORK/refused.json" --listen "192.0.2.1:$PORT"
grep -q -- "--listen-remote" "$CLI_ERR" || fail "a remote --listen refused without naming --listen-remote: $(cat "$CLI_ERR")"
N=$((N + 1))
env -u CLICKPIPE_API_TOKEN timeout -s KILL 15 "$B" run --config "$WORK/refused.json" \
  --listen "192.0.2.1:$PORT" --listen-remote > "$OUT/cli.$N.out" 2> "$OUT/cli.$N.err"
rc=$?
[ $rc = 2 ] || fail "--listen-remote without a token: exit $rc, want 2"
grep -q CLICKPIPE_API_TOKEN "$OUT/cli.$N.err" \
  || fail "--listen-remote without a token refused without naming CLICKPIPE_API_TOKEN: $(cat "$OUT/cli.$N.err")"

# 1. Start: both pipes copy their tables and reach Running; the API answers.
T_START=$(now_ms)
LOG="$OUT/run.err"
"$B" run --config "$WORK/pipes.json" --log-format json --log-level debug --listen "127.0.0.1:$PORT" \
  > "$OUT/run.out" 2> "$LOG" &
RUN=$!
for _ in $(seq 1 100); do
  curl -sf --max-time 2 "$BASE/healthz" > /dev/null 2>&1 && break
  kill -0 "$RUN" 2> /dev/null || fail "clickpipe run ended: $(tail -n 5 "$LOG")"
  sleep 0.2
done
wait_for "$PA" Running --timeout 60
wait_for "$PB" Running --timeout 60
D_START=$(since "$T_START")

call 200 GET /healthz
expect status=ok pipes=2
call 200 GET /pipes
expect "pipes#2" "pipes[0].id~^($PA|$PB)\$" "pipes[1].id~^($PA|$PB)\$" "broken#0"
call 200 GET "/pipes/$PA"
expect "id=$PA" state=Running live=true "tables#2"
call 404 GET /pipes/nosuchpipe
expect "error~nosuchpipe"
call 404 GET /nosuchpath
call 405 GET "/pipes/$PA/state"

# 2. Metrics move as rows are written: 400 changes to table 1 (pipe a), 250 to table 3 (pipe b).
python3 "$H" scrape "$BASE" "$OUT/metrics.0" || fail "the first scrape"
T_CDC=$(now_ms)
pg "INSERT INTO $T1 SELECT g, '$ROWMARK ' || g FROM generate_series(100001, 100300) g;
    UPDATE $T1 SET v = v || ' u' WHERE id <= 100;
    INSERT INTO $T3 SELECT g, '$ROWMARK ' || g FROM generate_series(100001, 100200) g;
    DELETE FROM $T3 WHERE id <= 50" > /dev/null || fail "cannot write to the source tables"
SPEC=$(printf '{"version": "%s", "pipes": {
  "%s": {"snapshot": {"public.%s": %d, "public.%s": %d}, "written": {"public.%s": 400}},
  "%s": {"snapshot": {"public.%s": %d}, "written": {"public.%s": 250}}}}' \
  "$V" "$PA" "$T1" $R1 "$T2" $R2 "$T1" "$PB" "$T3" $R3 "$T3")
python3 "$H" metrics-wait "$BASE" "$OUT/metrics.0" "$OUT/metrics.1" "$SPEC" --timeout 30 \
  || fail "the changes written did not show in /metrics"
D_CDC=$(since "$T_CDC")
FIGURES=$(python3 "$H" metrics-check "$OUT/metrics.0" "$OUT/metrics.1" "$SPEC") \
  || fail "/metrics after the writes"
for t in "$T1" "$T2" "$T3"; do eventually "$t: ClickHouse's FINAL differs from PostgreSQL" 20 same_rows "$t"; done

# 3. Status: a readable table with a lag column and rows per table; --json from the live files.
cli 0 status --store "$S"
python3 "$H" status-table "$CLI_OUT" "$SPEC" || fail "clickpipe status"
cli 0 status --store "$S" --json
python3 "$H" status-json "$CLI_OUT" "$SPEC" || fail "clickpipe status --json"

# 4. The API refuses what it must, and does nothing then.
post 401 "$PA" '{"command": "pause"}' none
post 401 "$PA" '{"command": "pause"}' wrong
post 400 "$PA" '{"command": '
expect status=invalid "message:string"
post 400 "$PA" '[1, 2]'
expect status=invalid
post 400 "$PA" '{"command": "bogus"}'
expect status=invalid
post 404 nosuchpipe '{"command": "pause"}'
python3 -c 'import sys; sys.stdout.write("{\"command\": \"pause\", \"pad\": \"" + "x" * 70000 + "\"}")' \
  > "$WORK/oversized.json"
post 413 "$PA" "@$WORK/oversized.json"
call 200 GET "/pipes/$PA"
expect state=Running

# 5. pause, pause again (refused with its reason), resume: pipe a from the shell, b through HTTP.
cli 0 pause --store "$S" --id "$PA"
grep -q accepted "$CLI_OUT" || fail "pause: $(cat "$CLI_OUT")"
wait_for "$PA" Paused
python3 "$H" scrape "$BASE" "$OUT/metrics.paused" || fail "a scrape while paused"
python3 "$H" metric-is "$OUT/metrics.paused" clickpipe_pipe_state "pipe=$PA,state=Paused" 1 || fail "/metrics"
python3 "$H" metric-is "$OUT/metrics.paused" clickpipe_pipe_state "pipe=$PA,state=Running" 0 || fail "/metrics"
cli 1 pause --store "$S" --id "$PA"
grep -Eq "rejected.*pause.*not allowed in (state )?Paused" "$CLI_ERR" \
  || fail "a second pause is not refused with its reason: $(cat "$CLI_OUT" "$CLI_ERR")"
post 409 "$PA" '{"command": "pause"}'
expect status=rejected state=Paused "rejection:object" "message~not allowed"
cli 0 resume --store "$S" --id "$PA"
wait_for "$PA" Running
post 200 "$PB" '{"command": "pause"}'
expect status=accepted "state~^(Pausing|Paused)\$"
wait_for "$PB" Paused
post 409 "$PB" '{"command": "pause"}'
expect status=rejected "rejection:object"
cli 1 pause --store "$S" --id "$PB"
grep -Eq "rejected.*pause.*not allowed in (state )?Paused" "$CLI_ERR" || fail "second pause: $(cat "$CLI_ERR")"
post 200 "$PB" '{"command": "resume"}'
expect status=accepted
wait_for "$PB" Running
# The upstream API's names for them.
post 200 "$PB" '{"command": "stop"}'
wait_for "$PB" Paused
post 200 "$PB" '{"command": "start"}'
wait_for "$PB" Running

# 6. update-settings, from the shell and through HTTP; a bad value is refused and changes nothing.
cli 0 update-settings --store "$S" --id "$PA" pull_batch_size=5000
post 200 "$PA" '{"command": "update-settings", "settings": {"sync_interval_ms": 1000}}'
expect status=accepted
N=$((N + 1))
timeout -s KILL 60 "$B" update-settings --store "$S" --id "$PA" pull_batch_size=0 \
  > "$OUT/cli.$N.out" 2> "$OUT/cli.$N.err"
rc=$?
[ $rc = 1 ] || [ $rc = 2 ] || fail "update-settings pull_batch_size=0: exit $rc, want 1 or 2"
grep -q pull_batch_size "$OUT/cli.$N.err" || fail "pull_batch_size=0 refused without naming it: $(cat "$OUT/cli.$N.err")"
post 400 "$PA" '{"command": "update-settings", "settings": {"pull_batch_size": 0}}'
expect status=invalid "message~pull_batch_size"
call 200 GET "/pipes/$PA"
expect state=Running settings.pull_batch_size=5000 settings.sync_interval_ms=1000
settings_published() {
  "$B" status --store "$S" --json > "$OUT/status.settings" 2>&1 \
    && python3 "$H" settings-json "$OUT/status.settings" "$PA" pull_batch_size=5000 sync_interval_ms=1000 2> /dev/null
}
eventually "status --json does not show the new settings within 5 s" 5 settings_published

# 7. add-table, then cancel-add while the table is copied: from the shell, then through HTTP.
T_ADD=$(now_ms)
transitions N0 "$PA"
cli 0 add-table --store "$S" --id "$PA" "public.$BIG"
wait_for "$PA" Snapshot --has "$BIG" --copying "$BIG" --min-transitions $((N0 + 3))
cli 0 cancel-add --store "$S" --id "$PA"
wait_for "$PA" Running --lacks "$BIG" --min-transitions $((N0 + 4))
eventually "the cancelled $BIG stays in publication clickpipe_$PA" 15 pub_lacks "$PA" "$BIG"
transitions N0 "$PA"
post 200 "$PA" "{\"command\": \"add-table\", \"tables\": [\"public.$BIG\"]}"
expect status=accepted
wait_for "$PA" Snapshot --has "$BIG" --copying "$BIG" --min-transitions $((N0 + 3))
post 200 "$PA" '{"command": "cancel-add"}'
expect status=accepted state=Running
wait_for "$PA" Running --lacks "$BIG" --min-transitions $((N0 + 4))
eventually "the cancelled $BIG stays in publication clickpipe_$PA" 15 pub_lacks "$PA" "$BIG"
D_ADD=$(since "$T_ADD")

# 8. add-table to the end (HTTP), then remove-table: x from pipe b (shell), 2 from pipe a (HTTP).
transitions N0 "$PB"
post 200 "$PB" "{\"command\": \"add-table\", \"tables\": [\"public.$TX\"]}"
wait_for "$PB" Running --has "$TX" --min-transitions $((N0 + 4)) --timeout 60
pub_has "$PB" "$TX" || fail "$TX added but not in publication clickpipe_$PB"
eventually "$TX: ClickHouse's FINAL differs from PostgreSQL after the addition" 20 same_rows "$TX"
transitions N0 "$PB"
cli 0 remove-table --store "$S" --id "$PB" "public.$TX"
wait_for "$PB" Running --lacks "$TX" --min-transitions $((N0 + 3))
eventually "the removed $TX stays in publication clickpipe_$PB" 15 pub_lacks "$PB" "$TX"
transitions N0 "$PA"
post 200 "$PA" "{\"command\": \"remove-table\", \"tables\": [\"public.$T2\"]}"
wait_for "$PA" Running --lacks "$T2" --min-transitions $((N0 + 3))
eventually "the removed $T2 stays in publication clickpipe_$PA" 15 pub_lacks "$PA" "$T2"

# 9. resync from the shell (pipe a) after more writes: ClickHouse equals PostgreSQL after it.
pg "UPDATE $T1 SET v = v || ' r' WHERE id BETWEEN 200 AND 400;
    DELETE FROM $T1 WHERE id BETWEEN 1000 AND 1019" > /dev/null || fail "cannot write to $T1"
T_RESYNC=$(now_ms)
transitions N0 "$PA"
cli 0 resync --store "$S" --id "$PA"
wait_for "$PA" Running --min-transitions $((N0 + 3)) --timeout 60
D_RESYNC=$(since "$T_RESYNC")
eventually "$T1: ClickHouse's FINAL differs from PostgreSQL after the resync" 20 same_rows "$T1"
eventually "the resync of $T1 left its copies behind" 10 ch_lacks "${T1}_resync"
eventually "the resync of $T1 left its copies behind" 10 ch_lacks "${T1}_old"

# 10. retry: refused for a pipe that did not fail; accepted for one that did. Pipe b fails for
# real: its slot is dropped while it is paused, so CDC cannot go on when resumed (nor when
# retried); a resync through HTTP recovers it, and ClickHouse equals PostgreSQL again.
cli 1 retry --store "$S" --id "$PA"
grep -Eq "rejected.*retry.*not allowed" "$CLI_ERR" || fail "retry of a Running pipe: $(cat "$CLI_OUT" "$CLI_ERR")"
post 409 "$PA" '{"command": "retry"}'
expect status=rejected "rejection:object" "message~not allowed"
post 200 "$PB" '{"command": "pause"}'
wait_for "$PB" Paused
# A paused pipe streams nothing, yet its slot keeps every WAL byte the source writes: the metric,
# read from the source itself, must grow while the pipe sits paused.
python3 "$H" scrape "$BASE" "$OUT/metrics.paused0" || fail "a scrape of a paused pipe"
HELD0=$(python3 "$H" metric-value "$OUT/metrics.paused0" clickpipe_slot_retained_wal_bytes "pipe=$PB") \
  || fail "no clickpipe_slot_retained_wal_bytes for the paused $PB"
pg "INSERT INTO $T3 SELECT g, '$ROWMARK ' || g FROM generate_series(300001, 302000) g" > /dev/null \
  || fail "cannot write to $T3"
slot_grew() {
  python3 "$H" scrape "$BASE" "$OUT/metrics.paused1" > /dev/null 2>&1 \
    && python3 "$H" metric-above "$OUT/metrics.paused1" clickpipe_slot_retained_wal_bytes \
      "pipe=$PB" "$HELD0" > /dev/null 2>&1
}
T_HELD=$(now_ms)
eventually "the WAL the paused $PB's slot keeps did not grow in /metrics (was $HELD0)" 25 slot_grew
HELD1=$(python3 "$H" metric-value "$OUT/metrics.paused1" clickpipe_slot_retained_wal_bytes "pipe=$PB")
D_HELD=$(since "$T_HELD")
call 200 GET "/pipes/$PB"
expect "slot_wal.exists=true"
drop_slot() {
  pg "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
        WHERE slot_name = 'clickpipe_$PB' AND active" > /dev/null 2>&1
  pg "SELECT pg_drop_replication_slot('clickpipe_$PB')" > /dev/null 2>&1
}
eventually "cannot drop the slot of the paused $PB" 10 drop_slot
pg "INSERT INTO $T3 SELECT g, '$ROWMARK ' || g FROM generate_series(200001, 200010) g" > /dev/null \
  || fail "cannot write to $T3"
transitions N0 "$PB"
post 200 "$PB" '{"command": "resume"}'
wait_for "$PB" Failed --min-transitions $((N0 + 2))
call 200 GET "/pipes/$PB"
expect state=Failed "last_error.message~slot" "allowed_commands~retry"
python3 "$H" scrape "$BASE" "$OUT/metrics.failed" || fail "a scrape of a failed pipe"
python3 "$H" metric-is "$OUT/metrics.failed" clickpipe_pipe_state "pipe=$PB,state=Failed" 1 || fail "/metrics"
transitions N0 "$PB"
cli 0 retry --store "$S" --id "$PB"
wait_for "$PB" Failed --min-transitions $((N0 + 2))
transitions N0 "$PB"
post 200 "$PB" '{"command": "retry"}'
expect status=accepted
wait_for "$PB" Failed --min-transitions $((N0 + 2))
T_RECOVER=$(now_ms)
transitions N0 "$PB"
post 200 "$PB" '{"command": "resync"}'
expect status=accepted
wait_for "$PB" Running --min-transitions $((N0 + 3)) --timeout 60
D_RECOVER=$(since "$T_RECOVER")
[ "$(pg_objects "$PB")" = "1 1" ] || fail "the resync of $PB made no new slot: $(pg_objects "$PB")"
eventually "$T3: ClickHouse's FINAL differs from PostgreSQL after the resync" 20 same_rows "$T3"

# 11. delete with the destination dropped: pipe a through HTTP, pipe b from the shell.
T_DELETE=$(now_ms)
post 200 "$PA" '{"command": "delete", "drop_destination": true}'
expect status=accepted
wait_for "$PA" Terminated --gone-ok --timeout 60
eventually "$T1 is still in ClickHouse after pipe $PA was deleted" 15 ch_lacks "$T1"
eventually "the slot or publication of $PA is still there" 15 objects_gone "$PA"
ch_has "$T3" || fail "deleting $PA dropped $T3 of pipe $PB"
same_rows "$T3" || fail "deleting $PA changed $T3 of pipe $PB"
[ "$(pg_objects "$PB")" = "1 1" ] || fail "deleting $PA took the slot or publication of $PB: $(pg_objects "$PB")"
call 200 GET "/pipes/$PB"
expect state=Running
cli 0 delete --store "$S" --id "$PB" --drop-destination
wait_for "$PB" Terminated --gone-ok --timeout 60
eventually "$T3 is still in ClickHouse after pipe $PB was deleted" 15 ch_lacks "$T3"
eventually "the slot or publication of $PB is still there" 15 objects_gone "$PB"
D_DELETE=$(since "$T_DELETE")
call 200 GET /healthz

# 12. SIGTERM: a clean stop.
T_STOP=$(now_ms)
kill -TERM "$RUN"
for _ in $(seq 1 150); do
  kill -0 "$RUN" 2> /dev/null || break
  sleep 0.2
done
kill -0 "$RUN" 2> /dev/null && fail "clickpipe run did not stop within 30 s of SIGTERM"
wait "$RUN"
rc=$?
RUN=
[ $rc = 0 ] || fail "clickpipe run exited $rc on SIGTERM, want 0"
D_STOP=$(since "$T_STOP")

# 13. The log: JSON lines only, on stderr; the events; no secret, no row value, anywhere.
[ -s "$OUT/run.out" ] && fail "clickpipe run wrote to stdout: $(head -c 300 "$OUT/run.out")"
LOGSPEC=$(printf '{"pipes": {
  "%s": {"triggers": ["pause", "resume", "add_tables", "cancel_table_addition", "remove_tables", "resync", "delete", "terminated"]},
  "%s": {"triggers": ["pause", "resume", "add_tables", "remove_tables", "fatal_error", "retry", "resync", "delete", "terminated"]}}}' "$PA" "$PB")
LOGS=$(OPS_SECRETS=$SECRETS python3 "$H" logs "$LOG" "$LOGSPEC") || fail "the log"
while read -r secret; do
  leaked=$( (grep -rlF -- "$secret" "$OUT" "$S" 2> /dev/null; find "$OUT" "$S" -name "*$secret*" 2> /dev/null) | sort -u)
  [ -z "$leaked" ] || fail "a secret or a row value leaked into: ${leaked//$'\n'/, }"
done <<< "$SECRETS"

echo "ops: 2 pipes in one process; $((R1 + R2 + R3)) rows copied at start, Running after $D_START"
echo "$FIGURES" | sed 's/^/  /'
echo "  650 changes written reached /metrics in $D_CDC; add + cancel-add twice: $D_ADD;" \
  "resync: $D_RESYNC; recovery of a failed pipe by resync: $D_RECOVER; delete of both: $D_DELETE;" \
  "paused slot's WAL seen growing $HELD0 -> $HELD1 bytes in $D_HELD;" \
  "stop: $D_STOP"
echo "  $N requests and commands; $LOGS"
echo "1 passed, 0 failed"
