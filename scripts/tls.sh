# Throwaway certificates for the test servers. Source it; do not run it.
#   tls_make DIR   writes into DIR (created):
#     ca.crt                     a CA made for this run (its key is deleted once it has signed)
#     server.crt, server.key     signed by it, for DNS name localhost only: 127.0.0.1 does not
#                                match it, which is how the tests see host names checked
#     other-ca.crt               an unrelated CA with the same name, which signed nothing here
#   tls_ensure DIR  makes them in DIR unless CLICKPIPE_TLS_DIR already holds a set (PostgreSQL and
#                   ClickHouse share one), then exports CLICKPIPE_TLS_DIR, CLICKPIPE_TLS_CA and
#                   CLICKPIPE_TLS_OTHER_CA
# Valid for two days: long enough for a run, useless if one leaks.

tls_make() {
  local dir=$1 subj="/CN=clickpipe throwaway test CA"
  mkdir -p "$dir"
  # Each step chained: `set -e` does not reach inside a subshell on the left of `||`.
  (
    umask 077
    cd "$dir" &&
      openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 2 -subj "$subj" \
        -keyout ca.key -out ca.crt \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
      openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 2 -subj "$subj" \
        -keyout other-ca.key -out other-ca.crt \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
      openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
        -keyout server.key -out server.csr &&
      printf '%s\n' "subjectAltName=DNS:localhost" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >server.ext &&
      openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 2 \
        -extfile server.ext -out server.crt &&
      rm -f ca.key other-ca.key ca.srl server.csr server.ext
  ) >/dev/null 2>"$dir/openssl.log" || {
    cat "$dir/openssl.log" >&2
    return 1
  }
  rm -f "$dir/openssl.log"
  chmod 644 "$dir/ca.crt" "$dir/other-ca.crt" "$dir/server.crt"
  chmod 600 "$dir/server.key"
}

tls_ensure() {
  if [ -n "${CLICKPIPE_TLS_DIR:-}" ] && [ -f "$CLICKPIPE_TLS_DIR/server.key" ]; then
    return 0
  fi
  command -v openssl >/dev/null 2>&1 || ensure_packages openssl
  tls_make "$1" || return 1
  CLICKPIPE_TLS_DIR=$1
  CLICKPIPE_TLS_CA=$1/ca.crt
  CLICKPIPE_TLS_OTHER_CA=$1/other-ca.crt
  export CLICKPIPE_TLS_DIR CLICKPIPE_TLS_CA CLICKPIPE_TLS_OTHER_CA
}

# Forgets the shared set when it lived in DIR (the server that made it is going away).
tls_forget() {
  if [ "${CLICKPIPE_TLS_DIR:-}" = "$1" ]; then
    unset CLICKPIPE_TLS_DIR CLICKPIPE_TLS_CA CLICKPIPE_TLS_OTHER_CA
  fi
}
