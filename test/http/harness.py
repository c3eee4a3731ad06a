"""Helpers for the HTTP tests: TAP-style results, redacted diagnostics, the
throwaway database, starting and stopping sdr_creds_server, raw HTTP requests
and HS256 JWTs. Standard library only."""

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))

# Every secret a test handles (API keys, JWTs, the JWT secret, made-up tokens)
# is registered here; diagnostics and failure messages are scrubbed of them.
SECRETS = set()

results = {"passed": 0, "failed": 0}


def secret(value):
    """Registers value as a secret and returns it."""
    if value:
        SECRETS.add(value)
    return value


def redact(text):
    text = str(text)
    for s in sorted(SECRETS, key=len, reverse=True):
        text = text.replace(s, "[redacted]")
    return text


def diag(msg):
    for line in redact(msg).splitlines() or [""]:
        print("# " + line, flush=True)


def check(name, fn, *args):
    """Runs one test: prints "ok - name" or "not ok - name" and diagnostics."""
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 - any failure is a test failure
        results["failed"] += 1
        print("not ok - " + name, flush=True)
        if isinstance(e, AssertionError):
            diag(str(e) or "assertion failed")
            tb = traceback.extract_tb(e.__traceback__)
            diag("at %s line %d" % (os.path.basename(tb[-1].filename), tb[-1].lineno))
        else:
            diag("".join(traceback.format_exception(type(e), e, e.__traceback__))[-2000:])
        return False
    results["passed"] += 1
    print("ok - " + name, flush=True)
    return True


def eq(actual, expected, what=""):
    assert actual == expected, "%s: expected %r, got %r" % (what or "value", expected, actual)


# --- database --------------------------------------------------------------

def psql(sql, db=None, check_rc=True, timeout=60):
    """Runs SQL with psql as the cluster superuser; returns stdout (unaligned)."""
    cmd = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db or os.environ["SDR_HTTP_DB"], "-c", sql]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check_rc and p.returncode != 0:
        raise AssertionError("psql failed: " + p.stderr.strip()[:500])
    return p.stdout.strip()


