#!/usr/bin/env bash
# A private store and a control loop hostile files cannot stop (issue 14), through the real CLI
# against the servers ./scripts/test.sh starts: `clickpipe run`, started under umask 000, makes
# its store and control/ 0700 and its files 0600; planted in control/ while it runs, a FIFO, a
# directory, a symlink to /etc/passwd, a 10 MB file and commands with wrong types or bad JSON
# neither stop it nor act on anything: the FIFO and directory are left alone, the symlink and the
# big file removed unread, the bad commands answered `invalid` naming the field, each problem
# reported once. Then `clickpipe pause` is still accepted, /etc/passwd is untouched, the live
# status files (issue 15) are as private as the store (status/ 0700, its files 0600), the process
# stops cleanly, and a store made world-writable is refused on the next run, naming the fix.
# Usage: control_test.sh PATH_TO_CLICKPIPE
set -u
B="$1"
fail() { echo "FAIL: $*"; [ -f "${WORK:-}/run.log" ] && sed 's/^/  run.log: /' "$WORK/run.log"; exit 1; }
for v in CLICKPIPE_PG_HOST CLICKPIPE_PG_PORT CLICKPIPE_PG_DATABASE CLICKPIPE_PG_USER \
         CLICKPIPE_PG_PASSWORD CLICKPIPE_CH_HOST CLICKPIPE_CH_PORT CLICKPIPE_CH_USER CLICKPIPE_CH_PASSWORD; do
  [ -n "${!v:-}" ] || fail "$v is not set: run the tests through ./scripts/test.sh"
done
WORK=$(mktemp -d)
P=  # set by the run; the trap needs it defined under set -u
T="sec_ctl_$$"
psql_() {
  PGPASSWORD=$CLICKPIPE_PG_PASSWORD psql -q -h "$CLICKPIPE_PG_HOST" -p "$CLICKPIPE_PG_PORT" \
    -U "$CLICKPIPE_PG_USER" -d "$CLICKPIPE_PG_DATABASE" "$@"
}
trap 'kill -9 $P 2>/dev/null; psql_ -c "DROP TABLE IF EXISTS $T" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
psql_ -c "CREATE TABLE $T (id int8 primary key, v text); INSERT INTO $T SELECT g, 'v' FROM generate_series(1, 1000) g" \
  || fail "cannot create the source table"
ID="sec$$"
S="$WORK/store"
C="$S/control"
cat > "$WORK/pipe.json" <<J
{"id": "$ID", "store": "$S", "tables": ["public.$T"],
 "source": {"host": "$CLICKPIPE_PG_HOST", "port": "$CLICKPIPE_PG_PORT", "dbname": "$CLICKPIPE_PG_DATABASE",
            "user": "$CLICKPIPE_PG_USER", "password_env": "CLICKPIPE_PG_PASSWORD"},
 "destination": {"url": "${CLICKPIPE_CH_URL:-http://$CLICKPIPE_CH_HOST:$CLICKPIPE_CH_PORT}", "user": "$CLICKPIPE_CH_USER",
                 "password_env": "CLICKPIPE_CH_PASSWORD"},
 "settings": {"sync_interval_ms": 200}}
J
mode() { stat -c %a "$1"; }
# pipe_state: the pipe's state as `clickpipe status --json` shows it.
pipe_state() {
  "$B" status --store "$S" --json 2>/dev/null | python3 -c '
import json, sys
doc = json.load(sys.stdin)
doc = doc["pipes"] if isinstance(doc, dict) and "pipes" in doc else doc
doc = [doc] if isinstance(doc, dict) else doc
print(next((p.get("state", "") for p in doc if p.get("id") == sys.argv[1]), ""))' "$ID"
}
PASSWD_BEFORE=$(sha256sum /etc/passwd)

# umask 000: whatever the store is, it is not private because of the umask.
# The log goes to stderr; stdout stays empty.
(umask 000; exec "$B" run --config "$WORK/pipe.json") > "$WORK/run.out" 2> "$WORK/run.log" &
P=$!
for _ in $(seq 1 150); do grep -q -- "-\[snapshot_done\]-> Running" "$WORK/run.log" && break; sleep 0.2; done
grep -q -- "-\[snapshot_done\]-> Running" "$WORK/run.log" || fail "never Running"

