#!/usr/bin/env bash
# Captures a real pgoutput stream as the fuzz test's seed corpus: one message per line, in hex, in
# stream order (tests/data/pgoutput_corpus.hex). Against a running PostgreSQL (logical WAL, a
# user that may create slots, publications and replication origins), with the environment
# ./scripts/test.sh exports:
#   source /tmp/servers.env   # or any CLICKPIPE_PG_{HOST,PORT,DATABASE,USER,PASSWORD}
#   tests/postgres/capture_pgoutput_corpus.sh [OUT]
# It reads with the options the reference executors stream with (src/postgres/stream.cpp:
# proto_version 1, text values, a publication that publishes partitions through their root), and
# covers every message kind those options produce: Begin, Commit, Origin, Relation, Type, Insert,
# Update (no old row, old key, old row under REPLICA IDENTITY FULL), Delete (key, full row),
# Truncate (several relations, options), NULLs, unchanged TOAST values, many types, a partitioned
# table, a column added mid-stream, names outside ASCII. Everything it creates is dropped at exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${1:-tests/data/pgoutput_corpus.hex}
for v in CLICKPIPE_PG_HOST CLICKPIPE_PG_PORT CLICKPIPE_PG_DATABASE CLICKPIPE_PG_USER \
         CLICKPIPE_PG_PASSWORD; do
  [ -n "${!v:-}" ] || { echo "$v is not set (source /tmp/servers.env)" >&2; exit 2; }
done
export PGPASSWORD=$CLICKPIPE_PG_PASSWORD
# Commits flushed before they return: the slot functions read only flushed WAL, and the test
# server runs with synchronous_commit off.
export PGOPTIONS="-c synchronous_commit=on"
sql() {
  psql -X -q -v ON_ERROR_STOP=1 -h "$CLICKPIPE_PG_HOST" -p "$CLICKPIPE_PG_PORT" \
    -U "$CLICKPIPE_PG_USER" -d "$CLICKPIPE_PG_DATABASE" "$@"
}
quiet() { sql -o /dev/null "$@"; }  # statements whose results are of no interest

P=h4corpus  # prefix of everything made here
SLOT=${P}_slot
PUB=${P}_pub
cleanup() {
  quiet -c "SELECT pg_drop_replication_slot('$SLOT') FROM pg_replication_slots
            WHERE slot_name = '$SLOT'" >/dev/null 2>&1 || true
  quiet 2>/dev/null <<SQL || true
DROP PUBLICATION IF EXISTS $PUB;
DROP TABLE IF EXISTS ${P}_plain, ${P}_full, ${P}_toast, ${P}_parted, ${P}_child, "${P}_ünï";
DROP TYPE IF EXISTS ${P}_mood;
SELECT pg_replication_origin_drop('${P}_origin') FROM pg_replication_origin
  WHERE roname = '${P}_origin';
SQL
}
trap cleanup EXIT
cleanup

quiet <<SQL
CREATE TYPE ${P}_mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE ${P}_plain (
  id int8 PRIMARY KEY, i2 int2, i4 int4, n numeric(12, 3), u numeric, f4 float4, f8 float8,
  b bool, t text, vc varchar(20), c char(3), by bytea, d date, ts timestamp, tz timestamptz,
  tm time, iv interval, uid uuid, j json, jb jsonb, ia int4[], ta text[], ip inet, mood ${P}_mood);
