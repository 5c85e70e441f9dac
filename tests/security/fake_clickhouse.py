#!/usr/bin/env python3
"""A ClickHouse that refuses everything, for the canary test.

Usage: fake_clickhouse.py PORT CANARY [18.16|26] [27|241]

Listens on 127.0.0.1:PORT (0: a free port) and prints "listening on PORT pid PID" once it
accepts connections (the pid is the server's own, whatever wrapper started the interpreter).
Every request is answered with HTTP 500 and an error in the format of the ClickHouse version
given (18.16 when omitted): code 27, "Cannot parse input" (fatal for clickpipe), or code 241,
"Memory limit exceeded" (transient: clickpipe retries). Either text quotes CANARY the way a real
server quotes the row it could not parse, then echoes the query it was sent, rows included. A
client that copies server error texts into its own errors leaks the canary.
Standard library only; stops on SIGTERM or SIGINT.
"""

import http.server
import os
import signal
import sys
import urllib.parse

ECHO_LIMIT = 4096  # of the query echoed back, as servers cut what they quote


def read_body(handler):
    """The request body, plain or chunked (streamed inserts come chunked)."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return body
            body += handler.rfile.read(size)
            handler.rfile.readline()  # the CRLF after each chunk
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


# Per code: the start of the message as 18.16 words it, as 26.x does, and 26.x's name.
MEMORY = "Memory limit (for query) exceeded: would use 9.31 GiB, maximum: 9.31 GiB, while parsing "
ERRORS = {
    27: (
        "Cannot parse input: expected \\t before: ",
        "Cannot parse input: expected '\\t' before: ",
        "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    ),
    241: (MEMORY, MEMORY, "MEMORY_LIMIT_EXCEEDED"),
}


def error_body(version, code, canary, query):
    old, new, name = ERRORS[code]
    row = canary + "\tnot a number\t" + canary
    if version == "18.16":
        return (
            f"Code: {code}, e.displayText() = DB::Exception: {old}'{row}': (at row 1)\n\n"
            f'Row 1:\nColumn 0,   name: id, type: Int64, ERROR: text "{canary}" is not like '
            f"Int64\n\n: while executing query: {query}, e.what() = DB::Exception "
            "(version 18.16.1)\n"
        )
    return (
        f"Code: {code}. DB::Exception: {new}'{row}': (at row 1)\n: While executing "
        f"ParallelParsingBlockInputFormat: (in query: {query}). ({name}) "
        "(version 26.7.3.1 (official build))\n"
    )


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.refuse(read_body(self))

    def do_GET(self):
        self.refuse(b"")

    def refuse(self, body):
        params = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        # The query travels in the URL next to an external table, otherwise first in the body.
        query = params.get("query", [""])[0] + " " + body.decode("utf-8", "replace")
        out = error_body(
            self.server.version, self.server.code, self.server.canary, query.strip()[:ECHO_LIMIT]
        )
        data = out.encode()
        self.send_response(500)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        # 18.16 sends the code in the body only; newer servers in a header too.
        if self.server.version != "18.16":
            self.send_header("X-ClickHouse-Exception-Code", str(self.server.code))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass  # the test reads the client's output, not ours


def main():
    args = sys.argv[1:]
    usage = "usage: fake_clickhouse.py PORT CANARY [18.16|26] [27|241]"
    if not 2 <= len(args) <= 4 or args[2:3] not in ([], ["18.16"], ["26"]):
        sys.exit(usage)
    if args[3:4] not in ([], ["27"], ["241"]):
        sys.exit(usage)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(args[0])), Handler)
    server.daemon_threads = True
    server.canary = args[1]
    server.version = args[2] if len(args) > 2 else "18.16"
    server.code = int(args[3]) if len(args) > 3 else 27

    def stop(*_):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on {server.server_address[1]} pid {os.getpid()}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
