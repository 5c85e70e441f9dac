# Throwaway ClickHouse (Debian's 18.16) on 127.0.0.1 for tests and the demo, in a time zone with a
# half-hour offset (nothing may depend on the server's zone). Source it.
#   ch_start   own config and data under a temp dir, free ports, a password-protected user,
#              HTTPS beside HTTP with the certificate of scripts/tls.sh (made here unless
#              PostgreSQL made it first); exports CLICKPIPE_CH_* (CLICKPIPE_CH_HTTPS_PORT too)
#   ch_stop    stops it and deletes its data
source "$CLICKPIPE_ROOT/scripts/tls.sh"

ch_start() {
  CH_DIR=$(mktemp -d /tmp/clickpipe-ch.XXXXXX)
  CH_HTTP_PORT=$(free_port 58123)
  CH_HTTPS_PORT=$(free_port 58443)
  CH_TCP_PORT=$(free_port 59000)
  CLICKPIPE_CH_PASSWORD="ch-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  mkdir -p "$CH_DIR/data" "$CH_DIR/tmp" "$CH_DIR/user_files" "$CH_DIR/format_schemas"
  tls_ensure "$CH_DIR/tls" || return 1
  cp "$CLICKPIPE_TLS_DIR/server.crt" "$CLICKPIPE_TLS_DIR/server.key" "$CH_DIR/"
  chmod 600 "$CH_DIR/server.key"
  cat >"$CH_DIR/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$CH_DIR/server.log</log><errorlog>$CH_DIR/server.err.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$CH_HTTP_PORT</http_port>
  <https_port>$CH_HTTPS_PORT</https_port>
  <tcp_port>$CH_TCP_PORT</tcp_port>
  <openSSL><server>
    <certificateFile>$CH_DIR/server.crt</certificateFile>
    <privateKeyFile>$CH_DIR/server.key</privateKeyFile>
    <verificationMode>none</verificationMode>
    <loadDefaultCAFile>false</loadDefaultCAFile>
    <cacheSessions>true</cacheSessions>
    <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
    <preferServerCiphers>true</preferServerCiphers>
  </server></openSSL>
  <path>$CH_DIR/data/</path>
  <tmp_path>$CH_DIR/tmp/</tmp_path>
  <user_files_path>$CH_DIR/user_files/</user_files_path>
  <format_schema_path>$CH_DIR/format_schemas/</format_schema_path>
  <users_config>$CH_DIR/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <max_concurrent_queries>100</max_concurrent_queries>
  <mark_cache_size>268435456</mark_cache_size>
  <timezone>America/St_Johns</timezone>
</yandex>
XML
  cat >"$CH_DIR/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default>
    <max_memory_usage>4000000000</max_memory_usage>
    <!-- hostile: skip unparseable rows unless a client pins this off -->
    <input_format_allow_errors_num>5</input_format_allow_errors_num>
    <input_format_allow_errors_ratio>0.5</input_format_allow_errors_ratio>
  </default></profiles>
  <users>
    <clickpipe>
      <password>$CLICKPIPE_CH_PASSWORD</password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </clickpipe>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
XML
  chown -R clickhouse:clickhouse "$CH_DIR" 2>/dev/null || as_root chown -R clickhouse:clickhouse "$CH_DIR"
  as_user clickhouse clickhouse-server --config-file="$CH_DIR/config.xml" --pid-file="$CH_DIR/server.pid" \
    --daemon >/dev/null 2>&1 || true
  local i
  for i in $(seq 1 150); do
    if curl -sf "http://127.0.0.1:$CH_HTTP_PORT/ping" >/dev/null 2>&1; then break; fi
    sleep 0.2
  done
  if ! curl -sf "http://127.0.0.1:$CH_HTTP_PORT/ping" >/dev/null 2>&1; then
    echo "ClickHouse did not start:" >&2
    cat "$CH_DIR/server.err.log" >&2 2>/dev/null
    return 1
  fi
  # The certificate names localhost, not 127.0.0.1.
  if ! curl -sf --cacert "$CLICKPIPE_TLS_CA" "https://localhost:$CH_HTTPS_PORT/ping" >/dev/null 2>&1; then
    echo "ClickHouse does not answer HTTPS on localhost:$CH_HTTPS_PORT:" >&2
    cat "$CH_DIR/server.err.log" >&2 2>/dev/null
    return 1
  fi
  export CLICKPIPE_CH_HOST=127.0.0.1 CLICKPIPE_CH_PORT="$CH_HTTP_PORT" CLICKPIPE_CH_USER=clickpipe \
    CLICKPIPE_CH_HTTPS_PORT="$CH_HTTPS_PORT" CLICKPIPE_CH_PASSWORD CH_DIR
  echo "==> ClickHouse $(curl -s -H "X-ClickHouse-User: clickpipe" -H "X-ClickHouse-Key: $CLICKPIPE_CH_PASSWORD" \
    "http://127.0.0.1:$CH_HTTP_PORT/?query=SELECT%20version()") on 127.0.0.1:$CH_HTTP_PORT, HTTPS on localhost:$CH_HTTPS_PORT (data in $CH_DIR)"
}

ch_stop() {
  [ -n "${CH_DIR:-}" ] || return 0
  local pattern="config-file=$CH_DIR/config.xml" i
  pkill -f "$pattern" 2>/dev/null || true
  for i in $(seq 1 50); do
    pgrep -f "$pattern" >/dev/null 2>&1 || break
    sleep 0.1
  done
  pkill -9 -f "$pattern" 2>/dev/null || true
  tls_forget "$CH_DIR/tls"
  rm -rf "$CH_DIR"
  CH_DIR=
}
