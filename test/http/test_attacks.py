#!/usr/bin/python3
"""Attack and fault tests of sdr_creds_server over a real socket: slow
clients, pipelining, header floods, hostile JSON bodies, a body fuzzer, JWT
and API key attacks, the server killed with SIGKILL and the database stopped
under load.

Reuses test_http.py's setup (database, role, orgs, keys, JWT secret, server)
on its own database sdr_attacks. Same environment and output contract as
test_http.py: one "ok - name" / "not ok - name" line per test, diagnostics
on "# " lines that never hold a key, token or JWT."""

import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Server, b64url, diag, eq, jwt, parse_raw, pg_ctl, psql,  # noqa: E402
                     raw, request, secret, sql_literal, wait_until)
import harness  # noqa: E402
import test_http as T  # noqa: E402

T.reuse("sdr_attacks", "sdr_attacks_app", os.path.join(os.environ.get("SDR_HTTP_WORK") or "/tmp", "attacks"))
ctx = T.ctx
ORG_A = T.ORG_A
UNAUTHORIZED = T.UNAUTHORIZED
MAX_BODY = 65536  # the server's default --max-body
OK_STATUSES = {200, 201, 413, 422}
GET_SF = "/integration-credentials/provider/attack-base"


def req(method, path, body=None, headers=None, **kw):
    return request(ctx["port"], method, path, body=body, headers=headers, **kw)


key = T.key
expect = T.expect
detail = T.detail


def healthy(port=None):
    r = request(port or ctx["port"], "GET", "/healthz", timeout=5)
    assert r.status == 200, "healthz after the attack: %d %s" % (r.status, r.body[:200])


def setup():
    T.setup()
    # a credential every test can read back
    r = T.store("a", "attack-base", "tok-made-up-attack-base", {"instance_url": "https://x.example.test"})
    assert r.status == 201, "base credential: %r" % r
    ctx["base"] = r.json()
    # an API key that has expired
    out = json.loads(psql("SELECT sdr_creds.create_api_key(%s::uuid, 'expired', now() + interval '1 hour')"
                          % sql_literal(ORG_A)))
    ctx["key_expired"] = secret(out["key"])
    psql("UPDATE sdr_creds.api_keys SET expires_at = now() - interval '1 minute' WHERE id = %s::uuid"
         % sql_literal(out["id"]))


# --- 1. slow client ------------------------------------------------------------

def t_slow_client():
    port = ctx["port"]
    head = b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    n_slow, trickle = 8, 4  # 8 connections, each sends 4 bytes, one per second
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n_slow)]
    stop = threading.Event()
    trickling = threading.Event()
    errors = []

    def slow_sender():
        try:
            for i in range(trickle):
                for s in socks:
                    s.sendall(head[i:i + 1])
                trickling.set()
                if stop.wait(1.0):
                    return
        except OSError as e:
            errors.append(repr(e))

    th = threading.Thread(target=slow_sender, daemon=True)
    th.start()
    try:
        assert trickling.wait(10), "the slow clients did not start"

        def one(_):
            t = time.time()
            r = request(port, "GET", GET_SF, headers=key("a"), timeout=5)
            return r.status, time.time() - t

        t0 = time.time()
        with ThreadPoolExecutor(20) as ex:
            answers = list(ex.map(one, range(20)))
        spent = time.time() - t0
        th.join(10)
        assert th.is_alive() is False, "slow sender stuck"
        eq(sorted(set(s for s, _ in answers)), [200], "statuses of the normal requests")
        worst = max(d for _, d in answers)
        diag("20 requests beside %d slow connections: slowest %.3f s, all in %.3f s" % (n_slow, worst, spent))
        assert worst < 1.0, "a normal request took %.2f s while slow clients trickled" % worst
        # the slow ones: finish them; each is answered (200) or closed, never hangs
        outcomes = []
        for s in socks:
            try:
                s.sendall(head[trickle:])
            except OSError:
                outcomes.append("closed")
                continue
            data = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except socket.timeout:
                outcomes.append("hung")
                continue
            except OSError:
                outcomes.append("closed")
                continue
            outcomes.append(parse_raw(data)[0] if data else "closed")
        diag("slow connections ended as: %r" % outcomes)
        assert "hung" not in outcomes, "a slow connection was neither answered nor closed"
        assert all(o in (200, "closed") for o in outcomes), outcomes
    finally:
        stop.set()
        for s in socks:
            s.close()
    healthy()


# --- 1b. slow connections from one address, request deadline ------------------

PER_ADDR = 64  # the server's default --max-per-addr


