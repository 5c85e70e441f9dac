#!/usr/bin/env bash
# Two real PostgreSQL -> ClickHouse pipes across two `clickpipe run` workers sharing a store in
# PostgreSQL (docs/scale-out.md), on the servers of ./scripts/test.sh, with writes going on:
#   1. the workers split the pipes, one each;
#   2. a command for a pipe goes through the other worker's HTTP API (pause), and through
#      `clickpipe resume --store postgres://...` from the shell; adding one pipe's table to the
#      pipe on the other worker is refused;
#   3. SIGTERM drains one worker: its pipe is handed over and runs on the other, exit 0;
#   4. the remaining worker, owner of both pipes, is SIGKILLed; a new worker takes both over
#      within the lease + 5 s;
#   5. once the writes stop, ClickHouse's FINAL equals PostgreSQL by count and checksum;
#   6. no log line holds the store's or the source's password.
# Usage: cluster_cli_test.sh PATH_TO_CLICKPIPE
set -u
B="${1:-}"
# shellcheck source=leftovers.sh
source "$(dirname "${BASH_SOURCE[0]}")/leftovers.sh"
LOG=
fail() {
  echo "FAIL: $*"
  for f in "$WORK"/w*.err; do
    [ -s "$f" ] || continue
    echo "--- the last 15 lines of $f ---"
    tail -n 15 "$f"
  done
  exit 1
}
for v in CLICKPIPE_PG_HOST CLICKPIPE_PG_PORT CLICKPIPE_PG_DATABASE CLICKPIPE_PG_USER \
  CLICKPIPE_PG_PASSWORD CLICKPIPE_CH_HOST CLICKPIPE_CH_PORT CLICKPIPE_CH_USER CLICKPIPE_CH_PASSWORD; do
  [ -n "${!v:-}" ] || {
    echo "FAIL: $v is not set: run the tests through ./scripts/test.sh"
    exit 1
  }
done
[ -x "$B" ] || {
  echo "FAIL: no clickpipe binary at '$B'"
  exit 1
}
WORK=$(mktemp -d)
ID="cl$$"
SCHEMA="${ID}_store"
T1="${ID}_t1" T2="${ID}_t2"
PA="${ID}_pa" PB="${ID}_pb"
LEASE_MS=3000
CH_URL="http://$CLICKPIPE_CH_HOST:$CLICKPIPE_CH_PORT"
URL="postgresql://$CLICKPIPE_PG_USER@$CLICKPIPE_PG_HOST:$CLICKPIPE_PG_PORT/$CLICKPIPE_PG_DATABASE"
export CLUSTER_STORE_PW="$CLICKPIPE_PG_PASSWORD" CLUSTER_CH_PW="$CLICKPIPE_CH_PASSWORD"
PIDS=()
WRITER=