# Planted while it runs. Whole files are renamed in, so the loop never sees one half written.
mkdir "$WORK/staging"
mkfifo "$C/a.cmd"
mkdir "$C/b.cmd"
ln -s /etc/passwd "$C/c.cmd"
head -c 10000000 /dev/zero | tr '\0' ' ' > "$WORK/staging/d.cmd"
printf '{"id": 3}' > "$WORK/staging/e.cmd"
printf '{"id": "%s", "command": "pause", "tables": 5}' "$ID" > "$WORK/staging/f.cmd"
printf '{"id": "%s", "command": "add-table", "tables": 5}' "$ID" > "$WORK/staging/i.cmd"
printf '{"id": "%s", "command": ' "$ID" > "$WORK/staging/g.cmd"
printf '[1, 2]' > "$WORK/staging/h.cmd"
mv "$WORK/staging"/*.cmd "$C/"
sleep 2  # ten passes of the loop

kill -0 $P 2>/dev/null || fail "the process died"
# Answered, each naming what is wrong, and none carried out (f.cmd asked for a pause, with a field
# a pause does not take).
for r in e f g h i; do
  [ -f "$C/$r.result" ] || fail "$r.cmd was not answered"
  grep -q '"status":"invalid"' "$C/$r.result" || fail "$r.cmd: $(cat "$C/$r.result")"
  [ "$(mode "$C/$r.result")" = 600 ] || fail "$r.result is $(mode "$C/$r.result"), not 600"
  [ -e "$C/$r.cmd" ] && fail "$r.cmd was answered but not removed"
done
expect_answer() { grep -q -- "$2" "$C/$1.result" || fail "$1.cmd: want '$2': $(cat "$C/$1.result")"; }
expect_answer e 'id: expected a string'
expect_answer f 'tables: not a field of this command'
expect_answer i 'tables: expected an array'
expect_answer g 'not valid JSON'
expect_answer h 'expected a JSON object'
# Not read, not answered: the FIFO and the directory left alone, the symlink and the big file gone.
for x in a b c d; do [ -e "$C/$x.result" ] && fail "$x.cmd was answered: $(cat "$C/$x.result")"; done
[ -p "$C/a.cmd" ] || fail "the FIFO a.cmd was removed or replaced"
[ -d "$C/b.cmd" ] || fail "the directory b.cmd was removed"
[ -L "$C/c.cmd" ] && fail "the symlink c.cmd is still there"
[ -e "$C/d.cmd" ] && fail "the 10 MB d.cmd is still there"
[ "$(sha256sum /etc/passwd)" = "$PASSWD_BEFORE" ] || fail "/etc/passwd changed"
grep -q "root:" "$WORK/run.log" "$WORK/run.out" && fail "the target of c.cmd was read into the output"
# Each reported once, though seen on every pass.
for x in "a.cmd is a FIFO" "b.cmd is a directory" "c.cmd is a symlink" "d.cmd is larger than"; do
  n=$(grep -c -- "$x" "$WORK/run.log")
  [ "$n" = 1 ] || fail "'$x' reported $n times, want once"
done

out=$("$B" pause --store "$S" --id "$ID" 2>&1) || fail "pause not accepted after the planted files: $out"
grep -q accepted <<< "$out" || fail "pause not accepted after the planted files: $out"
for _ in $(seq 1 50); do [ "$(pipe_state)" = Paused ] && break; sleep 0.2; done
[ "$(pipe_state)" = Paused ] || fail "status does not show Paused"
kill -0 $P 2>/dev/null || fail "the process died after the pause"

# The store is private, though made under umask 000; so is the live status the process publishes
# (written at least every 2 s).
for _ in $(seq 1 25); do [ -f "$S/status/$ID.json" ] && break; sleep 0.2; done
[ -f "$S/status/$ID.json" ] || fail "no live status file $S/status/$ID.json"
for d in "$S" "$C" "$S/status"; do [ "$(mode "$d")" = 700 ] || fail "$d is $(mode "$d"), not 700"; done
for f in LOCK GENERATION "$ID.json" "status/$ID.json"; do
  [ "$(mode "$S/$f")" = 600 ] || fail "$S/$f is $(mode "$S/$f"), not 600"
done

kill -TERM $P
wait $P || fail "run did not stop cleanly on SIGTERM"
P=
[ -s "$WORK/run.out" ] && fail "run wrote to stdout: $(head -c 300 "$WORK/run.out")"

# A store someone else may write is refused, naming the path and the fix.
chmod 777 "$S"
timeout 20 "$B" run --config "$WORK/pipe.json" > "$WORK/run2.log" 2>&1
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a world-writable store was accepted (exit $rc)"
grep -q "chmod 700 $S" "$WORK/run2.log" || fail "the refusal does not name the fix: $(cat "$WORK/run2.log")"
chmod 700 "$S"
echo "1 passed, 0 failed"
