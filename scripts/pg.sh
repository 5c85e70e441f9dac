# Throwaway PostgreSQL 15 on 127.0.0.1 for tests and the demo. Source it; do not run it.
#   pg_start      initdb in a temp dir, start on a free port with TLS on, create the test roles
#                 and database, export CLICKPIPE_PG_* for the tests (and CLICKPIPE_TLS_*, see
#                 scripts/tls.sh, unless another server made the certificates first)
#   pg_stop       stop the server and delete its data, the certificates with it
# PostgreSQL refuses to run as root, so the server runs as the unprivileged `postgres` user.
#
# The server is configured the way real ones differ from the defaults (a hostile lab): a local
# time zone with a half-hour offset, SQL/DMY dates, sql_standard intervals, escaped bytea, short
# floats and a German numeric and monetary locale. clickpipe pins its own session settings, so
# every test must pass on it; CLICKPIPE_PG_FRIENDLY=1 starts a server with the defaults instead.
source "$CLICKPIPE_ROOT/scripts/tls.sh"

PG_LOCALE=de_DE.UTF-8

PG_BIN=/usr/lib/postgresql/15/bin

free_port() {
  local port
  for port in $(seq "$1" $(($1 + 200))); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# Generates $PG_LOCALE if the machine lacks it (Debian's `locales` package has the sources).
ensure_pg_locale() {
  locale -a 2>/dev/null | grep -qix "${PG_LOCALE/UTF-8/utf8}" && return 0
  as_root localedef -i "${PG_LOCALE%%.*}" -c -f UTF-8 "$PG_LOCALE"
}

pg_start() {
  [ "${CLICKPIPE_PG_FRIENDLY:-0}" = 1 ] || ensure_pg_locale
  PG_DATA=$(mktemp -d /tmp/clickpipe-pg.XXXXXX)
  chown postgres:postgres "$PG_DATA" 2>/dev/null || as_root chown postgres:postgres "$PG_DATA"
  chmod 700 "$PG_DATA"
  PG_PORT=$(free_port 55432)
  local pwfile="$PG_DATA/.pw"
  CLICKPIPE_PG_PASSWORD="pw-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  echo "$CLICKPIPE_PG_PASSWORD" > "$pwfile"
  chown postgres "$pwfile"
  as_user postgres "$PG_BIN/initdb" -D "$PG_DATA/data" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$PG_DATA/initdb.log" 2>&1 || {
    cat "$PG_DATA/initdb.log" >&2
    return 1
  }
  # TLS on: clients that ask for it get it, plaintext still works (libpq's default on loopback is
  # prefer). The server's copy of the key is its own, 0600, as PostgreSQL demands.
  tls_ensure "$PG_DATA/tls" || return 1
  cp "$CLICKPIPE_TLS_DIR/server.crt" "$CLICKPIPE_TLS_DIR/server.key" "$PG_DATA/data/"
  chown postgres:postgres "$PG_DATA/data/server.crt" "$PG_DATA/data/server.key"
  chmod 600 "$PG_DATA/data/server.key"
  cat >>"$PG_DATA/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DATA'
ssl = on
ssl_cert_file = '$PG_DATA/data/server.crt'
ssl_key_file = '$PG_DATA/data/server.key'
wal_level = logical
max_replication_slots = 40
max_wal_senders = 40
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 256MB
max_wal_size = 4GB
log_min_messages = warning
CONF
  if [ "${CLICKPIPE_PG_FRIENDLY:-0}" != 1 ]; then
    cat >>"$PG_DATA/data/postgresql.conf" <<CONF
timezone = 'Asia/Kolkata'
log_timezone = 'Asia/Kolkata'
datestyle = 'SQL, DMY'
intervalstyle = 'sql_standard'
bytea_output = 'escape'
extra_float_digits = 0
lc_numeric = '$PG_LOCALE'
lc_monetary = '$PG_LOCALE'
lc_time = '$PG_LOCALE'
CONF
  fi
  cat >"$PG_DATA/data/pg_hba.conf" <<HBA
local all all trust
local replication all trust
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
HBA
  as_user postgres "$PG_BIN/pg_ctl" -D "$PG_DATA/data" -l "$PG_DATA/server.log" -w -t 60 start >/dev/null || {
    cat "$PG_DATA/server.log" >&2
    return 1
  }
  as_user postgres psql -h "$PG_DATA" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -q <<SQL
CREATE ROLE clickpipe LOGIN SUPERUSER REPLICATION PASSWORD '$CLICKPIPE_PG_PASSWORD';
CREATE DATABASE clickpipe_test OWNER clickpipe;
SQL
  export CLICKPIPE_PG_HOST=127.0.0.1 CLICKPIPE_PG_PORT="$PG_PORT" CLICKPIPE_PG_USER=clickpipe \
    CLICKPIPE_PG_DATABASE=clickpipe_test CLICKPIPE_PG_PASSWORD PG_DATA PG_PORT
  echo "==> PostgreSQL 15 on 127.0.0.1:$PG_PORT (data in $PG_DATA): $(as_user postgres psql -h "$PG_DATA" \
    -p "$PG_PORT" -U postgres -d postgres -Atc "SELECT format('TimeZone %s, DateStyle %s, IntervalStyle %s, bytea_output %s, extra_float_digits %s, lc_numeric %s', current_setting('TimeZone'), current_setting('DateStyle'), current_setting('IntervalStyle'), current_setting('bytea_output'), current_setting('extra_float_digits'), current_setting('lc_numeric'))")"
}

pg_stop() {
  [ -n "${PG_DATA:-}" ] || return 0
  as_user postgres "$PG_BIN/pg_ctl" -D "$PG_DATA/data" -m immediate -w stop >/dev/null 2>&1 || true
  tls_forget "$PG_DATA/tls"
  rm -rf "$PG_DATA"
  PG_DATA=
}
