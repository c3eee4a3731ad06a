"""Token refresh end to end: sdr_creds_refresher against a real local OAuth
token endpoint (mock_oauth.py, which rotates refresh tokens and answers any
refresh token used twice with invalid_grant) and a real PostgreSQL.

Run by test/refresher/run.sh (PGHOST, PGPORT, SDR_CLUSTER_DIR, SDR_REFRESHER
exported). Prints one "ok - ..." / "not ok - ..." line per test."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "http"))
import harness as h  # noqa: E402

DB = "sdr_refresh_test"
ROLE = "sdr_refresher"
APP = "sdr_refresh_app"
WORK = os.environ["SDR_REFRESH_WORK"]
BIN = os.environ["SDR_REFRESHER"]
CLIENT_SECRET = h.secret("marker-client-secret-" + os.urandom(8).hex())
ORG = "00000000-0000-4000-8000-0000000a0001"
ORG2 = "00000000-0000-4000-8000-0000000a0002"
# every token the tests or the mock make starts with one of these
MARKERS = ["marker-client-secret-", "seed-", "mock-at-", "mock-rt-", "marker-at-"]
refreshers = []
servers = []


def q(sql, db=DB):
    return h.psql(sql, db=db)


def script(sql):
    """Runs statements one by one (psql -f -); returns (stdout, stderr, exit code)."""
    p = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", DB, "-f", "-"],
                       input=sql, capture_output=True, text=True, timeout=120)
    return p.stdout.strip(), p.stderr, p.returncode


def as_org_try(sql, org=ORG):
    """SQL run for an org, as the application role: (last result line, stderr, exit code)."""
    out, err, rc = script("BEGIN;\nSET LOCAL ROLE %s;\nSELECT FROM sdr_creds.authenticate("
                          "(SELECT key FROM t_key WHERE org = '%s'));\n%s;\nCOMMIT;\n" % (APP, org, sql))
    return (out.splitlines() or [""])[-1], err, rc


def as_org(sql, org=ORG):
    out, err, rc = as_org_try(sql, org)
    assert rc == 0, "as the application role: " + h.redact(err)[-300:]
    return out


class Mock:
    def __init__(self):
        port_file = os.path.join(WORK, "mock.port")
        self.proc = subprocess.Popen([sys.executable, "-B", os.path.join(HERE, "mock_oauth.py"),
                                      port_file, CLIENT_SECRET],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(WORK, "mock.log"), "w"))
        assert h.wait_until(lambda: os.path.exists(port_file), 10), "mock did not start"
        self.port = int(open(port_file).read())
        self.url = "http://127.0.0.1:%d/token" % self.port

    def call(self, path, body=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path),
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stats(self):
        return self.call("/_stats")

    def mode(self, m):
        self.call("/_mode", {"mode": m})

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class Refresher:
    def __init__(self, *args, name=None):
        self.log_path = os.path.join(WORK, "refresher-%d.log" % len(refreshers))
        self.proc = subprocess.Popen(
            [BIN, "--db", conninfo(), "--allow-http-loopback", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "w"))
        refreshers.append(self)

    def log(self):
        return open(self.log_path, errors="replace").read()

    def wait(self, timeout=60):
        return self.proc.wait(timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def conninfo():
    return "host=%s port=%s dbname=%s user=%s" % (os.environ["PGHOST"], os.environ["PGPORT"], DB, ROLE)


def once(*args):
    r = Refresher("--once", *args)
    assert r.wait(60) == 0, "refresher --once exited %s: %s" % (r.proc.returncode, r.log()[-500:])
    return r


def setup():
    q("DROP DATABASE IF EXISTS %s" % DB, db="postgres")
    q("CREATE DATABASE %s" % DB, db="postgres")
    q("DROP ROLE IF EXISTS %s; DROP ROLE IF EXISTS %s; CREATE ROLE %s LOGIN; CREATE ROLE %s LOGIN"
      % (ROLE, APP, ROLE, APP), db="postgres")
    q("""CREATE EXTENSION sdr_creds CASCADE;
      GRANT USAGE ON SCHEMA sdr_creds TO %(role)s, %(app)s;
      GRANT EXECUTE ON FUNCTION sdr_creds.refresh_claim(integer, integer),
          sdr_creds.refresh_record(uuid, integer, bytea, integer, text) TO %(role)s;
      ALTER ROLE %(role)s SET log_statement = 'all';
      -- the README's GRANTs for an application role (and the HTTP server), and request_refresh
      GRANT EXECUTE ON FUNCTION sdr_creds.authenticate(text), sdr_creds.authenticate_headers(text, text),
          sdr_creds.authenticate_request(), sdr_creds.current_org_id(),
          sdr_creds.store(text, text, text, jsonb), sdr_creds.store_json(text),
          sdr_creds.get_by_provider(text), sdr_creds.get(uuid), sdr_creds.list(integer, integer),
          sdr_creds.delete(uuid), sdr_creds.request_refresh(uuid),
          sdr_creds.set_oauth_client(text, text, text, text, text, text) TO %(app)s;
      CREATE TABLE t_key (org uuid PRIMARY KEY, key text);
      GRANT SELECT ON t_key TO %(app)s;
      -- every credential's tokens, decrypted (superuser, for the checks)
      CREATE FUNCTION t_tokens() RETURNS TABLE (provider text, org uuid, access_token text, refresh_token text,
                                                refresh_status text)
      LANGUAGE plpgsql AS $$
      DECLARE r record; j json;
      BEGIN
        FOR r IN SELECT c.org_id, c.provider FROM sdr_creds.credentials c ORDER BY 1, 2 LOOP
          PERFORM sdr_creds.act_as(r.org_id);
          j := sdr_creds.get_by_provider(r.provider);
          provider := r.provider; org := r.org_id; access_token := j ->> 'access_token';
          refresh_token := j -> 'metadata' ->> 'refresh_token';
          refresh_status := j -> 'metadata' ->> 'refresh_status';
          RETURN NEXT;
        END LOOP;
      END $$;""" % {"role": ROLE, "app": APP})
    add_org(ORG)
    add_org(ORG2)


def add_org(org):
    q("INSERT INTO t_key SELECT '%s', sdr_creds.create_api_key('%s', 'refresh tests') ->> 'key'" % (org, org))


def client(provider, url, method="client_secret_basic", org=ORG):
    as_org("SELECT 1 FROM sdr_creds.set_oauth_client('%s', '%s', 'mock-client', '%s', '%s', 'crm.read crm.write')"
           % (provider, url, CLIENT_SECRET, method), org)


def store(provider, refresh_token, expires_in=60, org=ORG):
    meta = {"instance_url": "https://example.invalid", "expires_in": expires_in}
    if refresh_token:
        meta["refresh_token"] = refresh_token
    token = h.secret("marker-at-" + os.urandom(6).hex())
    return json.loads(as_org("SELECT credential FROM sdr_creds.store('%s', NULL, '%s', '%s')"
                             % (provider, token, json.dumps(meta)), org))


def tokens(provider, org=ORG):
    row = q("SELECT access_token, refresh_token, coalesce(refresh_status, '') FROM t_tokens()"
            " WHERE provider = '%s' AND org = '%s'" % (provider, org)).split("|")
    return row


def column(provider, expr, org=ORG):
    return q("SELECT %s FROM sdr_creds.credentials WHERE provider = '%s' AND org_id = '%s'" % (expr, provider, org))


def request_refresh(provider, org=ORG):
    cid = column(provider, "id", org)
    return json.loads(as_org("SELECT sdr_creds.request_refresh('%s')" % cid, org))


mock = None


def test_due_token_refreshed_once():
    client("hubspot", mock.url)
    client("salesforce", mock.url, "client_secret_post")
    seed_h, seed_s = h.secret("seed-h-" + os.urandom(4).hex()), h.secret("seed-s-" + os.urandom(4).hex())
    old = store("hubspot", seed_h)
    store("salesforce", seed_s)
    store("zoho", h.secret("seed-z-" + os.urandom(4).hex()))          # no OAuth client
    client("pipedrive", mock.url)
    store("pipedrive", None)                                          # no refresh token
    client("close", mock.url)
    seed_c = h.secret("seed-c-" + os.urandom(4).hex())
    store("close", seed_c, expires_in=7200)                           # not due
    before = mock.stats()
    once()
    s = mock.stats()
    h.eq(s["requests"] - before["requests"], 2, "refresh requests sent")
    h.eq((s["chains"].get(seed_h), s["chains"].get(seed_s), s["chains"].get(seed_c)), (1, 1, None), "refreshes per chain")
    at, rt, status = tokens("hubspot")
    assert at.startswith("mock-at-") and rt.startswith("mock-rt-") and status == "", "hubspot not refreshed"
    assert at != old["access_token"]
    obj = json.loads(as_org("SELECT sdr_creds.get_by_provider('hubspot')"))
    h.eq(list(obj), ["id", "org_id", "provider", "dsn", "access_token", "metadata", "created_at", "updated_at"],
         "the object's fields")
    h.eq(obj["metadata"]["instance_url"], "https://example.invalid", "plain metadata kept")
    assert obj["metadata"]["expires_at"] > old["metadata"]["expires_at"], "expires_at moved"
    h.eq(int(column("hubspot", "round(extract(epoch FROM expires_at - now()) / 60)")), 60, "expires in an hour")
    h.eq(tokens("zoho")[0].startswith("marker-at-"), True, "no client: untouched")
    h.eq(tokens("pipedrive")[0].startswith("marker-at-"), True, "no refresh token: untouched")
    once()
    s2 = mock.stats()
    h.eq((s2["requests"], s2["reused"], s2["invalid_grant"]), (s["requests"], 0, 0),
         "a second run sends nothing; no token sent twice")


def test_four_refreshers_thousand_credentials():
    orgs = ["00000000-0000-4000-8000-%012x" % (0xb0000 + i) for i in range(100)]
    seeds = []
    for org in orgs:
        add_org(org)
    q("""DO $$
      DECLARE o uuid; p text;
      BEGIN
        FOR o IN SELECT org FROM t_key WHERE org::text LIKE '00000000-0000-4000-8000-0000000b%%' LOOP
          PERFORM sdr_creds.act_as(o);
          FOR i IN 1..10 LOOP
            p := 'crm' || i;
            PERFORM sdr_creds.set_oauth_client(p, '%s', 'mock-client', '%s',
                CASE WHEN i %% 2 = 0 THEN 'client_secret_post' ELSE 'client_secret_basic' END);
            PERFORM sdr_creds.store(p, NULL, 'marker-at-bulk', jsonb_build_object(
                'refresh_token', 'seed-bulk-' || o || '-' || p, 'expires_in', 30 + i));
          END LOOP;
        END LOOP;
      END $$""" % (mock.url, CLIENT_SECRET))
    seeds = ["seed-bulk-%s-crm%d" % (o, i) for o in orgs for i in range(1, 11)]
    before = mock.stats()
    rs = [Refresher("--interval", "1") for _ in range(4)]
    done = h.wait_until(lambda: q("SELECT count(*) FROM sdr_creds.credentials WHERE provider LIKE 'crm%'"
                                  " AND expires_at > now() + interval '30 minutes'") == "1000", 180, 0.5)
    codes = [r.stop() for r in rs]
    s = mock.stats()
    per = [r.log().count("outcome=refreshed") for r in rs]
    h.diag("refreshes per refresher: %s" % per)
    assert done, "not all refreshed: %s" % {k: v for k, v in s.items() if k != "chains"}
    h.eq(codes, [0, 0, 0, 0], "SIGTERM exit codes")
    h.eq(sum(per), 1000, "refresh lines logged")
    h.eq((s["refreshed"] - before["refreshed"], s["reused"], s["invalid_grant"]), (1000, 0, 0),
         "refreshed, reused, invalid_grant")
    h.eq(sorted(set(s["chains"].get(x) for x in seeds)), [1], "each credential refreshed exactly once")
    stored = q("SELECT count(*) FROM t_tokens() WHERE provider LIKE 'crm%' AND refresh_token LIKE 'mock-rt-%'")
    h.eq(stored, "1000", "every stored refresh token is the one the provider issued")


def failing(mode, args=()):
    """One refresh of 'flaky' in a failure mode; returns (refresh_error, failures, seconds to retry)."""
    mock.mode(mode)
    request_refresh("flaky")
    r = once(*args)
    mock.mode("ok")
    err, failures, secs = column("flaky", "refresh_error, refresh_failures,"
                                 " extract(epoch FROM refresh_retry_at - now())::int").split("|")
    assert "outcome=retry error=%s" % err in r.log(), "log line: " + r.log()[-300:]
    return err, int(failures), int(secs)


def test_failures_back_off():
    client("flaky", mock.url)
    store("flaky", h.secret("seed-f-" + os.urandom(4).hex()))
    err, n, secs = failing("error500")
    assert (err, n) == ("http_500", 1) and 14 <= secs <= 31, (err, n, secs)
    # the second failure in a row would wait 30 to 60 s: Retry-After: 120 wins
    # (request_refresh clears the wait, not the count)
    err, n, secs = failing("ratelimit")
    assert (err, n) == ("http_429", 2) and 119 <= secs <= 121, ("Retry-After not honoured", err, n, secs)
    err, n, secs = failing("error500")
    assert (err, n) == ("http_500", 3) and 59 <= secs <= 121, (err, n, secs)
    err, n, secs = failing("slow", ["--timeout", "2"])
    assert err == "timeout", err
    err, n, secs = failing("malformed")
    assert err == "malformed_response", err
    err, n, secs = failing("huge")
    assert err == "response_too_large", err
    h.eq(tokens("flaky")[0].startswith("marker-at-"), True, "the old token is kept meanwhile")
    request_refresh("flaky")
    once()
    at, rt, _ = tokens("flaky")
    h.eq((at[:8], rt[:8], column("flaky", "coalesce(refresh_error, '') || refresh_failures")),
         ("mock-at-", "mock-rt-", "0"), "refreshed afterwards, failures cleared")
    h.eq(mock.stats()["reused"], 0, "no token sent twice")


def test_invalid_grant_needs_reauthorization():
    client("revoked", mock.url)
    store("revoked", h.secret("seed-r-" + os.urandom(4).hex()))
    mock.mode("invalid_grant")
    r = once()
    mock.mode("ok")
    assert "outcome=needs_reauthorization error=invalid_grant" in r.log(), r.log()[-300:]
    obj = json.loads(as_org("SELECT sdr_creds.get_by_provider('revoked')"))
    h.eq(obj["metadata"].get("refresh_status"), "needs_reauthorization", "metadata.refresh_status")
    before = mock.stats()["requests"]
    q("UPDATE sdr_creds.credentials SET expires_at = now() WHERE provider = 'revoked'")
    once()
    h.eq(mock.stats()["requests"], before, "no retry after invalid_grant")
    _, err, _ = as_org_try("SELECT sdr_creds.request_refresh('%s')" % column("revoked", "id"))
    # a new store is the re-authorization: refreshable again
    store("revoked", h.secret("seed-r2-" + os.urandom(4).hex()))
    once()
    h.eq(tokens("revoked")[2], "", "refresh_status cleared by a store")
    h.eq(tokens("revoked")[0][:8], "mock-at-", "refreshed after re-authorization")
    assert "cannot be refreshed" in err, "request_refresh of a credential that needs re-authorization: " + err


def test_refresher_keeps_running_and_wakes_on_request():
    client("live", mock.url)
    store("live", h.secret("seed-l-" + os.urandom(4).hex()), expires_in=7200)
    r = Refresher("--interval", "3600", "--timeout", "2")
    assert h.wait_until(lambda: "refresher started" in r.log(), 10)
    for mode in ["error500", "malformed", "huge", "slow", "ratelimit", "ok"]:
        mock.mode(mode)
        n = r.log().count("refresh credential=")
        request_refresh("live")                     # NOTIFY wakes the refresher at once
        assert h.wait_until(lambda: r.log().count("refresh credential=") > n, 20), "no refresh in mode " + mode
        assert r.proc.poll() is None, "refresher exited in mode " + mode
    h.eq(tokens("live")[0][:8], "mock-at-", "refreshed in the end")
    h.eq(r.stop(), 0, "exit code")


def test_sigkill_mid_refresh():
    client("killed", mock.url)
    seed = h.secret("seed-k-" + os.urandom(4).hex())
    old = store("killed", seed)
    mock.mode("hold")
    held = mock.stats()["held"]
    r = Refresher("--interval", "3600")
    assert h.wait_until(lambda: mock.stats()["held"] > held, 20), "request not held"
    cid = column("killed", "id")
    locked = h.psql("SELECT 1 FROM sdr_creds.credentials WHERE id = '%s' FOR UPDATE NOWAIT" % cid, db=DB, check_rc=False)
    h.eq(locked, "", "the claimed row is locked while the request is in flight")
    h.eq(tokens("killed")[0], old["access_token"], "the old token is readable meanwhile")
    r.proc.send_signal(signal.SIGKILL)
    r.proc.wait(10)
    free = h.wait_until(lambda: h.psql("SELECT 1 FROM sdr_creds.credentials WHERE id = '%s' FOR UPDATE NOWAIT" % cid,
                                       db=DB, check_rc=False) == "1", 20)
    assert free, "the lock was not released"
    assert h.wait_until(lambda: mock.stats()["abandoned"] >= 1, 10), "mock did not see the client go"
    mock.call("/_release", {})
    h.eq(tokens("killed")[0], old["access_token"], "the old token is still there")
    once()
    at, rt, _ = tokens("killed")
    h.eq((at[:8], rt[:8]), ("mock-at-", "mock-rt-"), "the next run completed it")
    h.eq(mock.stats()["chains"].get(seed), 1, "refreshed once")


def test_sigterm_finishes_refresh_in_flight():
    client("drained", mock.url)
    seed = h.secret("seed-d-" + os.urandom(4).hex())
    store("drained", seed)
    mock.mode("hold")
    held = mock.stats()["held"]
    r = Refresher("--interval", "3600")
    assert h.wait_until(lambda: mock.stats()["held"] > held, 20), "request not held"
    r.proc.send_signal(signal.SIGTERM)
    mock.call("/_release", {})
    h.eq(r.proc.wait(30), 0, "exit code")
    assert "outcome=refreshed" in r.log() and "refresher stopped" in r.log(), r.log()[-400:]
    h.eq(tokens("drained")[0][:8], "mock-at-", "the refresh in flight was stored")


def test_only_https_unless_allowed():
    client("plain", mock.url)
    store("plain", h.secret("seed-p-" + os.urandom(4).hex()))
    before = mock.stats()["requests"]
    r2 = subprocess.run([BIN, "--db", conninfo(), "--once"], capture_output=True, text=True, timeout=60)
    h.eq(mock.stats()["requests"], before, "nothing sent to http:// without --allow-http-loopback")
    assert "provider=plain http=- outcome=retry error=url_refused" in r2.stderr, r2.stderr[-400:]
    _, err, _ = as_org_try("SELECT sdr_creds.set_oauth_client('x', 'http://example.com/token', 'a', 'b')")
    assert "token_url must be an https:// URL" in err, "set_oauth_client with a remote http:// URL: " + err
    q("DELETE FROM sdr_creds.credentials WHERE provider = 'plain'")


def test_no_secret_in_logs_or_errors():
    errors = [h.psql(sql, db=DB, check_rc=False) for sql in [
        "SELECT * FROM sdr_creds.refresh_claim()",
        "BEGIN; SELECT * FROM sdr_creds.refresh_record((SELECT id FROM sdr_creds.credentials LIMIT 1), 200,"
        " convert_to('{\"access_token\": \"mock-at-x\"}', 'UTF8'))",
    ]]
    p = subprocess.run(["psql", "-X", "-d", DB, "-c", "SELECT * FROM sdr_creds.refresh_claim()"],
                       capture_output=True, text=True)
    texts = {"refresher logs": "".join(r.log() for r in refreshers), "errors": p.stderr + "".join(errors),
             "server logs": "".join(srv.read_log() for srv in servers),
             "PostgreSQL log": open(os.path.join(os.environ["SDR_CLUSTER_DIR"], "postgres.log"), errors="replace").read(),
             "mock log": open(os.path.join(WORK, "mock.log"), errors="replace").read()}
    assert "refresh_record" in texts["PostgreSQL log"], "the refresher's statements were not logged"
    assert "must be called inside a transaction block" in p.stderr, p.stderr
    for where, text in texts.items():
        for m in MARKERS + [CLIENT_SECRET]:
            assert m not in text, "%s holds a %s... value" % (where, m[:10])


# --- POST /integration-credentials/{id}/refresh (sdr_creds_server) ----------

def http_server(*args):
    """An sdr_creds_server running as the application role."""
    info = "host=%s port=%s dbname=%s user=%s" % (os.environ["PGHOST"], os.environ["PGPORT"], DB, APP)
    srv = h.Server(os.environ["SDR_SERVER"], info, os.path.join(WORK, "server-%d.log" % len(servers)), args=args)
    servers.append(srv)
    return srv


def api_key(org=ORG):
    return h.secret(q("SELECT key FROM t_key WHERE org = '%s'" % org))


def post_refresh(srv, cid, org=ORG, headers=None):
    headers = {"X-API-Key": api_key(org)} if headers is None else headers
    return h.request(srv.port, "POST", "/integration-credentials/%s/refresh" % cid, headers=headers, timeout=60)


def get_by_id(srv, cid, org=ORG):
    return h.request(srv.port, "GET", "/integration-credentials/" + cid, headers={"X-API-Key": api_key(org)})


class Concurrently:
    """fn(*args) in a thread; .result() waits for its value."""

    def __init__(self, fn, *args):
        import threading
        self.value, self.error = None, None
        self.thread = threading.Thread(target=self.run, args=(fn, args))
        self.thread.start()

    def run(self, fn, args):
        try:
            self.value = fn(*args)
        except Exception as e:  # noqa: BLE001 - re-raised by result()
            self.error = e

    def result(self, timeout=60):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "still running"
        if self.error:
            raise self.error
        return self.value


def audit_lines(action, cid):
    log = open(os.path.join(os.environ["SDR_CLUSTER_DIR"], "postgres.log"), errors="replace").read()
    return sum(1 for line in log.splitlines() if "action=%s " % action in line and "credential=%s" % cid in line)


def test_http_refresh_returns_new_token():
    client("ondemand", mock.url)
    seed = h.secret("seed-o-" + os.urandom(4).hex())
    old = store("ondemand", seed, expires_in=7200)                   # not due: only asked for
    srv = http_server("--pool", "1")
    r = Refresher("--interval", "3600")
    try:
        assert h.wait_until(lambda: "refresher started" in r.log(), 10)
        t0 = time.time()
        resp = post_refresh(srv, old["id"])
        took = time.time() - t0
        h.eq(resp.status, 200, "POST .../refresh with a refresher running: %r" % resp)
        obj = resp.json()
        h.eq(list(obj), list(old), "the object's fields")
        assert obj["access_token"].startswith("mock-at-") and obj["access_token"] != old["access_token"], \
            "the new access token"
        assert obj["metadata"]["refresh_token"].startswith("mock-rt-"), "the rotated refresh token"
        h.eq(get_by_id(srv, old["id"]).json(), obj, "the same object as GET /integration-credentials/{id}")
        h.eq(mock.stats()["chains"].get(seed), 1, "refreshed once")
        assert took < 5, "answered in %.1f s" % took
        # the wait holds neither the only worker nor the only pool connection
        mock.mode("hold")
        held = mock.stats()["held"]
        waiting = Concurrently(post_refresh, srv, old["id"])
        assert h.wait_until(lambda: mock.stats()["held"] > held, 20), "refresh not held"
        t0 = time.time()
        h.eq(get_by_id(srv, old["id"]).status, 200, "a GET while a refresh is awaited")
        assert time.time() - t0 < 3 and waiting.thread.is_alive(), "the GET waited for the refresh"
        mock.call("/_release", {})
        resp = waiting.result()
        h.eq(resp.status, 200, "after the release: %r" % resp)
        h.eq(resp.json()["access_token"], tokens("ondemand")[0], "the token refreshed after the release")
        assert "POST /integration-credentials/{credentials_id}/refresh 200" in srv.read_log(), "access log line"
    finally:
        mock.mode("ok")
        r.stop()
        srv.stop()


def test_http_refresh_202_without_refresher():
    client("unattended", mock.url)
    cred = store("unattended", h.secret("seed-u-" + os.urandom(4).hex()), expires_in=7200)
    srv = http_server("--refresh-wait", "2")
    try:
        t0 = time.time()
        resp = post_refresh(srv, cred["id"])
        took = time.time() - t0
        h.eq((resp.status, resp.json()), (202, {"id": cred["id"], "refresh": "in_progress"}), "no refresher")
        assert 1.9 <= took < 6, "answered after %.1f s (--refresh-wait 2)" % took
        assert column("unattended", "refresh_requested_at IS NOT NULL") == "t", "left requested"
        # the next refresher takes it
        before = mock.stats()["refreshed"]
        once()
        h.eq(mock.stats()["refreshed"] - before, 1, "refreshed by the next refresher")
    finally:
        srv.stop()
    # SIGTERM during a wait: answered 202 at once, then the server exits 0
    srv = http_server("--refresh-wait", "120")
    asked = audit_lines("request_refresh", cred["id"])
    waiting = Concurrently(post_refresh, srv, cred["id"])
    try:
        assert h.wait_until(lambda: audit_lines("request_refresh", cred["id"]) > asked, 20), "not requested"
        t0 = time.time()
        srv.signal()
        h.eq(srv.wait(20), 0, "exit code")
        resp = waiting.result()
        h.eq(resp.status, 202, "a wait cut short by SIGTERM: %r" % resp)
        assert time.time() - t0 < 5, "stopped after %.1f s" % (time.time() - t0)
    finally:
        srv.stop()


def test_http_refresh_errors():
    client("plainold", mock.url)
    mine = store("plainold", None)                                   # no refresh token
    store("noclient", h.secret("seed-n-" + os.urandom(4).hex()))     # no OAuth client
    client("theirs", mock.url, org=ORG2)
    theirs = store("theirs", h.secret("seed-t-" + os.urandom(4).hex()), expires_in=7200, org=ORG2)
    srv = http_server("--refresh-wait", "2")
    bad = "00000000-0000-4000-8000-00000000zzzz"
    try:
        cases = [
            ("no key", theirs["id"], {}, 401),
            ("an unknown key", theirs["id"], {"X-API-Key": "sk_live_" + "x" * 40}, 401),
            ("no key, not a UUID: 401 first", bad, {}, 401),
            ("not a UUID", bad, None, 422),
            ("another org's", theirs["id"], None, 403),
            ("none", "00000000-0000-4000-8000-00000000beef", None, 404),
            ("no refresh token", mine["id"], None, 409),
            ("no OAuth client", column("noclient", "id"), None, 409),
        ]
        for what, cid, headers, status in cases:
            resp = post_refresh(srv, cid, headers=headers)
            h.eq(resp.status, status, "%s: %r" % (what, resp))
            assert "detail" in resp.json(), what
        resp = h.request(srv.port, "GET", "/integration-credentials/%s/refresh" % mine["id"],
                         headers={"X-API-Key": api_key()})
        h.eq((resp.status, resp.header("Allow")), (405, "POST"), "GET .../refresh")
        h.eq(column("theirs", "refresh_requested_at IS NULL", org=ORG2), "t", "another org's not requested")
        # a refresh that ends in invalid_grant: 409; in a failure: 502 with its code
        for mode, status, word in [("invalid_grant", 409, "re-authorization"), ("error500", 502, "http_500")]:
            client("failing-" + mode, mock.url)
            cred = store("failing-" + mode, h.secret("seed-x-" + os.urandom(4).hex()), expires_in=7200)
            mock.mode(mode)
            r = Refresher("--interval", "3600")
            try:
                assert h.wait_until(lambda: "refresher started" in r.log(), 10)
                resp = post_refresh(srv, cred["id"])
            finally:
                r.stop()
                mock.mode("ok")
            h.eq(resp.status, status, "a refresh answered %s: %r" % (mode, resp))
            assert word in resp.json()["detail"], resp.json()["detail"]
    finally:
        srv.stop()


def test_http_two_posts_one_refresh():
    """Two POSTs for one due credential while a scheduled refresh of it is in
    flight (held by the provider): the old refresh token is sent once."""
    client("contended", mock.url)
    seed = h.secret("seed-c2-" + os.urandom(4).hex())
    cred = store("contended", seed, expires_in=60)                   # due: the refreshers take it on their own
    srv = http_server()
    mock.mode("hold")
    before = mock.stats()
    rs = [Refresher("--interval", "1") for _ in range(2)]
    posts = []
    try:
        assert h.wait_until(lambda: mock.stats()["held"] > before["held"], 20), "scheduled refresh not held"
        asked = audit_lines("request_refresh", cred["id"])
        posts = [Concurrently(post_refresh, srv, cred["id"]) for _ in range(2)]
        assert h.wait_until(lambda: audit_lines("request_refresh", cred["id"]) >= asked + 2, 20), \
            "the two requests did not reach request_refresh"
        mock.call("/_release", {})
        answers = [p.result() for p in posts]
    finally:
        mock.mode("ok")
        for r in rs:
            r.stop()
        srv.stop()
    s = mock.stats()
    h.eq([a.status for a in answers], [200, 200], "both POSTs: %r" % answers)
    h.eq((s["reused"] - before["reused"], s["invalid_grant"] - before["invalid_grant"]), (0, 0),
         "refresh tokens reused, invalid_grant")
    h.eq(s["chains"].get(seed), 1, "refreshes of the credential")
    h.eq(set(a.json()["access_token"] for a in answers), {tokens("contended")[0]}, "both got the stored token")


def main():
    global mock
    setup()
    mock = Mock()
    try:
        h.run_tests([
            ("refresher: a token due in the window is refreshed once; get_by_provider returns the new tokens;"
             " no client, no refresh token or not due: untouched", test_due_token_refreshed_once),
            ("refresher: 4 refreshers, 1,000 due credentials: each refreshed exactly once, no token reused",
             test_four_refreshers_thousand_credentials),
            ("refresher: 500, 429 with Retry-After, timeout, malformed JSON, 10 MB answer: exponential back-off"
             " with jitter, old token kept, refreshed afterwards", test_failures_back_off),
            ("refresher: invalid_grant marks metadata.refresh_status = needs_reauthorization, no more retries;"
             " a store re-authorizes", test_invalid_grant_needs_reauthorization),
            ("refresher: one process through every failure mode keeps running; request_refresh wakes it (NOTIFY)",
             test_refresher_keeps_running_and_wakes_on_request),
            ("refresher: SIGKILL mid-refresh releases the row lock; the old token stays readable; the next run"
             " completes it", test_sigkill_mid_refresh),
            ("refresher: SIGTERM finishes the refresh in flight, then exits 0", test_sigterm_finishes_refresh_in_flight),
            ("refresher: only https:// unless --allow-http-loopback (nothing sent); set_oauth_client refuses"
             " remote http://", test_only_https_unless_allowed),
            ("POST /integration-credentials/{id}/refresh: 200 with the new tokens once a refresher ran it (the"
             " object of GET); the wait holds neither the worker nor the pool connection (--pool 1)",
             test_http_refresh_returns_new_token),
            ("POST .../refresh with no refresher running: 202 {id, refresh: in_progress} after --refresh-wait;"
             " the next refresher takes it; SIGTERM answers a wait 202 at once and exits 0",
             test_http_refresh_202_without_refresher),
            ("POST .../refresh: 401 (before 422), 422, 403 another org's, 404, 409 no refresh token or client,"
             " 405 GET; 409 after invalid_grant, 502 after a failed refresh", test_http_refresh_errors),
            ("POST .../refresh twice during a scheduled refresh, 2 refreshers: one refresh, old token sent once,"
             " both answered with the stored token", test_http_two_posts_one_refresh),
            ("refresher: client secrets and tokens absent from the refresher's and the server's logs, the PostgreSQL log"
             " (log_statement = all) and errors", test_no_secret_in_logs_or_errors),
        ], timed=True)
    finally:
        for srv in servers:
            srv.stop()
        for r in refreshers:
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait(10)
        mock.stop()
        h.psql("DROP DATABASE IF EXISTS %s" % DB, db="postgres", check_rc=False)
        h.psql("DROP ROLE IF EXISTS %s; DROP ROLE IF EXISTS %s" % (ROLE, APP), db="postgres", check_rc=False)
    sys.exit(h.finish())


if __name__ == "__main__":
    main()