def pg_ctl(*args):
    """Runs pg_ctl on the test cluster (as its owner), e.g. pg_ctl("-m", "fast", "stop")."""
    bindir = os.environ.get("SDR_PG_ROOT", "") + subprocess.run(
        ["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
    d = os.environ["SDR_CLUSTER_DIR"]
    cmd = ["env", *shlex.split(os.environ.get("SDR_PG_ENV", "")), os.path.join(bindir, "pg_ctl"),
           "-D", os.path.join(d, "data"), "-l", os.path.join(d, "postgres.log"), "-w", "-t", "60", *args]
    if os.getuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, "pg_ctl %s failed: %s" % (args[0], (p.stdout + p.stderr)[-500:])


class TableLock:
    """ACCESS EXCLUSIVE on a table, held by a psql session until release():
    requests that touch the table wait in the database meanwhile."""

    def __init__(self, table="sdr_creds.credentials", db=None):
        self.hold("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE" % table,
                  "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                  "WHERE c.relname = %s AND l.mode = 'AccessExclusiveLock' AND l.granted"
                  % sql_literal(table.split(".")[-1]), "lock on %s" % table, db)

    def hold(self, sql, held_query, what, db, app="sdr_lock"):
        """Runs sql in a transaction left open, until held_query answers 1."""
        self.db = db or os.environ["SDR_HTTP_DB"]
        self.proc = subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.db],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, text=True,
                                     env=dict(os.environ, PGAPPNAME=app))
        self.proc.stdin.write("BEGIN;\n%s;\n" % sql)
        self.proc.stdin.flush()
        if not wait_until(lambda: psql(held_query, db=self.db) == "1", 10):
            self.release()
            raise AssertionError(what + " not taken")

    def waiters(self):
        """Server connections waiting for a lock in this database."""
        return int(psql("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                        "AND application_name = 'sdr_creds_server' AND wait_event_type = 'Lock'"
                        % sql_literal(self.db), db=self.db))

    def release(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("COMMIT;\n")
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class RowLock(TableLock):
    """FOR UPDATE on the credentials a WHERE clause selects, held by a psql
    session until release(): writes to those rows wait meanwhile."""

    def __init__(self, where, db=None):
        # held once the SELECT is done: its lock granted, the session idle again
        self.hold("SELECT 1 FROM sdr_creds.credentials WHERE %s FOR UPDATE" % where,
                  "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                  "WHERE a.application_name = 'sdr_row_lock' AND a.state = 'idle in transaction' "
                  "AND l.relation = 'sdr_creds.credentials'::regclass AND l.mode = 'RowShareLock' "
                  "AND l.granted", "row lock", db, app="sdr_row_lock")


def sql_literal(s):
    return "'" + s.replace("'", "''") + "'"


# --- server ----------------------------------------------------------------

class Server:
    """One sdr_creds_server process, on a free loopback port, logging to a file."""

    def __init__(self, binary, conninfo, log_path, args=()):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.start_offset = self.log.tell()
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1", "--port", "0", "--db", conninfo, "--log-level", "info", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        self.port = None
        deadline = time.time() + 15
        while time.time() < deadline and self.port is None:
            m = re.search(r"listening on 127\.0\.0\.1 port (\d+)", self.read_log())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None:
                break
            else:
                time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise RuntimeError("server did not start: " + self.read_log()[-1000:])

    def read_log(self, offset=None):
        with open(self.log_path, "r", errors="replace") as f:
            f.seek(self.start_offset if offset is None else offset)
            return f.read()

    def log_size(self):
        return os.path.getsize(self.log_path)

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()
        return self.proc.returncode


# --- HTTP ------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self, ordered=False):
        return json.loads(self.body, object_pairs_hook=list if ordered else None)

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


# every response the tests saw, to check Content-Type on all of them
seen = []

# With SDR_HTTP_RECORD set (test/run.sh), every answer request() gets, and
# the first answer raw() gets to a well-formed request line, is also appended
# to that file, one JSON line each, for test/openapi to check against
# /openapi.json. Secrets in bodies are replaced by "[redacted]" (a string
# stays a string); the file is the test run's and is removed with it.
RECORD = os.environ.get("SDR_HTTP_RECORD")
_record_lock = threading.Lock()


def _redacted(value):
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value


def record(method, path, resp):
    """Appends one answer to SDR_HTTP_RECORD (if set)."""
    if not RECORD:
        return
    entry = {"method": method, "path": path, "status": resp.status,
             "content_type": resp.header("content-type"),
             "headers": {k: resp.header(k) for k in ("allow", "www-authenticate", "retry-after")
                         if resp.header(k) is not None},
             "body_bytes": len(resp.body)}
    if resp.body and (resp.header("content-type") or "").startswith("application/json"):
        try:
            entry["body"] = _redacted(json.loads(resp.body))
        except ValueError:
            entry["body_invalid"] = True
    line = json.dumps(entry) + "\n"
    with _record_lock:
        fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def request(port, method, path, body=None, headers=None, timeout=15, conn=None):
    """One request with http.client; path is sent exactly as given."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(body, str):
            body = body.encode()
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        resp = Response(r.status, r.getheaders(), r.read())
    finally:
        if own:
            conn.close()
    seen.append((method, path, resp))
    record(method, path, resp)
    return resp


def raw(port, data, timeout=10):
    """Sends bytes on a fresh socket and returns all bytes received until close
    (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    m = re.match(rb"([A-Z]+) (/\S*) HTTP/1\.1\r\n", data)
    if m and out.startswith(b"HTTP/1.1 "):
        # the first answer, to the first request (the only one if not pipelined)
        try:
            status, headers, body = parse_raw(out)
        except (ValueError, IndexError):
            return out  # not a whole answer: the tests that get one say so
        record(m.group(1).decode(), m.group(2).decode("latin-1"), Response(status, headers.items(), body))
    return out


def parse_head(head):
    """Status and headers (lower-case dict) of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers


def parse_raw(data):
    """Status, headers (lower-case dict) and body of the first response in data."""
    head, _, body = data.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    n = int(headers.get("content-length", len(body)))
    return status, headers, body[:n]


# --- JWT -------------------------------------------------------------------

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(secret_key, claims, header=None, sign=True):
    """An HS256 JWT (or, with sign=False, one with an empty signature)."""
    h = header or {"alg": "HS256", "typ": "JWT"}
    signing = b64url(json.dumps(h).encode()) + "." + b64url(json.dumps(claims).encode())
    sig = hmac.new(secret_key, signing.encode(), hashlib.sha256).digest() if sign else b""
    return secret(signing + "." + b64url(sig))


def wait_until(fn, timeout, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    return fn()


def finish():
    sys.stdout.flush()
    return 1 if results["failed"] else 0


def run_tests(tests, timed=False):
    """Runs (name, fn) pairs with check(), skipping names in SDR_HTTP_SKIP."""
    skip = [w for w in os.environ.get("SDR_HTTP_SKIP", "").split(",") if w]
    for name, fn in tests:
        if any(w in fn.__name__ for w in skip):
            diag("skipped (SDR_HTTP_SKIP): " + name)
            continue
        t0 = time.time()
        check(name, fn)
        if timed:
            diag("%.1f s" % (time.time() - t0))


def show_log_tails(paths):
    """After a failure: the last lines of each log that exists."""
    for path in paths:
        if path and os.path.exists(path):
            with open(path, errors="replace") as f:
                diag("last lines of %s:\n%s" % (os.path.basename(path), "".join(f.readlines()[-15:])))


def run_with_setup(label, setup_fn, tests, cleanup, logs=lambda: ()):
    """setup_fn(), the tests (run_tests, timed), the tails of the logs that
    logs() names after a failure, and cleanup() however it went (a failed
    setup is "not ok - <label>: setup"). Returns finish()'s status."""
    try:
        try:
            setup_fn()
        except Exception as e:  # noqa: BLE001 - reported as the setup's failure
            print("not ok - %s: setup" % label, flush=True)
            diag(repr(e))
            results["failed"] += 1
            return finish()
        run_tests(tests, timed=True)
        if results["failed"]:
            show_log_tails(logs())
    finally:
        cleanup()
    return finish()