def closed(s):
    """True if the server has closed s (EOF or reset); s must be non-blocking."""
    try:
        return s.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def t_slow_flood_per_address():
    """600 connections from 127.0.0.1 dribbling request heads: only PER_ADDR are
    kept (more would take the server's 512 connections), and a client on
    127.0.0.2 keeps getting its answers, each within 100 ms."""
    srv = Server(os.environ["SDR_SERVER"], ctx["conninfo"], os.path.join(T.WORK, "sdr_attacks_flood.log"))
    n = 600
    socks = []
    stop = threading.Event()

    def timed(_):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5, source_address=("127.0.0.2", 0))
        t0 = time.time()
        try:
            r = request(srv.port, "GET", GET_SF, headers=key("a"), conn=conn)
        finally:
            conn.close()
        return time.time() - t0, r

    try:
        # warm up: concurrent requests reach every worker and its database
        # session (a session's first call loads the extension and its plans)
        with ThreadPoolExecutor(16) as ex:
            warm = list(ex.map(timed, range(32)))
        eq(sorted(set(r.status for _, r in warm)), [200], "warm-up statuses")
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow-%d: " % i)
            except OSError:
                pass  # closed at once: over the limit
            s.setblocking(False)
            socks.append(s)
        # the acceptor closes each connection over the limit as it takes it
        gone = set()

        def settled():
            gone.update(i for i, s in enumerate(socks) if i not in gone and closed(s))
            return len(gone) >= n - PER_ADDR
        wait_until(settled, 15)
        eq(n - len(gone), PER_ADDR, "slow connections the server kept from 127.0.0.1")
        kept = [s for i, s in enumerate(socks) if i not in gone]
        rounds = [0]

        def dribble():
            while not stop.wait(0.1):
                rounds[0] += 1
                for s in kept:
                    try:
                        s.send(b"a")
                    except OSError:
                        pass
        th = threading.Thread(target=dribble, daemon=True)
        th.start()
        times, bad = [], []
        for _ in range(50):
            took, r = timed(None)
            times.append(took)
            if r.status != 200 or r.json()["id"] != ctx["base"]["id"]:
                bad.append("%d %s" % (r.status, r.body[:100]))
            time.sleep(0.02)  # spread over a second of dribbling
        stop.set()
        th.join(5)
        assert not bad, "answers to 127.0.0.2: %r" % bad[:5]
        diag("%d slow connections from 127.0.0.1 (%d kept, %d bytes dribbled to each); 50 requests from"
             " 127.0.0.2: slowest %s ms" % (n, len(kept), rounds[0],
                                           ", ".join("%.1f" % (t * 1000) for t in sorted(times)[-3:][::-1])))
        assert rounds[0] >= 3, "the slow connections hardly dribbled (%d rounds)" % rounds[0]
        assert max(times) < 0.1, "a request from 127.0.0.2 took %.0f ms" % (max(times) * 1000)
        still = sum(1 for s in kept if not closed(s))
        eq(still, PER_ADDR, "slow connections still open (default deadline 10 s)")
    finally:
        stop.set()
        for s in socks:
            s.close()
        eq(srv.stop(), 0, "exit status")


def dribbled_until_closed(port, first, drip, limit):
    """Sends first, then one byte of drip every 0.25 s, until the server closes
    the connection; returns (seconds from connecting, bytes received), or
    (None, ...) if still open after limit seconds."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    t0 = time.time()
    got = b""
    try:
        s.sendall(first)
        s.setblocking(False)
        i = 0
        while time.time() - t0 < limit:
            try:
                chunk = s.recv(4096)
                if not chunk:
                    return time.time() - t0, got
                got += chunk
            except BlockingIOError:
                pass
            except OSError:
                return time.time() - t0, got
            try:
                s.send(drip[i % len(drip):i % len(drip) + 1])
            except OSError:
                return time.time() - t0, got
            i += 1
            time.sleep(0.25)
        return None, got
    finally:
        s.close()


def t_request_deadline():
    """With --request-deadline 2: a head or a body dribbled a byte at a time is
    cut off after 2 s; kept-alive requests each get 2 s; a request that waits
    in the database longer than that is still answered."""
    log = os.path.join(T.WORK, "sdr_attacks_deadline.log")
    open(log, "w").close()
    srv = Server(os.environ["SDR_SERVER"], ctx["conninfo"], log, args=("--request-deadline", "2"))
    k = ctx["key_a"].encode()
    try:
        with ThreadPoolExecutor(2) as ex:
            head = ex.submit(dribbled_until_closed, srv.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n",
                             b"X-Slow: aaaa\r\n", 8)
            body = ex.submit(dribbled_until_closed, srv.port,
                             b"POST /integration-credentials/ HTTP/1.1\r\nHost: t\r\nX-API-Key: " + k
                             + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
                             b" ", 8)
            (t_head, got_head), (t_body, got_body) = head.result(), body.result()
        diag("dribbled head closed after %s s, dribbled body after %s s" % (t_head, t_body))
        assert t_head is not None and 1.9 <= t_head <= 4, "dribbled head: closed after %r s" % t_head
        assert t_body is not None and 1.9 <= t_body <= 4, "dribbled body: closed after %r s" % t_body
        eq((got_head, got_body), (b"", b""), "nothing answered to the dribblers")
        # kept alive: each request has 2 s from the previous response
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        statuses = []
        try:
            for i in range(3):
                if i:
                    time.sleep(1.2)  # 2.4 s in all: over the deadline counted from connecting
                statuses.append(request(srv.port, "GET", "/healthz", conn=conn).status)
        finally:
            conn.close()
        eq(statuses, [200, 200, 200], "kept-alive requests 1.2 s apart")
        # a request that waits in the database longer than the deadline is answered
        lock = harness.TableLock()
        result = {}
        th = threading.Thread(target=lambda: result.update(r=request(srv.port, "GET", GET_SF, headers=key("a"),
                                                                     timeout=30)), daemon=True)
        th.start()
        try:
            assert wait_until(lambda: lock.waiters() == 1, 10), "the request is not waiting in the database"
            time.sleep(2.5)  # the time under test: longer than the deadline
            assert "r" not in result, "answered while the table was locked"
        finally:
            lock.release()
        th.join(20)
        assert "r" in result, "no answer after the lock was released"
        expect(result["r"], 200)
    finally:
        code = srv.stop()
    eq(code, 0, "exit status")
    # the log is complete once the server has stopped
    lines = [ln for ln in srv.read_log().splitlines() if "POST /integration-credentials/" in ln]
    eq(len(lines), 1, "access lines of the dribbled POST")
    assert lines[0].endswith("(connection closed early)"), lines[0]


# --- 1c. serialization failures and deadlocks ----------------------------------

TRANSIENT_TRIGGER = """
CREATE FUNCTION public.sdr_test_transient() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.provider = 'attack-serialization' THEN
    RAISE EXCEPTION 'test serialization failure' USING ERRCODE = '40001';
  ELSIF NEW.provider = 'attack-deadlock' THEN
    RAISE EXCEPTION 'test deadlock' USING ERRCODE = '40P01';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER sdr_test_transient BEFORE INSERT OR UPDATE ON sdr_creds.credentials
  FOR EACH ROW EXECUTE FUNCTION public.sdr_test_transient();
