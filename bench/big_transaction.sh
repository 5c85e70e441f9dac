#!/usr/bin/env bash
# How the pipe copes with huge transactions. Starts throwaway PostgreSQL 15 and ClickHouse 18.16
# on 127.0.0.1, runs `clickpipe run` (release build) over two tables, then, with the pipe paused,
# commits
#   A: one UPDATE of every row of bt_update (N_UPDATE rows)
#   B: one INSERT of N_INSERT rows of ~1000 bytes into bt_insert
# and after each lets both consumers read it from the WAL: the pipe (resumed) and pg_recvlogical
# decoding the same changes to /dev/null, the baseline; A runs pg_recvlogical first, B the pipe.
# Both clocks start when the consumer is started (`clickpipe resume`, pg_recvlogical launched) and
# stop on the same condition: pg_replication_slots shows the consumer's slot confirmed up to the
# WAL insert position read right after the commit (polled every 0.1 s). Also prints the pipe's
# peak RSS meanwhile (target 512 MiB). Exits non-zero if ClickHouse does not end up equal to
# PostgreSQL.
#
#   bench/big_transaction.sh [N_UPDATE=3000000] [N_INSERT=2000000]
#
# CLICKPIPE_BENCH_NO_BUILD=1 skips the build and uses build/release (or build/dev if release has
# no tools/clickpipe). BT_TIMEOUT: seconds to wait for the pipe per step (default 1800).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
source "$CLICKPIPE_ROOT/scripts/pg.sh"
source "$CLICKPIPE_ROOT/scripts/ch.sh"

N_UPDATE=${1:-3000000}
N_INSERT=${2:-2000000}
TIMEOUT=${BT_TIMEOUT:-1800}
TARGET_MIB=512
PIPE_ID=big_txn
PUBLICATION="clickpipe_$PIPE_ID"  # publication_name() in src/pg_to_clickhouse/executors.cpp
for n in "$N_UPDATE" "$N_INSERT"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || {
    echo "usage: $0 [N_UPDATE] [N_INSERT] (positive integers)" >&2
    exit 2
  }
done

ensure_packages "${CLICKPIPE_PACKAGES[@]}" jq
if [ "${CLICKPIPE_BENCH_NO_BUILD:-0}" = 1 ]; then
  BUILD_DIR="$CLICKPIPE_ROOT/build/release"
  [ -x "$BUILD_DIR/tools/clickpipe" ] || BUILD_DIR="$CLICKPIPE_ROOT/build/dev"
else
  configure_and_build release
  BUILD_DIR="$CLICKPIPE_ROOT/build/release"
fi
CLICKPIPE="$BUILD_DIR/tools/clickpipe"
[ -x "$CLICKPIPE" ] || { echo "error: no $CLICKPIPE (build it first)" >&2; exit 1; }
echo "==> using $CLICKPIPE"

WORK=$(mktemp -d /tmp/clickpipe-bigtxn.XXXXXX)
STORE="$WORK/store"
PIPE_LOG="$WORK/clickpipe.log"
RSS_LOG="$WORK/rss.log"
CP_PID=
SAMPLER_PID=
RECV_PID=

