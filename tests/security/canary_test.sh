#!/usr/bin/env bash
# A canary secret driven through every error path of the clickpipe CLI: a wrong source password, an
# unreachable or unresolvable source, a wrong destination password, a destination whose errors
# echo the query and row data (ClickHouse 18.16's and 26.x's formats, from fake_clickhouse.py), a
# certificate from the wrong CA, a destination URL carrying user info, and passwords written into
# the config file. After each, the canary must be in no output (check-config, run, status) and in
# no file under the store; and the output must show the failure the case is about, so that the
# test cannot pass by not getting there.
# Usage: canary_test.sh PATH_TO_CLICKPIPE (the servers and variables of ./scripts/test.sh)
set -u
B="$1"
HERE=$(cd "$(dirname "$0")" && pwd)
fail() {
  echo "FAIL: $*"
  exit 1
}
for v in CLICKPIPE_PG_HOST CLICKPIPE_PG_PORT CLICKPIPE_PG_DATABASE CLICKPIPE_PG_USER \
  CLICKPIPE_PG_PASSWORD CLICKPIPE_CH_HOST CLICKPIPE_CH_PORT CLICKPIPE_CH_USER \
  CLICKPIPE_CH_PASSWORD CLICKPIPE_TLS_OTHER_CA; do
  [ -n "${!v:-}" ] || fail "$v is not set: run the tests through ./scripts/test.sh"
done
[ -x "$B" ] || fail "no clickpipe binary at '$B'"
[ -r "$CLICKPIPE_TLS_OTHER_CA" ] || fail "CLICKPIPE_TLS_OTHER_CA: cannot read $CLICKPIPE_TLS_OTHER_CA"
for tool in psql python3; do command -v $tool > /dev/null || fail "$tool is not installed"; done