"""


def t_transient_sqlstates():
    """A serialization failure (40001) or deadlock (40P01) is answered 503 with
    Retry-After, not 500; the pooled connection stays usable."""
    psql(TRANSIENT_TRIGGER)
    try:
        for provider in ("attack-serialization", "attack-deadlock"):
            for _ in range(3):  # every pooled connection may serve one
                r = T.store("a", provider, "tok-made-up-transient")
                expect(r, 503, "Service unavailable")
                eq(r.header("retry-after"), "1", "Retry-After (%s)" % provider)
                eq(r.json(), {"detail": "Service unavailable"}, "body")
        expect(T.store("a", "attack-after-transient", "tok-made-up-after"), 201)
    finally:
        psql("DROP TRIGGER IF EXISTS sdr_test_transient ON sdr_creds.credentials; "
             "DROP FUNCTION IF EXISTS public.sdr_test_transient()")
    # without the trigger the same request is stored: the 503 came from it
    expect(T.store("a", "attack-serialization", "tok-made-up-transient"), 201)


# --- 2. pipelining -------------------------------------------------------------

def parse_all(data):
    """Every response in data (Content-Length framed): [(status, headers, body)]."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError("truncated response head: %r" % head[:200])
        status, headers = harness.parse_head(head)
        n = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out