cleanup() {
  local rc=$? i
  set +e
  for i in $SAMPLER_PID $RECV_PID; do kill "$i" 2>/dev/null; wait "$i" 2>/dev/null; done
  if [ -n "$CP_PID" ] && kill -0 "$CP_PID" 2>/dev/null; then
    kill -TERM "$CP_PID"
    # A graceful stop saves the pipe; it may be in the middle of a big batch, so allow a while.
    for i in $(seq 1 600); do kill -0 "$CP_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$CP_PID" 2>/dev/null; then
      echo "clickpipe did not stop within 60 s: killing it" >&2
      kill -KILL "$CP_PID"
    fi
    wait "$CP_PID" 2>/dev/null
  fi
  if [ "$rc" -ne 0 ] && [ -f "$PIPE_LOG" ]; then
    echo "--- last lines of the clickpipe log ---" >&2
    tail -n 30 "$PIPE_LOG" >&2
  fi
  [ -z "${PG_DATA:-}" ] || pg -c "SELECT pg_drop_replication_slot(slot_name)
    FROM pg_replication_slots WHERE slot_name = 'bt_recv'" >/dev/null 2>&1
  ch_stop
  pg_stop
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

pg() { PGPASSWORD="$CLICKPIPE_PG_PASSWORD" psql "${PSQL_ARGS[@]}" "$@"; }
ch() {
  curl -sS --fail-with-body -H "X-ClickHouse-User: $CLICKPIPE_CH_USER" \
    -H "X-ClickHouse-Key: $CLICKPIPE_CH_PASSWORD" --data-binary "$1" \
    "http://$CLICKPIPE_CH_HOST:$CLICKPIPE_CH_PORT/"
}
now() { echo "${EPOCHREALTIME/,/.}"; }  # the radix follows the locale
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
per_sec() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }
lsn_num() { echo $(( (16#${1%/*} << 32) | 16#${1#*/} )); }
pipe_status() {
  "$CLICKPIPE" status --store "$STORE" --json 2>/dev/null | jq -c --arg id "$PIPE_ID" '.[] | select(.id == $id)'
}
rss_kib() {
  local k v _
  while read -r k v _; do [ "$k" = "$1:" ] && { echo "$v"; return 0; }; done <"/proc/$CP_PID/status"
  return 1
}
# Peak sampled RSS (MiB) between two times, and the RSS at the first of them.
rss_peak_mib() {
  awk -v a="$1" -v b="$2" '$1 >= a && $1 <= b && $2 > m { m = $2 } END { printf "%.0f", m / 1024 }' "$RSS_LOG"
}
rss_at_mib() { awk -v a="$1" '$1 <= a { v = $2 } END { printf "%.0f", v / 1024 }' "$RSS_LOG"; }

# wait_until WHAT COMMAND...: polls the command every 0.1 s until it succeeds; fails after
# $TIMEOUT s or when clickpipe exits. Prints progress every 10 s.
wait_until() {
  local what=$1 start last s
  shift
  start=$(now)
  last=$start
  until "$@"; do
    if ! kill -0 "$CP_PID" 2>/dev/null; then
      echo "error: clickpipe exited while waiting for $what" >&2
      return 1
    fi
    s=$(now)
    if awk -v a="$start" -v b="$s" -v t="$TIMEOUT" 'BEGIN { exit !(b - a > t) }'; then
      echo "error: $what not reached within $TIMEOUT s; status: $(pipe_status)" >&2
      return 1
    fi
    if awk -v a="$last" -v b="$s" 'BEGIN { exit !(b - a >= 10) }'; then
      echo "    ... $(secs "$start" "$s") s: $(pipe_status |
        jq -r '"\(.state), confirmed \(.confirmed), last_error \(.last_error)"')," \
        "RSS $(($(rss_kib VmRSS) / 1024)) MiB"
      last=$s
    fi
    sleep 0.1
  done
}
is_running() { [ "$(pipe_status | jq -r .state)" = Running ]; }
is_paused() { [ "$(pipe_status | jq -r .state)" = Paused ]; }
# The stop condition of both clocks: the server shows SLOT confirmed up to LSN_NUMBER.
slot_confirmed_at_least() {  # SLOT LSN_NUMBER
  local c
  c=$(pg -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$1'")
  [ -n "$c" ] && [ "$(lsn_num "$c")" -ge "$2" ]
}
# As slot_confirmed_at_least, but ends the script when the baseline's process ended short of it.
recv_confirmed_at_least() {  # LSN_NUMBER
  slot_confirmed_at_least bt_recv "$1" && return 0
  kill -0 "$RECV_PID" 2>/dev/null && return 1
  sleep 1  # its last feedback may arrive just after it exits
  slot_confirmed_at_least bt_recv "$1" && return 0
  echo "error: pg_recvlogical ended with slot bt_recv short of the commit" >&2
  exit 1
}

pg_start
ch_start
PSQL_ARGS=(-X -q -At -v ON_ERROR_STOP=1 -h "$CLICKPIPE_PG_HOST" -p "$CLICKPIPE_PG_PORT"
  -U "$CLICKPIPE_PG_USER" -d "$CLICKPIPE_PG_DATABASE")
echo "==> PostgreSQL settings: $(pg -c "SELECT string_agg(n || '=' || current_setting(n), ', ')
  FROM unnest(ARRAY['fsync', 'synchronous_commit', 'full_page_writes', 'wal_level',
    'shared_buffers', 'max_wal_size', 'logical_decoding_work_mem', 'autovacuum']) AS n")"

echo "==> PostgreSQL: bt_update with $N_UPDATE rows, bt_insert empty"
pg <<SQL
CREATE TABLE bt_update (id bigint PRIMARY KEY, v bigint NOT NULL, note text);
CREATE TABLE bt_insert (id bigint PRIMARY KEY, payload text NOT NULL);
-- Autovacuum would write WAL and take a core in the middle of the measurement.
ALTER TABLE bt_update SET (autovacuum_enabled = false);
ALTER TABLE bt_insert SET (autovacuum_enabled = false);
INSERT INTO bt_update SELECT g, g, 'row ' || g FROM generate_series(1, $N_UPDATE) g;
VACUUM ANALYZE bt_update;
SQL

mkdir -p "$STORE"
# sync_interval 200 ms: once a transaction is applied, the idle pull that moves the confirmed
# LSN past WAL written after the commit (if any) comes within 200 ms, not the default 60 s.
cat >"$WORK/pipe.json" <<JSON
{
  "id": "$PIPE_ID",
  "mode": "initial_load_and_cdc",
  "store": "$STORE",
  "tables": ["public.bt_update", "public.bt_insert"],
  "source": {"host": "$CLICKPIPE_PG_HOST", "port": $CLICKPIPE_PG_PORT, "dbname": "$CLICKPIPE_PG_DATABASE",
             "user": "$CLICKPIPE_PG_USER", "password_env": "CLICKPIPE_PG_PASSWORD"},
  "destination": {"url": "http://$CLICKPIPE_CH_HOST:$CLICKPIPE_CH_PORT", "user": "$CLICKPIPE_CH_USER",
                  "password_env": "CLICKPIPE_CH_PASSWORD"},
  "settings": {"sync_interval_ms": 200}
}
JSON

echo "==> clickpipe run (initial load of bt_update, then CDC); log in $PIPE_LOG"
load_start=$(now)
"$CLICKPIPE" run --config "$WORK/pipe.json" >"$PIPE_LOG" 2>&1 &
CP_PID=$!
# RSS every 0.2 s for the whole run: the per-transaction peaks are read from it afterwards.
(
  while [ -r "/proc/$CP_PID/status" ]; do
    echo "$(now) $(rss_kib VmRSS || echo 0)"
    sleep 0.2
  done
) >"$RSS_LOG" 2>/dev/null &
SAMPLER_PID=$!
wait_until "state Running" is_running
load_end=$(now)
echo "    Running after $(secs "$load_start" "$load_end") s (initial load of $N_UPDATE rows included)"

# The baseline's slot, created before the transactions so that it decodes the same changes.
pg -c "SELECT pg_create_logical_replication_slot('bt_recv', 'pgoutput')" >/dev/null
SLOT="clickpipe_$PIPE_ID"  # slot_name() in src/pg_to_clickhouse/executors.cpp
conninfo="host=$CLICKPIPE_PG_HOST port=$CLICKPIPE_PG_PORT dbname=$CLICKPIPE_PG_DATABASE"
# The session settings clickpipe pins (postgres::pinned_options()), so that the walsender prints
# values for pg_recvlogical as it does for the pipe.
PINNED_OPTIONS="-c TimeZone=UTC -c DateStyle=ISO,MDY -c IntervalStyle=postgres -c bytea_output=hex -c extra_float_digits=3 -c lc_monetary=C"

# run_txn SQL: runs SQL as one transaction; sets TXN_START, TXN_COMMIT (times), TXN_LSN.
# The LSN is the WAL insert position right after COMMIT in the same session: the end of the
# commit record (pg_current_wal_lsn(), the write position, can lag behind it with
# synchronous_commit = off, and the pipe may confirm such a position before the commit arrives).
run_txn() {
  local out
  out=$(pg <<SQL
SELECT extract(epoch FROM clock_timestamp());
BEGIN;
$1;
COMMIT;
SELECT pg_current_wal_insert_lsn() || ' ' || extract(epoch FROM clock_timestamp());
SQL
)
  TXN_START=$(sed -n 1p <<<"$out")
  read -r TXN_LSN TXN_COMMIT <<<"$(sed -n 2p <<<"$out")"
  echo "    committed at LSN $TXN_LSN after $(secs "$TXN_START" "$TXN_COMMIT") s"
}

# run_pipe NAME: resumes the pipe and waits for its slot; sets <NAME>_PIPE_S and the RSS figures.
run_pipe() {
  local name=$1 start reached
  start=$(now)
  "$CLICKPIPE" resume --store "$STORE" --id "$PIPE_ID" >/dev/null
  wait_until "slot $SLOT confirmed to $TXN_LSN" slot_confirmed_at_least "$SLOT" "$(lsn_num "$TXN_LSN")"
  reached=$(now)
  printf -v "${name}_PIPE_S" %s "$(secs "$start" "$reached")"
  printf -v "${name}_RSS_BEFORE" %s "$(rss_at_mib "$start")"
  printf -v "${name}_RSS_PEAK" %s "$(rss_peak_mib "$start" "$reached")"
  echo "    pipe: $(secs "$start" "$reached") s from resume to its slot confirmed"
}

# run_recv NAME: pg_recvlogical up to the commit; sets <NAME>_RECV_S.
run_recv() {
  local name=$1 start reached rc=0
  start=$(now)
  PGPASSWORD="$CLICKPIPE_PG_PASSWORD" PGOPTIONS="$PINNED_OPTIONS" "$PG_BIN/pg_recvlogical" -d "$conninfo user=$CLICKPIPE_PG_USER" \
    --slot bt_recv --start -o proto_version=1 -o "publication_names=$PUBLICATION" \
    --endpos "$TXN_LSN" -f /dev/null &
  RECV_PID=$!
  wait_until "slot bt_recv confirmed to $TXN_LSN" recv_confirmed_at_least "$(lsn_num "$TXN_LSN")"
  reached=$(now)
  wait "$RECV_PID" || rc=$?
  RECV_PID=
  [ "$rc" -eq 0 ] || { echo "error: pg_recvlogical exited with $rc" >&2; exit 1; }
  printf -v "${name}_RECV_S" %s "$(secs "$start" "$reached")"
  echo "    pg_recvlogical: $(secs "$start" "$reached") s from its start to its slot confirmed"
}

# measure NAME ROWS ORDER SQL: pauses the pipe, commits SQL, then runs both consumers in ORDER
# ("recv pipe" or "pipe recv"); sets <NAME>_* figures.
measure() {
  local name=$1 rows=$2 order=$3 who
  echo "==> transaction $name: $rows rows, committed with the pipe paused; then $order"
  "$CLICKPIPE" pause --store "$STORE" --id "$PIPE_ID" >/dev/null
  wait_until "state Paused" is_paused
  run_txn "$4"
  printf -v "${name}_TXN_S" %s "$(secs "$TXN_START" "$TXN_COMMIT")"
  for who in $order; do "run_$who" "$name"; done
}

measure A "$N_UPDATE" "recv pipe" "UPDATE bt_update SET v = v + 1"
# 1000 hex digits per row that do not compress: the row's own sha512, then 436 bytes of a 1 MiB
# random block from a row-dependent offset (32 md5s per row took twice as long to insert).
measure B "$N_INSERT" "pipe recv" "INSERT INTO bt_insert
  SELECT g, encode(sha512(g::text::bytea)
                   || substr(r.bytes, ((g::bigint * 7919) % 1000000)::int + 1, 436), 'hex')
  FROM (SELECT string_agg(sha512(i::text::bytea), ''::bytea) AS bytes
        FROM generate_series(1, 16384) i) r, generate_series(1, $N_INSERT) g"

VMHWM_MIB=$(( $(rss_kib VmHWM) / 1024 ))

echo "==> ClickHouse FINAL vs PostgreSQL"
ch_count=$(ch "SELECT count() FROM bt_insert FINAL WHERE _is_deleted = 0")
ch_sum=$(ch "SELECT sum(v) FROM bt_update FINAL WHERE _is_deleted = 0")
pg_sum=$(pg -c "SELECT sum(v) FROM bt_update")
echo "    bt_insert rows: ClickHouse $ch_count, expected $N_INSERT"
echo "    bt_update sum(v): ClickHouse $ch_sum, PostgreSQL $pg_sum"
ok=1
[ "$ch_count" = "$N_INSERT" ] || ok=0
[ "$ch_sum" = "$pg_sum" ] || ok=0

ratio() { awk -v p="$1" -v r="$2" 'BEGIN { printf "%.2f", (p > 0 ? r / p : 0) }'; }  # rows/s ratio
verdict() { [ "$1" -le "$TARGET_MIB" ] && echo "within $TARGET_MIB MiB" || echo "OVER $TARGET_MIB MiB"; }
echo
echo "==> big transactions: A = UPDATE of $N_UPDATE rows, B = INSERT of $N_INSERT rows of 1000 bytes"
printf '%-2s %9s %10s %22s %22s %6s  %s\n' "" rows "txn" "pipe: resume->confirmed" \
  "pg_recvlogical" "ratio" "pipe RSS, resume -> peak until confirmed"
for t in A B; do
  if [ "$t" = A ]; then rows=$N_UPDATE; else rows=$N_INSERT; fi
  txn=${t}_TXN_S pipe=${t}_PIPE_S recv=${t}_RECV_S before=${t}_RSS_BEFORE peak=${t}_RSS_PEAK
  printf '%-2s %9s %8s s %8s s %9s/s %8s s %9s/s %6s  %5s -> %5s MiB (%s)\n' "$t" "$rows" "${!txn}" \
    "${!pipe}" "$(per_sec "$rows" "${!pipe}")" "${!recv}" "$(per_sec "$rows" "${!recv}")" \
    "$(ratio "${!pipe}" "${!recv}")" "${!before}" "${!peak}" "$(verdict "${!peak}")"
done
echo "pipe VmHWM over the whole run, initial load included: $VMHWM_MIB MiB ($(verdict "$VMHWM_MIB"))"
echo "ratio: the pipe's rows/s over pg_recvlogical's (above 1: the pipe is faster). Both read the"
echo "committed transaction from the WAL; each clock runs from the consumer's start until"
echo "pg_replication_slots shows its slot confirmed up to the WAL insert position after the commit"
echo "(polled every 0.1 s); the pipe's includes the control channel's pickup (up to 0.2 s)."
echo "A ran pg_recvlogical first, B the pipe first. RSS sampled every 0.2 s."
if [ "$ok" = 1 ]; then
  echo "ClickHouse matches PostgreSQL"
else
  echo "error: ClickHouse does not match PostgreSQL" >&2
  exit 1
fi