pg() {
  PGPASSWORD=$CLICKPIPE_PG_PASSWORD psql -X -q -At -v ON_ERROR_STOP=1 -h "$CLICKPIPE_PG_HOST" \
    -p "$CLICKPIPE_PG_PORT" -U "$CLICKPIPE_PG_USER" -d "$CLICKPIPE_PG_DATABASE" -c "$1"
}
ch() {
  curl -sS --fail --max-time 20 -H "X-ClickHouse-User: $CLICKPIPE_CH_USER" \
    -H "X-ClickHouse-Key: $CLICKPIPE_CH_PASSWORD" --data-binary "$1" "$CH_URL/"
}
cleanup() {
  [ -z "$WRITER" ] || kill "$WRITER" 2> /dev/null
  for p in "${PIDS[@]}"; do kill -9 "$p" 2> /dev/null; done
  sleep 0.5
  drop_leftovers "$ID"
  pg "DROP TABLE IF EXISTS $T1, $T2; DROP SCHEMA IF EXISTS $SCHEMA CASCADE" > /dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

now_ms() {
  local us=${EPOCHREALTIME//[.,]/}
  echo $((us / 1000))
}
eventually() {
  local what=$1 end=$((SECONDS + $2))
  shift 2
  until "$@"; do
    [ $SECONDS -lt $end ] || fail "$what"
    sleep 0.2
  done
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# `clickpipe status` through the store, as "PIPE STATE OWNER" lines (OWNER: worker id or -).
status() {
  PGPASSWORD=$CLICKPIPE_PG_PASSWORD "$B" status --store "$URL" --store-schema "$SCHEMA" --json \
    | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    o = p.get("owner")
    print(p.get("id"), p.get("state"), o["id"] if o else "-")'
}
# owners_are N: both pipes Running, on N distinct live workers.
owners_are() {
  local s
  s=$(status) || return 1
  [ "$(grep -c " Running [0-9]" <<< "$s")" = 2 ] || return 1
  [ "$(awk '{print $3}' <<< "$s" | sort -u | wc -l)" = "$1" ]
}
owner_of() { status | awk -v p="$1" '$1 == p {print $3}'; }
state_of() { status | awk -v p="$1" '$1 == p {print $2}'; }
is_state() { [ "$(state_of "$1")" = "$2" ]; }

pg_rows() { pg "SELECT count(*) || ' ' || coalesce(sum(id), 0) || ' ' || coalesce(sum(length(v)), 0) FROM $1"; }
ch_rows() { ch "SELECT concat(toString(count()), ' ', toString(sum(id)), ' ', toString(sum(length(v)))) FROM default.\`$1\` FINAL WHERE _is_deleted = 0"; }
same_rows() {
  local p c
  p=$(pg_rows "$1") && c=$(ch_rows "$1") && [ "$p" = "$c" ]
}

pg "CREATE TABLE $T1 (id int8 primary key, v text);
    CREATE TABLE $T2 (id int8 primary key, v text);
    INSERT INTO $T1 SELECT g, 'a' || g FROM generate_series(1, 3000) g;
    INSERT INTO $T2 SELECT g, 'b' || g FROM generate_series(1, 2000) g" > /dev/null \
  || fail "cannot create the source tables"

cat > "$WORK/pipes.json" << J
{"store": {"url": "$URL", "schema": "$SCHEMA", "lease_ms": $LEASE_MS, "password_env": "CLUSTER_STORE_PW"},
 "source": {"host": "$CLICKPIPE_PG_HOST", "port": $CLICKPIPE_PG_PORT, "dbname": "$CLICKPIPE_PG_DATABASE",
            "user": "$CLICKPIPE_PG_USER", "password_env": "CLUSTER_STORE_PW"},
 "destination": {"url": "$CH_URL", "user": "$CLICKPIPE_CH_USER", "password_env": "CLUSTER_CH_PW"},
 "pipes": [{"id": "$PA", "tables": ["public.$T1"], "settings": {"sync_interval_ms": 200}},
           {"id": "$PB", "tables": ["public.$T2"], "settings": {"sync_interval_ms": 200}}]}
J
"$B" check-config --config "$WORK/pipes.json" > /dev/null || fail "check-config refused the config"

# worker NAME: starts a worker with its API on a free loopback port (PORT_NAME).
worker() {
  local port
  port=$(free_port)
  printf -v "PORT_$1" '%s' "$port"
  "$B" run --config "$WORK/pipes.json" --log-format json --listen "127.0.0.1:$port" \
    > "$WORK/$1.out" 2> "$WORK/$1.err" &
  PIDS+=($!)
  printf -v "PID_$1" '%s' "$!"
}

# 1. Two workers split the two pipes.
worker w1
worker w2
eventually "the pipes never ran on both workers, one each: $(status)" 90 owners_are 2
echo "the pipes run on two workers: $(status | tr '\n' ';')"

# Writes from now on: inserts, updates and deletes on both tables, for about 12 s.
(
  for i in $(seq 1 60); do
    pg "INSERT INTO $T1 SELECT g, 'n$i' FROM generate_series(100000 + $i * 100, 100000 + $i * 100 + 49) g;
        UPDATE $T1 SET v = v || 'u' WHERE id % 60 = $i % 60;
        DELETE FROM $T2 WHERE id = $i * 7;
        INSERT INTO $T2 SELECT g, 'm$i' FROM generate_series(200000 + $i * 100, 200000 + $i * 100 + 29) g" > /dev/null
    sleep 0.2
  done
) &
WRITER=$!

# 2. A command for w1's pipe through w2's API, and one through the store from the shell.
OWNER_A=$(owner_of "$PA")
W1_ID=$(grep -o '"worker":[0-9]*' "$WORK/w1.err" | head -1 | cut -d: -f2)
if [ "$OWNER_A" = "$W1_ID" ]; then OTHER_PORT=$PORT_w2; else OTHER_PORT=$PORT_w1; fi
CODE=$(curl -sS --max-time 40 -o "$WORK/pause.json" -w '%{http_code}' -X POST \
  -H 'Content-Type: application/json' --data-binary '{"command": "pause"}' \
  "http://127.0.0.1:$OTHER_PORT/pipes/$PA/state")
[ "$CODE" = 200 ] || fail "pause through the other worker's API: HTTP $CODE: $(cat "$WORK/pause.json")"
grep -q '"accepted"' "$WORK/pause.json" || fail "pause not accepted: $(cat "$WORK/pause.json")"
eventually "$PA never Paused" 20 is_state "$PA" Paused
PGPASSWORD=$CLICKPIPE_PG_PASSWORD timeout 60 "$B" resume --store "$URL" --store-schema "$SCHEMA" \
  --id "$PA" > "$WORK/resume.out" 2> "$WORK/resume.err" || fail "resume through the store: $(cat "$WORK/resume.err")"
grep -q accepted "$WORK/resume.out" || fail "resume not accepted: $(cat "$WORK/resume.out")"
eventually "$PA never Running again" 20 is_state "$PA" Running
PGPASSWORD=$CLICKPIPE_PG_PASSWORD timeout 60 "$B" pause --store "$URL" --store-schema "$SCHEMA" \
  --id nosuchpipe > /dev/null 2> "$WORK/nopipe.err" && fail "a command for no pipe exited 0"
grep -q not_found "$WORK/nopipe.err" || fail "a command for no pipe: $(cat "$WORK/nopipe.err")"

# Pipes on different workers still never share a ClickHouse table: adding pa's table to pb is
# refused by pb's owner, which checks every pipe in the store.
[ "$(owner_of "$PA")" != "$(owner_of "$PB")" ] || fail "the pipes are no longer on two workers: $(status)"
PGPASSWORD=$CLICKPIPE_PG_PASSWORD timeout 60 "$B" add-table --store "$URL" --store-schema "$SCHEMA" \
  --id "$PB" "public.$T1" > /dev/null 2> "$WORK/clash.err" && fail "a table of another worker's pipe was added"
grep -q "invalid" "$WORK/clash.err" && grep -q "$PA" "$WORK/clash.err" \
  || fail "the clash was not refused naming the other pipe: $(cat "$WORK/clash.err")"

# 3. SIGTERM drains w2: its pipe moves to w1, and w2 exits 0.
kill -TERM "$PID_w2"
wait "$PID_w2"
rc=$?
[ $rc = 0 ] || fail "the drained worker exited $rc"
eventually "w1 never ran both pipes after w2 drained: $(status)" 20 owners_are 1
grep -q '"event":"worker_released"' "$WORK/w2.err" || fail "w2 logged no release"

# 4. Kill the owner of both with writes going on; a new worker takes both over.
sleep 1
kill -KILL "$PID_w1"
T_KILL=$(now_ms)
worker w3
eventually "w3 never started" 20 grep -q '"event":"started"' "$WORK/w3.err"
W3_ID=$(grep -o '"worker":[0-9]*' "$WORK/w3.err" | head -1 | cut -d: -f2)
both_on_w3() { owners_are 1 && [ "$(owner_of "$PA")" = "$W3_ID" ]; }
eventually "w3 never took both pipes over: $(status)" $(((LEASE_MS + 5000) / 1000 + 5)) both_on_w3
TOOK=$(($(now_ms) - T_KILL))
[ $TOOK -le $((LEASE_MS + 5000)) ] || fail "takeover took $TOOK ms, more than the lease + 5 s"
echo "both pipes ran on the new worker $TOOK ms after their owner was killed (lease $LEASE_MS ms)"

# 5. After the writes, ClickHouse's FINAL equals PostgreSQL.
wait "$WRITER"
WRITER=
eventually "$T1 differs: PG $(pg_rows "$T1"), CH $(ch_rows "$T1")" 60 same_rows "$T1"
eventually "$T2 differs: PG $(pg_rows "$T2"), CH $(ch_rows "$T2")" 60 same_rows "$T2"
echo "FINAL equals PostgreSQL: $T1 $(pg_rows "$T1"), $T2 $(pg_rows "$T2") (count, sum of ids, sum of lengths)"

kill -TERM "$PID_w3"
wait "$PID_w3"
rc=$?
[ $rc = 0 ] || fail "w3 exited $rc on SIGTERM"

# 6. No password in any log.
if grep -qF -- "$CLICKPIPE_PG_PASSWORD" "$WORK"/*.err "$WORK"/*.out; then
  fail "a log holds the store's password"
fi
if grep -qF -- "$CLICKPIPE_CH_PASSWORD" "$WORK"/*.err "$WORK"/*.out; then
  fail "a log holds the ClickHouse password"
fi
echo "PASS"