CREATE TABLE ${P}_full (a int4, b text, c int4, PRIMARY KEY (a, c));
ALTER TABLE ${P}_full REPLICA IDENTITY FULL;
CREATE TABLE ${P}_toast (id int4 PRIMARY KEY, big text, small int4);
ALTER TABLE ${P}_toast ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE TABLE ${P}_parted (id int8, k int4, v text, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
CREATE TABLE ${P}_child PARTITION OF ${P}_parted FOR VALUES FROM (0) TO (1000);
CREATE TABLE "${P}_ünï" ("clé" int4 PRIMARY KEY, "naïve" text);
CREATE PUBLICATION $PUB FOR TABLE ${P}_plain, ${P}_full, ${P}_toast, ${P}_parted, "${P}_ünï"
  WITH (publish_via_partition_root = true);
SELECT 1 FROM pg_create_logical_replication_slot('$SLOT', 'pgoutput');
SELECT 1 FROM pg_replication_origin_create('${P}_origin');
SQL

quiet <<SQL
-- Inserts of every type, NULLs in every nullable column, then updates and deletes.
INSERT INTO ${P}_plain VALUES
  (1, -32768, 2147483647, -123456789.123, 3.14159265358979323846, 'NaN', '-Infinity', true,
   E'tab\there\nnewline \\\\ back ''q'' ü 日本', 'vc', 'abc', '\\x00ff0a41', '1999-12-31',
   '2024-02-29 23:59:59.123456', '2024-02-29 23:59:59.123456+05:30', '12:34:56.789',
   '1 year 2 mons 3 days 04:05:06.7', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"k": [1, 2]}',
   '{"a": {"b": null}}', '{1,NULL,-3}', '{"a b",NULL,"it''s"}', '192.168.0.1/24', 'happy'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (3, 1, 2, 0, 1e-30, 1.5, 2.5, false, '', '', '', '', 'infinity', '-infinity', 'epoch', 'allballs',
   '0', '00000000-0000-0000-0000-000000000000', 'null', '[]', '{}', '{}', '::1', 'sad');
BEGIN;
UPDATE ${P}_plain SET t = 'updated', mood = 'ok' WHERE id = 1;  -- no old row: the key stays
UPDATE ${P}_plain SET id = 10 WHERE id = 3;                     -- the key moves: old key sent
DELETE FROM ${P}_plain WHERE id = 2;
COMMIT;
INSERT INTO ${P}_full VALUES (1, 'one', 1), (2, NULL, 2);
UPDATE ${P}_full SET b = 'uno' WHERE a = 1;  -- REPLICA IDENTITY FULL: the whole old row
DELETE FROM ${P}_full WHERE a = 2;
-- A value stored out of line, then an update of another column: it comes as 'u', unchanged.
INSERT INTO ${P}_toast SELECT 1, string_agg(md5(g::text), ''), 0 FROM generate_series(1, 400) g;
UPDATE ${P}_toast SET small = 1 WHERE id = 1;
DELETE FROM ${P}_toast WHERE id = 1;
INSERT INTO ${P}_parted VALUES (1, 5, 'in the child'), (2, 999, NULL);
UPDATE ${P}_parted SET v = 'moved' WHERE id = 1;
INSERT INTO "${P}_ünï" VALUES (1, 'café');
-- A column added mid-stream: the next change sends the relation again.
ALTER TABLE ${P}_plain ADD COLUMN extra text;
INSERT INTO ${P}_plain (id, extra) VALUES (4, 'after the change');
TRUNCATE ${P}_full, ${P}_toast RESTART IDENTITY CASCADE;
TRUNCATE ${P}_parted;
SQL

# A transaction replayed from elsewhere carries its origin: an Origin message after its Begin.
quiet <<SQL
SELECT 1 FROM pg_replication_origin_session_setup('${P}_origin');
BEGIN;
SELECT 1 FROM pg_replication_origin_xact_setup('0/12345678', now());
INSERT INTO "${P}_ünï" VALUES (2, 'from elsewhere');
COMMIT;
SELECT 1 FROM pg_replication_origin_session_reset();
SQL

mkdir -p "$(dirname "$OUT")"
sql -A -t -o "$OUT.tmp" -c "SELECT encode(data, 'hex') FROM pg_logical_slot_get_binary_changes(
  '$SLOT', NULL, NULL, 'proto_version', '1', 'publication_names', '$PUB')"
mv "$OUT.tmp" "$OUT"
kinds=$(cut -c1-2 "$OUT" | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')
echo "$OUT: $(wc -l <"$OUT") messages (first byte in hex=count: $kinds)"
# Every kind must be there, or the corpus no longer covers what the fuzz test claims it does.
for k in 42 43 4f 52 59 49 55 44 54; do  # B C O R Y I U D T
  grep -q "^$k" "$OUT" || { echo "no message of kind $k in the capture" >&2; exit 1; }
done
