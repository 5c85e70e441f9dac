#!/usr/bin/env bash
# A canary secret driven through every error path of the clickpipe CLI: a wrong source password, an
# unreachable or unresolvable source, a wrong destination password, a destination whose errors
# echo the query and row data (ClickHouse 18.16's and 26.x's formats, from fake_clickhouse.py), a
# certificate from the wrong CA, a destination URL carrying user info, and passwords written into
# the config file. Each run logs at trace level (JSON lines or text, by case) and serves the HTTP
# API with the canary as its token. After each, the canary must be in no output (check-config,
# run's log, status, the API's answers and metrics) and in no file under the store; and the output
# must show the failure the case is about, so that the test cannot pass by not getting there.
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
for tool in psql python3 curl; do command -v $tool > /dev/null || fail "$tool is not installed"; done

# The canary: fresh each run. Leaks are searched by its random part, so that an echo cut short
# still counts once 12 characters of it are out.
HEX=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
CANARY="CANARY-$HEX"
export CLICKPIPE_CANARY_PASSWORD="$CANARY"
# The API's token is the canary too: it must not leak either.
export CLICKPIPE_API_TOKEN="$CANARY"
WORK=$(mktemp -d)
printf 'Authorization: Bearer %s\n' "$CANARY" > "$WORK/secret.auth"
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

# json_log CASE FILE: every line of FILE is a JSON object with time, level and msg.
json_log() {
  python3 - "$2" << 'P' || fail "$1: the log is not JSON lines: $(head -c 500 "$2")"
import json, sys
n = 0
for n, line in enumerate(open(sys.argv[1], encoding="utf-8", errors="replace"), 1):
    obj = json.loads(line)
    assert isinstance(obj, dict) and {"time", "level", "msg"} <= set(obj), f"line {n}"
sys.exit(0 if n else 1)
P
}

# log_event CASE FILE EVENT KEY REGEX...: a JSON log line of FILE has event EVENT and, for each
# KEY, a value matching REGEX (Python syntax).
log_event() {
  local c=$1 f=$2
  shift 2
  python3 - "$f" "$@" << 'P' || fail "$c: no $1 event with ${*:2} in the log: $(head -c 2000 "$f")"
import json, re, sys
path, event, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
for line in open(path, encoding="utf-8", errors="replace"):
    obj = json.loads(line)
    if obj.get("event") == event and all(
            re.search(pairs[i + 1], str(obj.get(pairs[i], ""))) for i in range(0, len(pairs), 2)):
        sys.exit(0)
sys.exit(1)
P
}

