#!/usr/bin/env python3
"""Checks for ops_test.sh: waits on the HTTP API, parses Prometheus text and JSON log lines.

Usage (BASE is http://127.0.0.1:PORT; every wait takes --timeout seconds):
  ops_helper.py port                                   a free TCP port on 127.0.0.1
  ops_helper.py wait BASE ID STATE [--min-transitions N] [--has T] [--lacks T]
                [--copying T] [--gone-ok] [--timeout S]
      polls GET /pipes/ID every 50 ms until its state is STATE (and the rest holds); prints
      the document's `transitions`. --copying T: T is in the load and not all copied yet.
      With --copying, a pipe back in Running past N transitions fails at once (the load ended).
      --gone-ok: a 404 counts as reached (a deleted pipe the process no longer runs).
  ops_helper.py field BASE ID PATH                     one field of GET /pipes/ID, as JSON
  ops_helper.py expect FILE CHECK...                   checks on the JSON document in FILE:
      PATH=VALUE (string form equal), PATH~REGEX, PATH:TYPE (object array string number
      null bool), PATH#N (an array or object of N items), PATH? (present). PATH: dotted keys,
      [i] for array items.
  ops_helper.py scrape BASE FILE                       GET /metrics into FILE, checking the answer
  ops_helper.py metrics-wait BASE BEFORE AFTER SPEC [--timeout S]
      scrapes until every pipe of SPEC applied the changes written since BEFORE, into AFTER
  ops_helper.py metrics-check BEFORE AFTER SPEC        every figure of SPEC (below); prints them
  ops_helper.py metric-is FILE NAME LABELS VALUE       one series equals VALUE (LABELS: a=b,c=d)
  ops_helper.py status-json FILE SPEC                  `clickpipe status --json` of running pipes
  ops_helper.py status-table FILE SPEC                 `clickpipe status` (the readable table)
  ops_helper.py settings-json FILE ID KEY=VALUE...     `status --json` shows those settings
  ops_helper.py logs FILE SPEC                         the JSON log lines of `clickpipe run`

SPEC is JSON: {"version": "X.Y.Z", "pipes": {ID: {"snapshot": {TABLE: ROWS},
"written": {TABLE: CHANGES}, "triggers": [TRIGGER, ...]}}}. Secrets that must appear nowhere
come in the environment variable OPS_SECRETS, one a line.
Standard library only.
"""

import json
import math
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request