def t_pipelining():
    k = ctx["key_a"].encode()
    body = json.dumps({"provider": "attack-pipe", "access_token": secret("tok-made-up-pipe")}).encode()
    reqs = [
        (b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", 200),
        (b"GET " + GET_SF.encode() + b" HTTP/1.1\r\nHost: t\r\nX-API-Key: " + k + b"\r\n\r\n", 200),
        (b"POST /integration-credentials/ HTTP/1.1\r\nHost: t\r\nX-API-Key: " + k
         + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body, (200, 201)),
        (b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", 404),
        (b"GET /integration-credentials/not-a-uuid HTTP/1.1\r\nHost: t\r\nX-API-Key: " + k + b"\r\n\r\n", 422),
        (b"GET /integration-credentials/provider/attack-pipe HTTP/1.1\r\nHost: t\r\nX-API-Key: " + k + b"\r\n\r\n", 200),
        (b"GET /integration-credentials/ HTTP/1.1\r\nHost: t\r\n\r\n", 401),
        (b"PUT /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 405),
        (b"GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 200),
    ]
    data = raw(ctx["port"], b"".join(r for r, _ in reqs), timeout=10)
    answers = parse_all(data)
    got = [s for s, _, _ in answers]
    eq(len(answers), len(reqs), "number of responses (statuses %r)" % got)
    for (_, want), (status, headers, body) in zip(reqs, answers):
        assert status == want or (isinstance(want, tuple) and status in want), \
            "statuses in order: expected %r, got %r" % ([w for _, w in reqs], got)
        eq(headers.get("content-type"), "application/json", "Content-Type")
    eq(json.loads(answers[1][2])["id"], ctx["base"]["id"], "second answer is the base credential")
    eq(json.loads(answers[5][2])["access_token"], "tok-made-up-pipe", "read after pipelined write")
    healthy()


# --- 3. thousands of headers -----------------------------------------------------

def t_header_flood():
    bad = []
    for name, hdrs in [("3000 headers of ~12 bytes", b"".join(b"X-H%04d: v\r\n" % i for i in range(3000))),
                       ("3000 tiny headers (15 KB)", b"a: b\r\n" * 3000),
                       ("3000 headers with a key", b"X-API-Key: " + ctx["key_a"].encode() + b"\r\n"
                        + b"".join(b"X-H%04d: v\r\n" % i for i in range(3000)))]:
        for path in (b"/healthz", GET_SF.encode()):
            out = raw(ctx["port"], b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n" + hdrs
                      + b"Connection: close\r\n\r\n", timeout=10)
            status = parse_raw(out)[0] if out else None
            if status not in (400, 431):
                bad.append("%s on %s: %r" % (name, path.decode(), status))
            else:
                diag("%s on %s -> %d" % (name, path.decode(), status))
    assert not bad, "\n".join(bad)
    healthy()


# --- 4. hostile JSON bodies ------------------------------------------------------

def padded(n):
    """A valid body of exactly n bytes (whitespace padding)."""
    start = b'{"provider": "attack-big", "access_token": "tok-made-up-big"'
    return start + b" " * (n - len(start) - 1) + b"}"


def t_json_bodies():
    deep = 10000
    cases = [
        # (name, body, allowed statuses)
        ("10000 levels of [", b"[" * deep, {422}),
        ("10000 levels of [ closed", b"[" * deep + b"]" * deep, {422}),
        ("10000 levels of { in metadata", b'{"provider":"attack-deep","access_token":"tok-made-up-d","metadata":'
         + b'{"a":' * deep + b"1" + b"}" * deep + b"}", {201, 200, 422}),
        ("10000 levels of [ in metadata", b'{"provider":"attack-deep","access_token":"tok-made-up-d","metadata":{"a":'
         + b"[" * deep + b"]" * deep + b"}}", {201, 200, 422}),
        ("exactly --max-body bytes", padded(MAX_BODY), {201, 200}),
        ("--max-body + 1 bytes", padded(MAX_BODY + 1), {413}),
        ("4 x --max-body bytes", padded(4 * MAX_BODY), {413}),
        ("provider null", b'{"provider": null, "access_token": "tok-made-up-x"}', {422}),
        ("provider array", b'{"provider": ["a"], "access_token": "tok-made-up-x"}', {422}),
        ("provider bool", b'{"provider": true, "access_token": "tok-made-up-x"}', {422}),
        ("access_token object", b'{"provider": "attack-x", "access_token": {"a": 1}}', {422}),
        ("access_token null", b'{"provider": "attack-x", "access_token": null}', {422}),
        ("metadata array", b'{"provider": "attack-x", "access_token": "tok-made-up-x", "metadata": [1]}', {422}),
        ("metadata number", b'{"provider": "attack-x", "access_token": "tok-made-up-x", "metadata": 1e999}', {422}),
        ("invalid UTF-8 in provider", b'{"provider": "attack-\xc3\x28", "access_token": "tok-made-up-x"}', {422}),
        ("overlong UTF-8 encoding", b'{"provider": "attack-x", "access_token": "\xc0\xaf"}', {422}),
        ("UTF-16 surrogate bytes", b'{"provider": "attack-x", "access_token": "\xed\xa0\x80"}', {422}),
        ("escaped lone surrogate", b'{"provider": "attack-x", "access_token": "\\ud800"}', {200, 201, 422}),
        ("escaped NUL", b'{"provider": "attack-x", "access_token": "a\\u0000b"}', {200, 201, 422}),
        ("raw NUL after the object", b'{"provider": "attack-x", "access_token": "tok-made-up-x"}\x00', {422}),
        ("raw NUL in a key", b'{"provi\x00der": "attack-x", "access_token": "tok-made-up-x"}', {422}),
        ("empty body", b"", {422}),
        ("whitespace only", b" \r\n\t ", {422}),
        ("null", b"null", {422}),
        ("a number", b"42", {422}),
        ("a huge number", b"1" * 5000, {422}),
        ("a string", b'"provider"', {422}),
        ("true", b"true", {422}),
        ("two objects", b'{"provider": "attack-x", "access_token": "t"}{"provider": "attack-y", "access_token": "t"}',
         {422}),
        ("trailing comma", b'{"provider": "attack-x", "access_token": "tok-made-up-x",}', {422}),
        ("single quotes", b"{'provider': 'attack-x', 'access_token': 'tok-made-up-x'}", {422}),
        ("BOM before the object", b'\xef\xbb\xbf{"provider": "attack-x", "access_token": "tok-made-up-x"}',
         {200, 201, 422}),
    ]
    secret("tok-made-up-x")
    bad = []
    for name, body, allowed in cases:
        try:
            r = req("POST", "/integration-credentials/", body, key("a"), timeout=30)
        except OSError as e:
            bad.append("%s: connection error %r" % (name, e))
            continue
        if r.status not in allowed or r.header("content-type") != "application/json":
            bad.append("%s: %d (allowed %s) %s" % (name, r.status, sorted(allowed), r.body[:150]))
        elif r.status == 422 and not detail(r):
            bad.append("%s: 422 without detail" % name)
        else:
            diag("%s -> %d" % (name, r.status))
    # duplicate keys: the last one wins (PostgreSQL jsonb semantics) or 422
    r = req("POST", "/integration-credentials/",
            b'{"provider": "attack-dup-a", "provider": "attack-dup-b", "access_token": "tok-made-up-dup1",'
            b' "access_token": "tok-made-up-dup2", "metadata": {}}', key("a"))
    secret("tok-made-up-dup1")
    secret("tok-made-up-dup2")
    if r.status in (200, 201):
        o = r.json()
        diag("duplicate keys -> %d: provider %r, access_token from the %s occurrence" % (
            r.status, o["provider"], "last" if o["access_token"].endswith("dup2") else "first"))
        g = req("GET", "/integration-credentials/provider/" + o["provider"], headers=key("a"))
        if g.status != 200 or g.json()["access_token"] != o["access_token"]:
            bad.append("duplicate keys: stored object differs from the answer (%d)" % g.status)
        other = "attack-dup-a" if o["provider"] == "attack-dup-b" else "attack-dup-b"
        if req("GET", "/integration-credentials/provider/" + other, headers=key("a")).status != 404:
            bad.append("duplicate keys: both providers stored")
    elif r.status == 422:
        diag("duplicate keys -> 422")
    else:
        bad.append("duplicate keys: %d %s" % (r.status, r.body[:150]))
    assert not bad, "\n".join(bad)
    healthy()
    expect(req("GET", GET_SF, headers=key("a")), 200)


# --- 5. body fuzz ----------------------------------------------------------------

INSERTS = [b'"', b"{", b"}", b"[", b"]", b",", b":", b"\\", b"\\u", b"\\ud83d", b"\x00", b"\xff", b"\xc3",
           "é".encode(), "😀".encode(), "\u2028".encode(), b"null", b"1e400", b"-", b" ", b"\n", b"'"]


def mutate(rng, base):
    b = bytearray(base)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        if op == 0 and b:  # flip a byte
            i = rng.randrange(len(b))
            b[i] = rng.randrange(256)
        elif op == 1 and b:  # flip one bit
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 2:  # truncate
            del b[rng.randrange(len(b) + 1):]
        elif op == 3:  # insert something nasty
            i = rng.randrange(len(b) + 1)
            b[i:i] = rng.choice(INSERTS) * rng.choice((1, 1, 1, 2, 50))
        elif b:  # delete a span
            i = rng.randrange(len(b))
            del b[i:i + rng.randint(1, 8)]
    return bytes(b)


def t_body_fuzz():
    base = json.dumps({"provider": "attack-fuzz", "dsn": "https://fuzz.example.test",
                       "access_token": secret("tok-made-up-fuzz"),
                       "metadata": {"instance_url": "https://fuzz.example.test", "n": [1, 2.5, True, None]}}).encode()
    expect(req("POST", "/integration-credentials/", base, key("a")), 201)
    rng = random.Random(20261125)
    bodies = [mutate(rng, base) for _ in range(2000)]
    port = ctx["port"]
    k = key("a")

    def worker(chunk):
        got = []
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        try:
            for i, body in chunk:
                for attempt in (0, 1):
                    try:
                        r = request(port, "POST", "/integration-credentials/", body, k, conn=conn)
                        got.append((i, r.status, r.header("content-type")))
                        if r.header("connection") == "close":
                            conn.close()
                        break
                    except (OSError, http.client.HTTPException) as e:
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
                        if attempt:
                            got.append((i, "error " + type(e).__name__, None))
        finally:
            conn.close()
        return got

    t0 = time.time()
    indexed = list(enumerate(bodies))
    with ThreadPoolExecutor(4) as ex:
        results = [x for part in ex.map(worker, [indexed[j::4] for j in range(4)]) for x in part]
    harness.seen[:] = [s for s in harness.seen if s[1] != "/integration-credentials/"]  # keep memory small
    counts = {}
    for _, status, _ in results:
        counts[status] = counts.get(status, 0) + 1
    diag("%d fuzzed bodies in %.1f s: %r" % (len(results), time.time() - t0, counts))
    eq(len(results), len(bodies), "answers")
    bad = [(i, s) for i, s, ct in results if s not in OK_STATUSES or ct != "application/json"]
    assert not bad, "%d unexpected answers (body index, status): %r" % (len(bad), bad[:15])
    healthy()
    r = req("GET", "/integration-credentials/provider/attack-fuzz", headers=key("a"))
    expect(r, 200)
    eq(r.json()["provider"], "attack-fuzz", "provider")
    expect(req("GET", GET_SF, headers=key("a")), 200)


# --- 6. JWT and API key attacks -----------------------------------------------------

def forge(header, claims_json, key_bytes, sig_alg="sha256"):
    """A JWT from a raw header dict and raw claims bytes, HMAC-signed with key_bytes."""
    import hashlib
    import hmac
    signing = b64url(json.dumps(header).encode()) + "." + b64url(claims_json)
    sig = hmac.new(key_bytes, signing.encode(), getattr(hashlib, sig_alg)).digest()
    return secret(signing + "." + b64url(sig))


def t_jwt_attacks():
    s = ctx["jwt_secret"]
    now = int(time.time())
    good = {"org_id": ORG_A, "exp": now + 600}
    valid = jwt(s, good)
    r = req("GET", GET_SF, headers={"Authorization": "Bearer " + valid})
    expect(r, 200)
    eq(r.json()["id"], ctx["base"]["id"], "valid JWT reads org A's credential")
    cj = json.dumps(good).encode()
    cases = {
        "alg none": jwt(s, good, header={"alg": "none", "typ": "JWT"}, sign=False),
        "alg None, HS256 signature": forge({"alg": "None", "typ": "JWT"}, cj, s),
        "alg hs256 (lower case)": forge({"alg": "hs256", "typ": "JWT"}, cj, s),
        "HS512": forge({"alg": "HS512", "typ": "JWT"}, cj, s, "sha512"),
        "HS384": forge({"alg": "HS384", "typ": "JWT"}, cj, s, "sha384"),
        "RS256 header, HMAC with the secret": forge({"alg": "RS256", "typ": "JWT"}, cj, s),
        "no alg": forge({"typ": "JWT"}, cj, s),
        "signature from another secret": jwt(os.urandom(32).hex().encode(), good),
        "truncated signature": secret(valid[:-3]),
        "signature removed": secret(valid.rsplit(".", 1)[0] + "."),
        "signature of another token": secret(valid.rsplit(".", 1)[0] + "." + jwt(s, {**good, "x": 1}).rsplit(".", 1)[1]),
        "claims swapped after signing": secret(valid.split(".")[0] + "." + b64url(json.dumps(
            {"org_id": T.ORG_B, "exp": now + 600}).encode()) + "." + valid.split(".")[2]),
        "expired 60 s ago": jwt(s, {"org_id": ORG_A, "exp": now - 60}),
        "expired long ago": jwt(s, {"org_id": ORG_A, "exp": 1}),
        "exp a string": jwt(s, {"org_id": ORG_A, "exp": str(now + 600)}),
        "nbf 5 min ahead": jwt(s, {"org_id": ORG_A, "exp": now + 600, "nbf": now + 300}),
        "no org_id": jwt(s, {"exp": now + 600}),
        "org_id not a UUID": jwt(s, {"org_id": "not-a-uuid", "exp": now + 600}),
        "org_id SQL": jwt(s, {"org_id": "' OR '1'='1", "exp": now + 600}),
        "org_id a number": jwt(s, {"org_id": 12345, "exp": now + 600}),
        "org_id an array": jwt(s, {"org_id": [ORG_A], "exp": now + 600}),
        "org_id twice": forge({"alg": "HS256", "typ": "JWT"}, ('{"org_id": "%s", "org_id": "%s", "exp": %d}'
                                                               % (T.ORG_B, ORG_A, now + 600)).encode(), s),
        "claims not JSON": forge({"alg": "HS256", "typ": "JWT"}, b"not json", s),
        "6 KB garbage token": secret("eyJ" + "A" * 6144),
        "6 KB of dots": secret("." * 6144),
        "two tokens": secret(valid + " " + valid),
    }
    bad = []
    for name, tok in cases.items():
        r = req("GET", GET_SF, headers={"Authorization": "Bearer " + tok})
        if r.status != 401 or r.header("www-authenticate") != 'Bearer error="invalid_token"' or detail(r) != UNAUTHORIZED:
            bad.append("JWT %s: %d %s %s" % (name, r.status, r.header("www-authenticate"), r.body[:120]))
    live = ctx["key_a"]
    assert live.startswith("sk_live_"), "API keys start with sk_live_"
    keys = {
        "revoked key": ctx["key_revoked"],
        "expired key": ctx["key_expired"],
        "sk_test_ prefix on a live key": secret("sk_test_" + live[len("sk_live_"):]),
        "prefix of a real key": secret(live[:len(live) // 2]),
        "real key minus its last character": secret(live[:-1]),
        "real key plus a character": secret(live + "0"),
        "real key upper-cased": secret(live.upper()),
        "real key with a trailing space encoded": secret(live + "%20"),
        "empty": "",
        "6 KB key": secret("sk_live_" + "a" * 6144),
        "6 KB key starting with a real one": secret(live + "a" * 6144),
    }
    for name, k in keys.items():
        r = req("GET", GET_SF, headers={"X-API-Key": k})
        if r.status != 401 or r.header("www-authenticate") != "Bearer" or detail(r) != UNAUTHORIZED:
            bad.append("API key %s: %d %s %s" % (name, r.status, r.header("www-authenticate"), r.body[:120]))
    assert not bad, "\n".join(bad)
    expect(req("GET", GET_SF, headers=key("a")), 200)


# --- 7a. SIGKILL after acknowledged writes --------------------------------------------

def t_sigkill_no_lost_writes():
    log = os.path.join(T.WORK, "sdr_attacks_kill.log")
    srv = Server(os.environ["SDR_SERVER"], ctx["conninfo"], log)
    acked = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w):
        n = 0
        while not stop.is_set():
            n += 1
            provider, token = "attack-kill-%d-%d" % (w, n), secret("tok-made-up-kill-%d-%d" % (w, n))
            body = json.dumps({"provider": provider, "access_token": token})
            try:
                r = request(srv.port, "POST", "/integration-credentials/", body, key("a"), timeout=5)
            except (OSError, http.client.HTTPException):
                return  # the server is gone
            if r.status in (200, 201):
                with lock:
                    acked[provider] = (token, r.json()["id"])

    try:
        threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(6)]
        for th in threads:
            th.start()
        assert wait_until(lambda: len(acked) >= 150, 20), "only %d writes acknowledged" % len(acked)
        srv.signal(signal.SIGKILL)  # while the writers are still writing
        srv.wait(10)
        stop.set()
        for th in threads:
            th.join(10)
        eq(srv.proc.returncode, -signal.SIGKILL, "killed")
    finally:
        stop.set()
        srv.stop()
    with lock:
        acked_now = dict(acked)
    srv2 = Server(os.environ["SDR_SERVER"], ctx["conninfo"], log)
    try:
        missing = []
        for provider, (token, cid) in sorted(acked_now.items()):
            r = request(srv2.port, "GET", "/integration-credentials/provider/" + provider, headers=key("a"))
            if r.status != 200 or r.json()["access_token"] != token or r.json()["id"] != cid:
                missing.append("%s: %d" % (provider, r.status))
        diag("%d acknowledged writes before SIGKILL; %d not readable after the restart"
             % (len(acked_now), len(missing)))
        assert not missing, "acknowledged writes lost: %r" % missing[:10]
        expect(request(srv2.port, "GET", GET_SF, headers=key("a")), 200)
        expect(request(srv2.port, "GET", "/readyz"), 200)
    finally:
        srv2.stop()
    psql("DELETE FROM sdr_creds.credentials WHERE provider LIKE 'attack-kill-%'", check_rc=False)


# --- 7b. database stopped and started under load ------------------------------------

WRK_LUA = r"""
wrk.method = "GET"
wrk.path = os.getenv("SDR_WRK_PATH")
wrk.headers["X-API-Key"] = os.getenv("SDR_WRK_KEY")
counts = {}
no_retry = 0
threads = {}
setup = function(thread) table.insert(threads, thread) end
response = function(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if status == 503 and headers["Retry-After"] == nil and headers["retry-after"] == nil then
    no_retry = no_retry + 1
  end
end
done = function(summary, latency, requests)
  local all, nr = {}, 0
  for _, t in ipairs(threads) do
    for s, n in pairs(t:get("counts")) do all[s] = (all[s] or 0) + n end
    nr = nr + t:get("no_retry")
  end
  local parts = {}
  for s, n in pairs(all) do table.insert(parts, '"' .. s .. '": ' .. n) end
  io.write("SDRCOUNTS {" .. table.concat(parts, ", ") .. "} " .. nr .. "\n")
end
"""


def t_db_outage_under_load():
    port = ctx["port"]
    pid = ctx["server"].proc.pid
    # credentials written before the outage
    before = {}
    for i in range(10):
        r = T.store("a", "attack-outage-%d" % i, "tok-made-up-outage-%d" % i)
        assert r.status in (200, 201), r
        before["attack-outage-%d" % i] = r.json()
    wrk = shutil.which("wrk") or ("/usr/bin/wrk" if os.access("/usr/bin/wrk", os.X_OK) else None)
    wrk_proc = None
    if wrk:
        script = os.path.join(T.WORK, "counts.lua")
        with open(script, "w") as f:
            f.write(WRK_LUA)
        env = dict(os.environ, SDR_WRK_KEY=ctx["key_a"], SDR_WRK_PATH=GET_SF)
        wrk_proc = subprocess.Popen([wrk, "-t1", "-c8", "-d7s", "-s", script, "http://127.0.0.1:%d" % port],
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    else:
        diag("wrk not found: Python probes only")
    # probes: 4 threads, each noting (time, status, Retry-After)
    stop = threading.Event()
    probes = []
    lock = threading.Lock()

    def probe():
        conn = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                r = request(port, "GET", GET_SF, headers=key("a"), conn=conn)
                item = (time.time(), r.status, r.header("retry-after"), r.header("content-type"))
            except (OSError, http.client.HTTPException) as e:
                if conn:
                    conn.close()
                conn = None
                item = (time.time(), "error " + type(e).__name__, None, None)
            with lock:
                probes.append(item)
            time.sleep(0.01)
        if conn:
            conn.close()

    threads = [threading.Thread(target=probe, daemon=True) for _ in range(4)]
    for th in threads:
        th.start()
    down = up = None
    try:
        time.sleep(1.0)
        pg_ctl("-m", "fast", "stop")
        down = time.time()
        time.sleep(2.0)  # a real outage, not just a restart
    finally:
        if down is not None:
            pg_ctl("start")
            up = time.time()
        else:
            stop.set()
            if wrk_proc:
                wrk_proc.kill()
                wrk_proc.wait()
    recovered = wait_until(lambda: req("GET", GET_SF, headers=key("a")).status == 200, 15)
    t_ok = time.time()
    time.sleep(0.5)
    stop.set()
    for th in threads:
        th.join(15)
    wrk_out = wrk_proc.communicate(timeout=30)[0] if wrk_proc else ""
    assert recovered, "no 200 within 15 s after the database came back"
    eq(ctx["server"].proc.poll(), None, "server still running")
    eq(ctx["server"].proc.pid, pid, "same server process")
    diag("database down %.1f s; first 200 %.2f s after it was back" % (up - down, t_ok - up))
    with lock:
        seen_probes = list(probes)
    counts = {}
    for _, st, _, _ in seen_probes:
        counts[st] = counts.get(st, 0) + 1
    diag("probe answers: %r" % counts)
    bad = [p for p in seen_probes if p[1] not in (200, 503)]
    assert not bad, "probe answers other than 200/503: %r" % [p[1] for p in bad[:10]]
    no_retry = [p for p in seen_probes if p[1] == 503 and not p[2]]
    assert not no_retry, "%d 503 answers without Retry-After" % len(no_retry)
    assert all(p[3] == "application/json" for p in seen_probes), "Content-Type"
    # well inside the outage (0.5 s after the stop, 0.5 s before the start) every answer is 503
    during = [p for p in seen_probes if down + 0.5 < p[0] < up - 0.5]
    assert during, "no probe answered during the outage"
    eq(sorted(set(p[1] for p in during)), [503], "statuses during the outage")
    late = [p for p in seen_probes if p[0] > t_ok + 0.1]
    assert late and all(p[1] == 200 for p in late), "after recovery: %r" % sorted(set(p[1] for p in late))
    if wrk_proc:
        line = [ln for ln in wrk_out.splitlines() if ln.startswith("SDRCOUNTS ")]
        assert line, "wrk printed no counts: %s" % wrk_out[-500:]
        m = re.match(r"SDRCOUNTS (\{.*\}) (\d+)$", line[0])
        assert m, "wrk counts line unreadable"
        js, nr = m.group(1), m.group(2)
        wc = {int(k): v for k, v in json.loads(js).items()}
        diag("wrk answers: %r" % wc)
        assert set(wc) <= {200, 503}, "wrk saw statuses other than 200/503: %r" % wc
        assert wc.get(200, 0) > 0, "wrk saw no 200"
        eq(int(nr), 0, "wrk: 503 answers without Retry-After")
    expect(req("GET", "/readyz"), 200)
    lost = []
    for provider, o in before.items():
        r = req("GET", "/integration-credentials/provider/" + provider, headers=key("a"))
        if r.status != 200 or r.json() != o:
            lost.append("%s: %d" % (provider, r.status))
    assert not lost, "credentials written before the outage: %r" % lost
    eq(req("GET", GET_SF, headers=key("a")).json(), ctx["base"], "base credential")


def t_log_no_secrets():
    T.check_log_has_no_secrets(ctx["log"])
    for name in ("sdr_attacks_kill.log", "sdr_attacks_flood.log", "sdr_attacks_deadline.log"):
        path = os.path.join(T.WORK, name)
        if os.path.exists(path):
            T.check_log_has_no_secrets(path)


def t_final_stop():
    srv = ctx.pop("server")
    eq(srv.stop(), 0, "exit status after SIGTERM")
    log = srv.read_log()
    assert "runtime error" not in log and "Sanitizer" not in log, "sanitizer report in the log"


def main():
    tests = [
        ("http attacks: slow clients do not delay other requests", t_slow_client),
        ("http attacks: 600 slow connections from one address: it keeps 64, another address is answered"
         " within 100 ms", t_slow_flood_per_address),
        ("http attacks: a dribbled request head or body is cut off at the request deadline", t_request_deadline),
        ("http attacks: serialization failure and deadlock get 503 + Retry-After", t_transient_sqlstates),
        ("http attacks: pipelined requests answered in order", t_pipelining),
        ("http attacks: 3000 headers get 400/431, server stays up", t_header_flood),
        ("http attacks: hostile JSON bodies get 200/201/413/422, never 500", t_json_bodies),
        ("http attacks: 2000 fuzzed bodies, no 500", t_body_fuzz),
        ("http attacks: forged JWTs and API keys get 401", t_jwt_attacks),
        ("http attacks: SIGKILL loses no acknowledged write", t_sigkill_no_lost_writes),
        ("http attacks: database outage under load gives 503 + Retry-After, then recovers", t_db_outage_under_load),
        ("http attacks: logs hold no key, token or JWT", t_log_no_secrets),
        ("http attacks: server stops cleanly on SIGTERM", t_final_stop),
    ]
    return T.run_suite("http attacks", setup, tests,
                       lambda: (ctx.get("log"), os.path.join(T.WORK, "sdr_attacks_kill.log")), timed=True)


if __name__ == "__main__":
    sys.exit(main())