# api_answers CASE PORT: what the running process's HTTP API answers, kept as CASE.api_*.out for
# the canary search: the pipes, the pipe, the metrics (200 each), a POST without the token and one
# with a wrong one (401; the wrong token holds the canary's random part, so an answer or a log
# line repeating a presented token is caught), and a pause with the token.
api_answers() {
  local c=$1 base="http://127.0.0.1:$2" w="$WORK/$1" code what name path
  for what in "pipes /pipes" "pipe /pipes/${IDS}_$c" "metrics /metrics"; do
    read -r name path <<< "$what"
    code=$(curl -sS --max-time 10 -o "$w.api_$name.out" -w '%{http_code}' "$base$path" 2>> "$w.curl.err")
    [ "$code" = 200 ] || fail "$c: GET $path answered $code, want 200"
  done
  code=$(curl -sS --max-time 10 -o "$w.api_noauth.out" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' --data-binary '{"command": "pause"}' \
    "$base/pipes/${IDS}_$c/state" 2>> "$w.curl.err")
  [ "$code" = 401 ] || fail "$c: a POST without the token answered $code, want 401"
  code=$(curl -sS --max-time 10 -o "$w.api_wrong.out" -w '%{http_code}' -X POST \
    -H "Authorization: Bearer wrong-$HEX" -H 'Content-Type: application/json' \
    --data-binary '{"command": "pause"}' "$base/pipes/${IDS}_$c/state" 2>> "$w.curl.err")
  [ "$code" = 401 ] || fail "$c: a POST with a wrong token answered $code, want 401"
  curl -sS --max-time 10 -o "$w.api_pause.out" -X POST -H @"$WORK/secret.auth" \
    -H 'Content-Type: application/json' --data-binary '{"command": "pause"}' \
    "$base/pipes/${IDS}_$c/state" 2>> "$w.curl.err" || fail "$c: no answer to a pause through the API"
}

# drive CASE WANT [SIGNAL [FORMAT]]: check-config accepts the config; run (log level trace, log
# format FORMAT: json, the default, or text; the HTTP API on) fails on it, as WANT (an extended
# regular expression, case-insensitive) says it must, within 15 s; then the API is asked, SIGNAL
# (TERM) stops the run, and status (--json, and the table). The canary must be nowhere; stdout
# stays empty, the log is on stderr.
drive() {
  local c=$1 want=$2 sig=${3:-TERM} format=${4:-json} w="$WORK/$1" port
  "$B" check-config --config "$w.json" > "$w.check.out" 2> "$w.check.err" \
    || fail "$c: check-config refused the config: $(cat "$w.check.err")"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$B" run --config "$w.json" --log-level trace --log-format "$format" --listen "127.0.0.1:$port" \
    > "$w.run.out" 2> "$w.run.err" &
  RUN=$!
  # Until the pipe gives up (Failed) or the process ends; a pipe still retrying after 15 s is
  # stopped too, and what it showed so far is checked.
  for _ in $(seq 1 75); do
    kill -0 "$RUN" 2> /dev/null || break
    grep -Eq -- '-> Failed|"to": ?"Failed"' "$w.run.err" && break
    sleep 0.2
  done
  kill -0 "$RUN" 2> /dev/null || fail "$c: run ended by itself: $(cat "$w.run.err")"
  api_answers "$c" "$port"
  stop "$c" "$sig"
  [ -d "$w.store" ] || fail "$c: run made no store"
  [ -s "$w.run.out" ] && fail "$c: run wrote to stdout: $(head -c 300 "$w.run.out")"
  [ "$format" = json ] && json_log "$c" "$w.run.err"
  "$B" status --store "$w.store" --json > "$w.status.out" 2> "$w.status.err" \
    || fail "$c: status --json failed: $(cat "$w.status.err")"
  python3 - "$w.status.out" "${IDS}_$c" << 'P' || fail "$c: status --json does not list the pipe: $(cat "$w.status.out")"
import json, sys
pipes = json.load(open(sys.argv[1]))
pipes = pipes["pipes"] if isinstance(pipes, dict) and "pipes" in pipes else pipes
pipes = [pipes] if isinstance(pipes, dict) else pipes
sys.exit(0 if any(p.get("id") == sys.argv[2] for p in pipes) else 1)
P
  "$B" status --store "$w.store" > "$w.status_table.out" 2> "$w.status_table.err" \
    || fail "$c: status failed: $(cat "$w.status_table.err")"
  grep -q "${IDS}_$c" "$w.status_table.out" || fail "$c: status does not show the pipe: $(cat "$w.status_table.out")"
  no_canary "$c" "$w".*.out "$w".*.err "$w.store"
  cat "$w.run.out" "$w.run.err" "$w.status.out" | grep -Eqi -- "$want" \
    || fail "$c: the output does not show the failure /$want/; run printed: $(cat "$w.run.out" "$w.run.err")"
  echo "ok: $c"
}

# 1. The source refuses the password.
config pg_password "$(source_with "$CLICKPIPE_PG_HOST" "$CLICKPIPE_PG_PORT")" "$DEST_OK"
drive pg_password "password authentication failed" TERM text

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
drive ch_password "401|code:? ?(193|516)|authenticat|wrong password" TERM text

# 5-7. A ClickHouse that quotes the canary as the row it could not parse and echoes the query: as
# 18.16 and 26.x word a parse error (code 27, the pipe fails), and a memory limit (code 241,
# transient: the pipe retries, logs each retry with the error and shows it while it waits).
for fake in "18.16 27 code:? ?27\b|CANNOT_PARSE_INPUT|cannot parse input" \
  "26 27 code:? ?27\b|CANNOT_PARSE_INPUT|cannot parse input" \
  "26 241 code:? ?241\b|MEMORY_LIMIT_EXCEEDED|memory limit"; do
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
  [ "$code" = 241 ] && log_event "$c" "$WORK/$c.run.err" retry operation '^provisioning' error "(?i)$want"
  kill -TERM "$FAKE"
  FAKE=
done

# 8. TLS: a certificate that the configured CA did not sign.
config tls_wrong_ca \
  "$(source_with localhost "$CLICKPIPE_PG_PORT" "\"sslmode\": \"verify-full\", \"ca_file\": \"$CLICKPIPE_TLS_OTHER_CA\"")" \
  "$DEST_OK"
drive tls_wrong_ca "certificate" TERM text

# 9. Passwords written into the config file (allowed), both servers refusing them; Ctrl-C stops it.
config inline "{\"host\": \"$CLICKPIPE_PG_HOST\", \"port\": $CLICKPIPE_PG_PORT,
  \"dbname\": \"$CLICKPIPE_PG_DATABASE\", \"user\": \"$CLICKPIPE_PG_USER\", \"password\": \"$CANARY\"}" \
  "{\"url\": \"$CH_URL\", \"user\": \"$CLICKPIPE_CH_USER\", \"password\": \"$CANARY\"}"
drive inline "password authentication failed" INT text

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