LEVELS = {"trace", "debug", "info", "warn", "error"}
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
RFC3339_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
BUCKETS = ["0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "+Inf"]


def die(message):
    print(f"ops_helper: {message}", file=sys.stderr)
    sys.exit(1)


def qualified(table):
    return table if "." in table else "public." + table


def secrets():
    return [s for s in os.environ.get("OPS_SECRETS", "").splitlines() if s]


def get(url, timeout=5):
    """(status, headers, body text) of a GET; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return 0, {}, ""


def pipe_doc(base, pipe_id):
    code, _, body = get(f"{base}/pipes/{pipe_id}")
    if code != 200:
        return code, None
    try:
        return code, json.loads(body)
    except ValueError:
        die(f"GET /pipes/{pipe_id} answered 200 with a body that is not JSON: {body[:300]}")


def summary(doc):
    if doc is None:
        return "no document"
    keep = {k: doc.get(k) for k in ("state", "tables", "transitions", "retry", "last_error")}
    keep["snapshot"] = [
        {k: t.get(k) for k in ("table", "partitions_done", "partitions_total", "rows_copied")}
        for t in doc.get("snapshot") or []
    ]
    return json.dumps(keep)


def option(args, name, default=None, many=False):
    values = []
    while name in args:
        i = args.index(name)
        if i + 1 >= len(args):
            die(f"{name} needs a value")
        values.append(args[i + 1])
        del args[i : i + 2]
    if many:
        return values
    return values[-1] if values else default


def flag(args, name):
    if name in args:
        args.remove(name)
        return True
    return False


def cmd_port(_):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def cmd_wait(args):
    timeout = float(option(args, "--timeout", "30"))
    min_transitions = int(option(args, "--min-transitions", "0"))
    has = [qualified(t) for t in option(args, "--has", many=True)]
    lacks = [qualified(t) for t in option(args, "--lacks", many=True)]
    copying = [qualified(t) for t in option(args, "--copying", many=True)]
    gone_ok = flag(args, "--gone-ok")
    if len(args) != 3:
        die("wait BASE ID STATE [options]")
    base, pipe_id, state = args
    deadline = time.monotonic() + timeout
    code, doc = 0, None
    while True:
        code, doc = pipe_doc(base, pipe_id)
        if code == 404 and gone_ok:
            print("gone")
            return
        if doc is not None:
            tables = [qualified(t) for t in doc.get("tables") or []]
            load = {qualified(t.get("table", "")): t for t in doc.get("snapshot") or []}

            def still_copying(t):
                p = load.get(t)
                return p is not None and (
                    not p.get("planned") or p.get("partitions_done", 0) < p.get("partitions_total", 0)
                )

            if (
                doc.get("state") == state
                and doc.get("transitions", 0) >= min_transitions
                and all(t in tables for t in has)
                and not any(t in tables for t in lacks)
                and all(still_copying(t) for t in copying)
            ):
                print(doc.get("transitions", 0))
                return
            # The load ended before it was seen copying: waiting longer cannot help.
            if copying and doc.get("state") == "Running" and doc.get("transitions", 0) > min_transitions:
                die(f"pipe {pipe_id}: the load of {copying} ended before it was seen copying; "
                    f"make the table bigger: {summary(doc)}")
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    die(
        f"pipe {pipe_id}: not {state} (transitions >= {min_transitions}, has {has}, lacks {lacks},"
        f" copying {copying}) within {timeout:.0f} s; last answer {code}: {summary(doc)}"
    )


def cmd_field(args):
    base, pipe_id, path = args
    code, doc = pipe_doc(base, pipe_id)
    if doc is None:
        die(f"GET /pipes/{pipe_id}: {code}")
    print(json.dumps(lookup(doc, path)[1]))


MISSING = object()


def lookup(doc, path):
    """(found, value) of a dotted path with [i] items."""
    cur = doc
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            i = int(part[1:-1])
            if not isinstance(cur, list) or i >= len(cur):
                return False, MISSING
            cur = cur[i]
        else:
            if not isinstance(cur, dict) or part not in cur:
                return False, MISSING
            cur = cur[part]
    return True, cur


def type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(v), "?")


def cmd_expect(args):
    path_file, checks = args[0], args[1:]
    text = open(path_file, encoding="utf-8", errors="replace").read()
    try:
        doc = json.loads(text)
    except ValueError:
        die(f"{path_file}: not JSON: {text[:300]}")
    for check in checks:
        m = re.match(r"^([^=~:?#]+)(=|~|:|\?|#)(.*)$", check, re.S)
        if not m:
            die(f"bad check {check}")
        path, op, want = m.groups()
        found, value = lookup(doc, path)
        if not found:
            die(f"{path} is missing in {text[:500]}")
        shown = value if isinstance(value, str) else json.dumps(value)
        ok = {
            "=": lambda: shown == want,
            "~": lambda: re.search(want, shown) is not None,
            ":": lambda: type_name(value) == want,
            "#": lambda: isinstance(value, (list, dict)) and len(value) == int(want),
            "?": lambda: True,
        }[op]()
        if not ok:
            die(f"{path}: {shown!r} does not satisfy {op}{want} in {text[:500]}")


# Prometheus text format 0.0.4.
SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$")


def parse_labels(text, line):
    labels, i = {}, 0
    while i < len(text):
        m = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)=\"").match(text, i)
        if not m:
            die(f"bad labels in metrics line: {line}")
        name, i, value = m.group(1), m.end(), ""
        while True:
            if i >= len(text):
                die(f"unterminated label value in metrics line: {line}")
            c = text[i]
            if c == "\\":
                nxt = text[i + 1 : i + 2]
                if nxt not in ('\\', '"', "n"):
                    die(f"bad escape in metrics line: {line}")
                value += "\n" if nxt == "n" else nxt
                i += 2
            elif c == '"':
                i += 1
                break
            else:
                value += c
                i += 1
        labels[name] = value
        m = re.compile(r"\s*(,|$)").match(text, i)
        if not m:
            die(f"bad labels in metrics line: {line}")
        i = m.end()
    return labels


def parse_metrics(text):
    """{name: [(labels, value)]}, and {family: type}; every line must parse."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip()
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            die(f"a metrics line does not parse: {line!r}")
        name, labels, value = m.group(1), parse_labels(m.group(2) or "", line), m.group(3)
        try:
            number = float(value)
        except ValueError:
            die(f"not a number in metrics line: {line!r}")
        samples.setdefault(name, []).append((labels, number))
    return samples, types


def series(samples, name, **labels):
    return [v for l, v in samples.get(name, []) if all(l.get(k) == w for k, w in labels.items())]


def one(samples, name, **labels):
    found = series(samples, name, **labels)
    if len(found) != 1:
        die(f"{name}{labels}: {len(found)} series, want 1")
    return found[0]


def table_value(samples, name, pipe, table):
    """The series of `table` (as public.t, or t) for `pipe`."""
    for t in (qualified(table), table.split(".", 1)[-1]):
        found = series(samples, name, pipe=pipe, table=t)
        if found:
            if len(found) != 1:
                die(f"{name}{{pipe={pipe},table={t}}}: {len(found)} series")
            return found[0]
    die(f"no {name}{{pipe={pipe!r},table={qualified(table)!r}}}")


def read_metrics(path):
    return parse_metrics(open(path, encoding="utf-8").read())


def cmd_scrape(args):
    base, out = args
    code, headers, body = get(f"{base}/metrics")
    if code != 200:
        die(f"GET /metrics: {code}")
    ctype = headers.get("Content-Type", "")
    if not ctype.startswith("text/plain") or "version=0.0.4" not in ctype:
        die(f"GET /metrics: Content-Type {ctype!r}, want text/plain; version=0.0.4")
    parse_metrics(body)
    with open(out, "w", encoding="utf-8") as f:
        f.write(body)


def applied(before, after, spec):
    """Per pipe: (changes applied since before, changes written)."""
    out = {}
    for pipe, p in spec["pipes"].items():
        b = series(before, "clickpipe_cdc_changes_applied_total", pipe=pipe)
        a = series(after, "clickpipe_cdc_changes_applied_total", pipe=pipe)
        out[pipe] = ((a[0] if a else 0) - (b[0] if b else 0), sum(p.get("written", {}).values()))
    return out


def cmd_metrics_wait(args):
    timeout = float(option(args, "--timeout", "30"))
    base, before_path, after_path, spec = args
    spec = json.loads(spec)
    before, _ = read_metrics(before_path)
    deadline = time.monotonic() + timeout
    while True:
        cmd_scrape([base, after_path])
        after, _ = read_metrics(after_path)
        got = applied(before, after, spec)
        if all(d >= w for d, w in got.values()):
            return
        if time.monotonic() > deadline:
            die(f"changes applied since the first scrape, per pipe (applied, written): {got}")
        time.sleep(0.2)


def cmd_metrics_check(args):
    before_path, after_path, spec = args
    spec = json.loads(spec)
    before, _ = read_metrics(before_path)
    after, types = read_metrics(after_path)
    if one(after, "clickpipe_up") != 1:
        die("clickpipe_up is not 1")
    if one(after, "clickpipe_build_info", version=spec["version"]) != 1:
        die("clickpipe_build_info is not 1")
    if one(after, "clickpipe_pipes") != len(spec["pipes"]):
        die(f"clickpipe_pipes is not {len(spec['pipes'])}")
    if one(after, "clickpipe_broken_records") != 0:
        die("clickpipe_broken_records is not 0")
    hist = "clickpipe_cdc_batch_duration_seconds"
    if types.get(hist) != "histogram":
        die(f"# TYPE {hist} is {types.get(hist)!r}, want histogram")
    for counter in ("clickpipe_cdc_changes_applied_total", "clickpipe_snapshot_rows_copied_total"):
        if types.get(counter) not in ("counter",) and types.get(counter[: -len("_total")]) != "counter":
            die(f"{counter} is not typed as a counter")
    lines = []
    for pipe, p in spec["pipes"].items():
        states = {l["state"]: v for l, v in after.get("clickpipe_pipe_state", []) if l.get("pipe") == pipe}
        if states.get("Running") != 1:
            die(f"clickpipe_pipe_state{{pipe={pipe},state=Running}} is {states.get('Running')}, want 1")
        if sum(states.values()) != 1 or not {"Paused", "Failed", "Snapshot"} <= set(states):
            die(f"clickpipe_pipe_state for {pipe}: want 1 for Running and 0 for every other state: {states}")
        copied = 0
        for table, rows in p["snapshot"].items():
            got = table_value(after, "clickpipe_snapshot_rows_copied_total", pipe, table)
            if got != rows:
                die(f"clickpipe_snapshot_rows_copied_total {pipe} {table}: {got}, want {rows}")
            done = table_value(after, "clickpipe_snapshot_partitions_done", pipe, table)
            total = table_value(after, "clickpipe_snapshot_partitions_total", pipe, table)
            if not (total >= 1 and done == total):
                die(f"snapshot partitions of {pipe} {table}: {done}/{total}, want all done")
            copied += got
        change = {}
        for name in ("clickpipe_cdc_changes_applied_total", "clickpipe_cdc_batches_total",
                     hist + "_count", hist + "_sum"):
            change[name] = one(after, name, pipe=pipe) - (series(before, name, pipe=pipe) or [0])[0]
        written = sum(p.get("written", {}).values())
        if change["clickpipe_cdc_changes_applied_total"] < written:
            die(f"{pipe}: {change['clickpipe_cdc_changes_applied_total']:.0f} changes applied, "
                f"{written} written")
        for table, n in p.get("written", {}).items():
            b = [v for l, v in before.get("clickpipe_cdc_table_changes_applied_total", [])
                 if l.get("pipe") == pipe and l.get("table") in (qualified(table), table)]
            d = table_value(after, "clickpipe_cdc_table_changes_applied_total", pipe, table) - (b or [0])[0]
            if d < n:
                die(f"clickpipe_cdc_table_changes_applied_total {pipe} {table} grew by {d:.0f}, want >= {n}")
        if change["clickpipe_cdc_batches_total"] < 1 or change[hist + "_count"] < 1:
            die(f"{pipe}: batches_total grew by {change['clickpipe_cdc_batches_total']:.0f}, "
                f"{hist}_count by {change[hist + '_count']:.0f}; want both >= 1")
        if change[hist + "_sum"] < 0:
            die(f"{pipe}: {hist}_sum went down")
        buckets = {l.get("le"): v for l, v in after.get(hist + "_bucket", []) if l.get("pipe") == pipe}
        if sorted(buckets, key=lambda b: math.inf if b == "+Inf" else float(b)) != BUCKETS:
            die(f"{hist}_bucket for {pipe}: le values {sorted(buckets)}, want {BUCKETS}")
        counts = [buckets[b] for b in BUCKETS]
        if any(x > y for x, y in zip(counts, counts[1:])):
            die(f"{hist}_bucket for {pipe} is not cumulative: {counts}")
        if counts[-1] != one(after, hist + "_count", pipe=pipe):
            die(f"{hist}_bucket{{le=+Inf}} for {pipe} differs from _count")
        lag = one(after, "clickpipe_cdc_lag_bytes", pipe=pipe)
        if lag < 0:
            die(f"clickpipe_cdc_lag_bytes for {pipe} is negative")
        for name in ("clickpipe_retries_total", "clickpipe_transitions_total"):
            one(after, name, pipe=pipe)
        if one(after, "clickpipe_transitions_total", pipe=pipe) < 3:
            die(f"clickpipe_transitions_total for {pipe} < 3 (Provisioning to Running)")
        lines.append(
            f"{pipe}: {copied:.0f} rows copied, {change['clickpipe_cdc_changes_applied_total']:.0f} "
            f"changes applied ({written} written) in {change['clickpipe_cdc_batches_total']:.0f} "
            f"batches, lag {lag:.0f} bytes")
    print("\n".join(lines))


def cmd_metric_is(args):
    path, name, labels, want = args
    samples, _ = read_metrics(path)
    want_labels = dict(kv.split("=", 1) for kv in labels.split(",") if kv)
    got = one(samples, name, **want_labels)
    if got != float(want):
        die(f"{name}{want_labels} is {got}, want {want}")


def cmd_metric_value(args):
    path, name, labels = args
    samples, _ = read_metrics(path)
    want_labels = dict(kv.split("=", 1) for kv in labels.split(",") if kv)
    print(f"{one(samples, name, **want_labels):.0f}")


def cmd_metric_above(args):
    path, name, labels, floor = args
    samples, _ = read_metrics(path)
    want_labels = dict(kv.split("=", 1) for kv in labels.split(",") if kv)
    got = one(samples, name, **want_labels)
    if not got > float(floor):
        die(f"{name}{want_labels} is {got}, want more than {floor}")


def status_docs(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    try:
        doc = json.loads(text)
    except ValueError:
        die(f"status --json is not JSON: {text[:300]}")
    if isinstance(doc, dict) and "pipes" in doc:
        doc = doc["pipes"]
    if isinstance(doc, dict):
        doc = [doc]
    return {d.get("id"): d for d in doc if isinstance(d, dict)}


def cmd_status_json(args):
    path, spec = args
    spec = json.loads(spec)
    docs = status_docs(path)
    for pipe, p in spec["pipes"].items():
        d = docs.get(pipe)
        if d is None:
            die(f"status --json does not list {pipe}: ids {list(docs)}")
        if d.get("live") is not True:
            die(f"{pipe}: live is {d.get('live')!r}, want true (a running process publishes it)")
        if not RFC3339_RE.match(str(d.get("published_at"))):
            die(f"{pipe}: published_at {d.get('published_at')!r} is not RFC 3339")
        if d.get("state") != "Running":
            die(f"{pipe}: state {d.get('state')!r}, want Running")
        if "pause" not in (d.get("allowed_commands") or []):
            die(f"{pipe}: allowed_commands {d.get('allowed_commands')} lacks pause")
        cdc = d.get("cdc") or {}
        if not isinstance(cdc.get("lag_bytes"), int):
            die(f"{pipe}: cdc.lag_bytes is {cdc.get('lag_bytes')!r}, want a number")
        for key in ("lag_seconds", "changes_per_s", "last_batch", "tables"):
            if key not in cdc:
                die(f"{pipe}: cdc.{key} is missing")
        if "retries_total" not in d:
            die(f"{pipe}: retries_total is missing")
        load = {qualified(t.get("table", "")): t for t in d.get("snapshot") or []}
        for table, rows in p["snapshot"].items():
            t = load.get(qualified(table))
            if t is None:
                die(f"{pipe}: no snapshot entry for {table}")
            if t.get("rows_copied") != rows:
                die(f"{pipe} {table}: rows_copied {t.get('rows_copied')}, want {rows}")
            if "rows_per_s" not in t or "eta_s" not in t:
                die(f"{pipe} {table}: rows_per_s or eta_s missing")


def cmd_status_table(args):
    path, spec = args
    spec = json.loads(spec)
    text = open(path, encoding="utf-8", errors="replace").read()
    lines = text.splitlines()
    # Thousands separators are fine: 1,500 or 1_500 or 1 500 (thin spaces) read as 1500.
    plain = [re.sub(r"(?<=\d)[,_\u2009\u202f](?=\d{3}(?!\d))", "", l) for l in lines]
    if not any(re.search(r"\blag\b", l, re.I) for l in lines):
        die(f"status shows no lag column:\n{text}")
    for pipe, p in spec["pipes"].items():
        if not any(re.search(rf"(?<![\w.]){re.escape(pipe)}(?!\w)", l) for l in lines):
            die(f"status does not show pipe {pipe}:\n{text}")
        for table, rows in p["snapshot"].items():
            name = re.escape(table.split(".", 1)[-1])
            if not any(re.search(rf"(?<!\w){name}(?!\w)", l) and re.search(rf"(?<![\d.]){rows}(?![\d.])", l)
                       for l in plain):
                die(f"status shows no line with table {table} and its {rows} rows:\n{text}")


def cmd_settings_json(args):
    path, pipe, pairs = args[0], args[1], args[2:]
    d = status_docs(path).get(pipe)
    if d is None:
        die(f"status --json does not list {pipe}")
    for pair in pairs:
        key, value = pair.split("=", 1)
        got = (d.get("settings") or {}).get(key)
        if str(got) != value:
            die(f"{pipe}: settings.{key} is {got!r}, want {value}")


def cmd_logs(args):
    path, spec = args
    spec = json.loads(spec)
    hidden = secrets()
    events, levels, n = [], {}, 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            for s in hidden:
                if s in line:
                    die(f"log line {n} holds a secret")
            try:
                obj = json.loads(line)
            except ValueError:
                die(f"log line {n} is not JSON: {line[:300]!r}")
            if not isinstance(obj, dict):
                die(f"log line {n} is not a JSON object: {line[:300]!r}")
            if not TIME_RE.match(str(obj.get("time"))):
                die(f"log line {n}: time {obj.get('time')!r} is not RFC 3339 UTC with milliseconds")
            if obj.get("level") not in LEVELS:
                die(f"log line {n}: level {obj.get('level')!r} is not one of {sorted(LEVELS)}")
            if not isinstance(obj.get("msg"), str):
                die(f"log line {n}: no msg string")
            levels[obj["level"]] = levels.get(obj["level"], 0) + 1
            events.append(obj)
    if n == 0:
        die("the log is empty")

    def having(**kv):
        return [e for e in events if all(e.get(k) == v for k, v in kv.items())]

    for e in having(event="transition"):
        for key in ("pipe", "from", "trigger", "to", "kind"):
            if key not in e:
                die(f"a transition event lacks {key}: {json.dumps(e)}")
    for pipe, p in spec["pipes"].items():
        if not having(event="transition", pipe=pipe, trigger="pause", **{"from": "Running", "to": "Pausing"}):
            die(f"{pipe}: no transition event Running -[pause]-> Pausing (started by a command)")
        seen = {e["trigger"] for e in having(event="transition", pipe=pipe)}
        missing = [t for t in p.get("triggers", []) if t not in seen]
        if missing:
            die(f"{pipe}: no transition event with trigger {missing}; seen {sorted(seen)}")
        batches = having(event="batch", pipe=pipe)
        if not batches or not any(isinstance(b.get("changes"), int) and b["changes"] > 0 for b in batches):
            die(f"{pipe}: no batch event with changes > 0")
        for key in ("changes", "wal_bytes", "duration_ms", "end", "lag_bytes", "lag_seconds"):
            if key not in batches[0]:
                die(f"{pipe}: a batch event lacks {key}: {json.dumps(batches[0])}")
    for source in ("control", "http"):
        if not having(event="command", source=source):
            die(f"no command event with source {source}")
    if not [e for e in having(event="partition") if e.get("level") == "debug"]:
        die("no partition event at debug level")
    for name in ("started", "stopping"):
        if not having(event=name):
            die(f"no {name} event")
    kinds = {}
    for e in events:
        kinds[e.get("event", "-")] = kinds.get(e.get("event", "-"), 0) + 1
    print(f"{n} log lines ({', '.join(f'{k} {v}' for k, v in sorted(levels.items()))}); events: "
          + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()) if k != "-"))


COMMANDS = {
    "port": cmd_port,
    "wait": cmd_wait,
    "field": cmd_field,
    "expect": cmd_expect,
    "scrape": cmd_scrape,
    "metrics-wait": cmd_metrics_wait,
    "metrics-check": cmd_metrics_check,
    "metric-is": cmd_metric_is,
    "metric-value": cmd_metric_value,
    "metric-above": cmd_metric_above,
    "status-json": cmd_status_json,
    "status-table": cmd_status_table,
    "settings-json": cmd_settings_json,
    "logs": cmd_logs,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        die(f"usage: ops_helper.py {'|'.join(COMMANDS)} ...")
    COMMANDS[sys.argv[1]](sys.argv[2:])