# The canary: fresh each run. Leaks are searched by its random part, so that an echo cut short
# still counts once 12 characters of it are out.
HEX=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
CANARY="CANARY-$HEX"
export CLICKPIPE_CANARY_PASSWORD="$CANARY"
WORK=$(mktemp -d)
RUN=   # the pid of the clickpipe run in progress, for the trap
FAKE=  # the fake ClickHouse's
IDS="canary$$"
T="canary_src_$$"
pg() {
  PGPASSWORD=$CLICKPIPE_PG_PASSWORD psql -X -q -At -v ON_ERROR_STOP=1 -h "$CLICKPIPE_PG_HOST" \
    -p "$CLICKPIPE_PG_PORT" -U "$CLICKPIPE_PG_USER" -d "$CLICKPIPE_PG_DATABASE" -c "$1"
}
cleanup() {
  [ -z "$RUN" ] || kill -9 "$RUN" 2> /dev/null
  [ -z "$FAKE" ] || kill -9 "$FAKE" 2> /dev/null
  # Whatever a case got far enough to create: the slot, the publication, the source table.
  pg "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
        WHERE slot_name LIKE 'clickpipe\\_${IDS}\\_%'" > /dev/null 2>&1
  for p in $(pg "SELECT pubname FROM pg_publication WHERE pubname LIKE 'clickpipe\\_${IDS}\\_%'" 2> /dev/null); do
    pg "DROP PUBLICATION IF EXISTS $p" > /dev/null 2>&1
  done
  pg "DROP TABLE IF EXISTS $T" > /dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

# The source table holds the canary as row data: a destination echoing rows would echo it.
pg "CREATE TABLE $T (id int8 primary key, v text);
    INSERT INTO $T SELECT g, '$CANARY row ' || g FROM generate_series(1, 100) g" \
  || fail "cannot create the source table"

# Blocks of the configs. The real servers with the real passwords, from the environment:
SOURCE_OK="{\"host\": \"$CLICKPIPE_PG_HOST\", \"port\": $CLICKPIPE_PG_PORT, \"dbname\": \"$CLICKPIPE_PG_DATABASE\",
  \"user\": \"$CLICKPIPE_PG_USER\", \"password_env\": \"CLICKPIPE_PG_PASSWORD\"}"
CH_URL="http://$CLICKPIPE_CH_HOST:$CLICKPIPE_CH_PORT"  # the HTTP server: chdb:// has no password
DEST_OK="{\"url\": \"$CH_URL\", \"user\": \"$CLICKPIPE_CH_USER\", \"password_env\": \"CLICKPIPE_CH_PASSWORD\"}"
# source_with HOST PORT [EXTRA]: the source database with the canary as its password.
source_with() {
  echo "{\"host\": \"$1\", \"port\": $2, \"dbname\": \"$CLICKPIPE_PG_DATABASE\",
    \"user\": \"$CLICKPIPE_PG_USER\", \"password_env\": \"CLICKPIPE_CANARY_PASSWORD\"${3:+, $3}}"
}

# config CASE SOURCE DESTINATION: the config of one case, its store $WORK/CASE.store. Provisioning
# gives up after a second attempt, so every error also reaches last_error in the store.
config() {
  cat > "$WORK/$1.json" << J
{"id": "${IDS}_$1", "store": "$WORK/$1.store", "tables": ["public.$T"],
 "source": $2,
 "destination": $3,
 "settings": {"sync_interval_ms": 200,
              "provisioning_retry": {"max_attempts": 2, "initial_backoff_ms": 200, "max_backoff_ms": 200}}}
J
}

# no_canary CASE FILE...: fails naming each file the canary reached, in its content or its name.
no_canary() {
  local c=$1 leaked
  shift
  leaked=$( (grep -rlF -- "${HEX:0:12}" "$@" 2> /dev/null; find "$@" -name "*${HEX:0:12}*" 2> /dev/null) | sort -u)
  leaked=${leaked//$WORK\//}
  [ -z "$leaked" ] || fail "$c: the canary leaked into: ${leaked//$'\n'/, }"
}

# stop NAME SIGNAL: the run in progress must stop gracefully (exit 0) within 20 s of SIGNAL.
stop() {
  kill -"$2" "$RUN" 2> /dev/null
  for _ in $(seq 1 100); do
    kill -0 "$RUN" 2> /dev/null || break
    sleep 0.2
  done
  if kill -0 "$RUN" 2> /dev/null; then
    kill -9 "$RUN"
    fail "$1: run did not stop within 20 s of SIG$2"
  fi
  wait "$RUN"
  local rc=$?
  RUN=
  [ $rc -eq 0 ] || fail "$1: run exited $rc on SIG$2, want 0"
}

# drive CASE WANT [SIGNAL]: check-config accepts the config; run fails on it, as WANT (an extended
# regular expression, case-insensitive) says it must, within 15 s; then SIGNAL (TERM) stops it, and
# status. The canary must be nowhere.
drive() {
  local c=$1 want=$2 sig=${3:-TERM} w="$WORK/$1"
  "$B" check-config --config "$w.json" > "$w.check.out" 2> "$w.check.err" \
    || fail "$c: check-config refused the config: $(cat "$w.check.err")"
  "$B" run --config "$w.json" > "$w.run.out" 2> "$w.run.err" &
  RUN=$!
  # Until the pipe gives up (Failed) or the process ends; a pipe still retrying after 15 s is
  # stopped too, and what it showed so far is checked.
  for _ in $(seq 1 75); do
    kill -0 "$RUN" 2> /dev/null || break
    grep -q -- "-> Failed" "$w.run.out" && break
    sleep 0.2
  done
  kill -0 "$RUN" 2> /dev/null || fail "$c: run ended by itself: $(cat "$w.run.err")"
  stop "$c" "$sig"
  [ -d "$w.store" ] || fail "$c: run made no store"
  "$B" status --store "$w.store" > "$w.status.out" 2> "$w.status.err" \
    || fail "$c: status failed: $(cat "$w.status.err")"
  python3 - "$w.status.out" "${IDS}_$c" << 'P' || fail "$c: status is not JSON listing the pipe: $(cat "$w.status.out")"
import json, sys
pipes = json.load(open(sys.argv[1]))
sys.exit(0 if any(p.get("id") == sys.argv[2] for p in pipes) else 1)
P
  no_canary "$c" "$w".*.out "$w".*.err "$w.store"
  cat "$w.run.out" "$w.run.err" "$w.status.out" | grep -Eqi -- "$want" \
    || fail "$c: the output does not show the failure /$want/; run printed: $(cat "$w.run.out" "$w.run.err")"
  echo "ok: $c"
}

# 1. The source refuses the password.
config pg_password "$(source_with "$CLICKPIPE_PG_HOST" "$CLICKPIPE_PG_PORT")" "$DEST_OK"
drive pg_password "password authentication failed"

# 2. Nothing listens at the source's address; 3. its host name does not resolve.
CLOSED=
for port in $(seq 47100 47300); do
  (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null || {
    CLOSED=$port
    break
  }
done
[ -n "$CLOSED" ] || fail "no closed port on 127.0.0.1 between 47100 and 47300"
config pg_closed_port "$(source_with 127.0.0.1 "$CLOSED")" "$DEST_OK"
drive pg_closed_port "connection refused"
config pg_no_host "$(source_with "canary-$$.invalid" "$CLICKPIPE_PG_PORT")" "$DEST_OK"
drive pg_no_host "translate host name|resolve|name or service not known|name resolution"

# 4. ClickHouse refuses the password (18.16: 401 with code 193; newer servers: 516).
config ch_password "$SOURCE_OK" \
  "{\"url\": \"$CH_URL\", \"user\": \"$CLICKPIPE_CH_USER\", \"password_env\": \"CLICKPIPE_CANARY_PASSWORD\"}"
drive ch_password "401|code:? ?(193|516)|authenticat|wrong password"

# 5-7. A ClickHouse that quotes the canary as the row it could not parse and echoes the query: as
# 18.16 and 26.x word a parse error (code 27, the pipe fails), and a memory limit (code 241,
# transient: the pipe retries and shows the error while it waits).
for fake in "18.16 27 code:? ?27\b|CANNOT_PARSE_INPUT|cannot parse input" \
  "26 27 code:? ?27\b|CANNOT_PARSE_INPUT|cannot parse input" \
  "26 241 retrying provisioning.*(code:? ?241\b|MEMORY_LIMIT_EXCEEDED|memory limit)"; do
  read -r version code want <<< "$fake"
  c="ch_echo_${version%%.*}_$code"
  python3 "$HERE/fake_clickhouse.py" 0 "$CANARY" "$version" "$code" > "$WORK/fake.out" 2> "$WORK/fake.err" &
  FAKE=$!
  for _ in $(seq 1 50); do
    grep -q "^listening on" "$WORK/fake.out" && break
    sleep 0.1
  done
  # "listening on PORT pid PID": the server's own pid, should an interpreter wrapper sit at $!.
  read -r _ _ FAKE_PORT _ pid < "$WORK/fake.out" \
    || fail "$c: the fake ClickHouse did not start: $(cat "$WORK/fake.err")"
  FAKE=$pid
  config "$c" "$SOURCE_OK" "{\"url\": \"http://127.0.0.1:$FAKE_PORT\", \"user\": \"default\"}"
  drive "$c" "$want"
  kill -TERM "$FAKE"
  FAKE=
done

# 8. TLS: a certificate that the configured CA did not sign.
config tls_wrong_ca \
  "$(source_with localhost "$CLICKPIPE_PG_PORT" "\"sslmode\": \"verify-full\", \"ca_file\": \"$CLICKPIPE_TLS_OTHER_CA\"")" \
  "$DEST_OK"
drive tls_wrong_ca "certificate"

# 9. Passwords written into the config file (allowed), both servers refusing them; Ctrl-C stops it.
config inline "{\"host\": \"$CLICKPIPE_PG_HOST\", \"port\": $CLICKPIPE_PG_PORT,
  \"dbname\": \"$CLICKPIPE_PG_DATABASE\", \"user\": \"$CLICKPIPE_PG_USER\", \"password\": \"$CANARY\"}" \
  "{\"url\": \"$CH_URL\", \"user\": \"$CLICKPIPE_CH_USER\", \"password\": \"$CANARY\"}"
drive inline "password authentication failed" INT

# 10. A destination URL carrying user info: refused as a bad config, naming the field but not the
# secret, before anything is created.
c=url_user_info
w="$WORK/$c"
config "$c" "$SOURCE_OK" "{\"url\": \"http://default:$CANARY@127.0.0.1:$CLICKPIPE_CH_PORT\"}"
"$B" check-config --config "$w.json" > "$w.check.out" 2> "$w.check.err"
rc=$?
[ $rc -eq 2 ] || fail "$c: check-config exited $rc, want 2 (a bad config): $(cat "$w.check.out")"
grep -q "destination.url" "$w.check.err" || fail "$c: check-config does not name destination.url: $(cat "$w.check.err")"
timeout -s KILL 10 "$B" run --config "$w.json" > "$w.run.out" 2> "$w.run.err"
rc=$?
[ $rc -eq 2 ] || fail "$c: run exited $rc, want 2 (a bad config)"
grep -q "destination.url" "$w.run.err" || fail "$c: run does not name destination.url: $(cat "$w.run.err")"
[ ! -e "$w.store" ] || fail "$c: run made a store for a refused config"
no_canary "$c" "$w".*.out "$w".*.err
echo "ok: $c"

echo "1 passed, 0 failed"
