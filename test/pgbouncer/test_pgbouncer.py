#!/usr/bin/python3
"""PgBouncer in front of the store: a real pgbouncer (Debian's 1.18, started
here on loopback, see bouncer.py) between the test cluster and
  - SQL clients in transaction mode: the org context never crosses from one
    client to another on a shared server connection; authenticate() in its
    own implicit transaction; a revoked key refused at once on every server
    connection;
  - the HTTP server: session mode as is; transaction mode with --no-prepare,
    and what happens without it; POST .../refresh with --db-listen direct.

Run by test/pgbouncer/run.sh (PGHOST, PGPORT, SDR_CLUSTER_DIR, SDR_SERVER,
SDR_REFRESHER exported). Reuses the refresher suite's setup (a database with
an application role and keys per org, the mock OAuth provider). Prints one
"ok - ..." / "not ok - ..." line per test."""

import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "http"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "refresher"))
sys.path.insert(0, HERE)
import harness as h  # noqa: E402
import test_refresher as tr  # noqa: E402
from bouncer import Bouncer, Conn  # noqa: E402

WORK = os.environ["SDR_REFRESH_WORK"]
# the refresher suite's helpers on a database and roles of this suite's own
# (tr.q's default database is bound when it is defined: rebound here)
tr.DB, tr.ROLE, tr.APP = "sdr_pgb", "sdr_pgb_refresher", "sdr_pgb_app"
tr.q.__defaults__ = (tr.DB,)
ORG_A, ORG_B = tr.ORG, tr.ORG2
ctx = {}


def setup():
    tr.setup()
    ctx["bouncer"] = Bouncer(WORK, os.environ["PGPORT"], {
        # one server connection: every client's transactions take turns on it
        "sdr_pgb_tx1": "dbname=sdr_pgb pool_mode=transaction pool_size=1",
        "sdr_pgb_tx": "dbname=sdr_pgb pool_mode=transaction pool_size=4",
        "sdr_pgb_session": "dbname=sdr_pgb pool_mode=session pool_size=4",
    }, users=["postgres", tr.APP])
    ctx["key_a"], ctx["key_b"] = tr.api_key(ORG_A), tr.api_key(ORG_B)


def app(db="sdr_pgb_tx1"):
    """A client of PgBouncer as the application role."""
    return Conn(ctx["bouncer"].conninfo(db, tr.APP))


def lit(s):
    return h.sql_literal(s)


def auth_sql(org):
    return "SELECT sdr_creds.authenticate(%s)" % lit(ctx["key_" + org])


# --- SQL clients in transaction mode ---------------------------------------

def t_interleaved_transactions():
    """Pool size 1: A authenticates in a transaction; B's statement waits for
    the one server connection, then runs on it with no org context."""
    a, b = app(), app()
    try:
        a.exec("BEGIN")
        h.eq(a.value(auth_sql("a")), ORG_A, "A authenticated")
        pid_a = a.value("SELECT pg_backend_pid()")
        seen = {}
        t = threading.Thread(target=lambda: seen.update(
            row=b.exec("SELECT sdr_creds.current_org_id(), pg_backend_pid()")[0]))
        t.start()
        time.sleep(0.5)
        assert t.is_alive(), "B ran while A's transaction held the only server connection"
        h.eq(a.value("SELECT sdr_creds.current_org_id()"), ORG_A, "A's context inside its transaction")
        a.exec("COMMIT")
        t.join(10)
        h.eq(seen.get("row"), [None, pid_a], "B on A's server connection: (org, backend)")
        # B: its own org only, on the same server connection
        b.exec("BEGIN")
        h.eq(b.value("SELECT pg_backend_pid()"), pid_a, "B's transaction on the same backend")
        h.eq(b.error("SELECT sdr_creds.list(100, 0)"), "PT401", "B before authenticating")
        b.exec("ROLLBACK")
        b.exec("BEGIN")
        h.eq(b.value(auth_sql("b")), ORG_B, "B authenticated")
        orgs = b.value("SELECT string_agg(DISTINCT c->>'org_id', ',') FROM "
                       "json_array_elements(sdr_creds.list(1000, 0)) c")
        assert orgs in (None, ORG_B), "B's list holds another org's rows: %s" % orgs
        b.exec("COMMIT")
        # A's next transaction: no context left from its own or B's
        h.eq(a.exec("SELECT sdr_creds.current_org_id(), pg_backend_pid()")[0], [None, pid_a],
             "A's next transaction")
        # a transaction that fails and rolls back leaves nothing either
        a.exec("BEGIN")
        a.exec(auth_sql("a"))
        h.eq(a.error("SELECT 1/0"), "22012", "the failing statement")
        a.exec("ROLLBACK")
        h.eq(b.value("SELECT sdr_creds.current_org_id()"), None, "after A's rollback, B")
    finally:
        a.close()
        b.close()


def t_authenticate_outside_transaction():
    """authenticate() alone is its own implicit transaction: the context ends
    with it, through PgBouncer as on a direct connection."""
    direct = Conn("host=127.0.0.1 port=%s dbname=sdr_pgb user=%s" % (os.environ["PGPORT"], tr.APP))
    a = app()
    try:
        for name, c in (("through PgBouncer", a), ("direct", direct)):
            h.eq(c.value(auth_sql("a")), ORG_A, name + ": authenticate() returns the org")
            h.eq(c.value("SELECT sdr_creds.current_org_id()"), None, name + ": the next statement's org")
            h.eq(c.error("SELECT sdr_creds.list(100, 0)"), "PT401", name + ": the next statement's call")
            # in one statement, or in one query string (one implicit transaction)
            h.eq(c.value("SELECT sdr_creds.current_org_id() FROM sdr_creds.authenticate(%s)"
                         % lit(ctx["key_a"])), ORG_A, name + ": in the same statement")
            h.eq(c.value(auth_sql("a") + "; SELECT sdr_creds.current_org_id()"), ORG_A,
                 name + ": in the same query string")
    finally:
        a.close()
        direct.close()


def t_revoke_on_other_server_connections():
    """A key authenticated on three server connections (each then caching
    it), revoked by another client: refused at once on all three."""
    made = json.loads(tr.q("SELECT sdr_creds.create_api_key(%s, 'pgbouncer revoke')" % lit(ORG_A)))
    ctx["key_r"] = h.secret(made["key"])
    clients = [app("sdr_pgb_tx") for _ in range(3)]
    admin = Conn(ctx["bouncer"].conninfo("sdr_pgb_tx", "postgres"))
    try:
        def round_(expect_ok):
            pids = []
            for c in clients:                      # open at once: three server connections
                c.exec("BEGIN")
                pids.append(c.value("SELECT pg_backend_pid()"))
                if expect_ok:
                    h.eq(c.value(auth_sql("r")), ORG_A, "the key before the revoke")
                else:
                    h.eq(c.error(auth_sql("r")), "PT401", "the revoked key on backend %s" % pids[-1])
            for c in clients:
                c.exec("ROLLBACK")
            return pids

        before = round_(True)
        h.eq(len(set(before)), 3, "server connections used")
        revoker = admin.value("SELECT pg_backend_pid()")
        admin.exec("SELECT sdr_creds.revoke_api_key(%s)" % lit(made["id"]))
        after = round_(False)
        assert revoker not in after, "the revoke ran on one of the checking backends"
        assert len(set(after) & set(before)) >= 2, \
            "refused on backends that had not cached the key: %s vs %s" % (after, before)
    finally:
        for c in clients + [admin]:
            c.close()


# --- the HTTP server ---------------------------------------------------------

def server(db, *args, name="server"):
    log = os.path.join(WORK, "%s-%d.log" % (name, len(tr.servers)))
    srv = h.Server(os.environ["SDR_SERVER"], ctx["bouncer"].conninfo(db, tr.APP), log, args=args)
    tr.servers.append(srv)
    return srv


def store(srv, org, provider):
    token = h.secret("marker-at-" + os.urandom(6).hex())
    body = {"provider": provider, "dsn": "https://example.test", "access_token": token, "metadata": {}}
    r = h.request(srv.port, "POST", "/integration-credentials/", json.dumps(body),
                  {"X-API-Key": ctx["key_" + org]})
    return r, token


def crud(srv, provider):
    """POST, GET by provider, by id, list for org a; org b sees none of it."""
    r, token = store(srv, "a", provider)
    h.eq(r.status, 201, "POST: %r" % r)
    cid = r.json()["id"]
    key = {"X-API-Key": ctx["key_a"]}
    r = h.request(srv.port, "GET", "/integration-credentials/provider/" + provider, headers=key)
    h.eq((r.status, r.json().get("access_token")), (200, token), "GET by provider")
    h.eq(h.request(srv.port, "GET", "/integration-credentials/" + cid, headers=key).status, 200, "GET by id")
    r = h.request(srv.port, "GET", "/integration-credentials", headers=key)
    assert r.status == 200 and cid in [c["id"] for c in r.json()], "list: %r" % r
    other = {"X-API-Key": ctx["key_b"]}
    h.eq(h.request(srv.port, "GET", "/integration-credentials/" + cid, headers=other).status, 403,
         "another org's GET by id")
    h.eq(h.request(srv.port, "GET", "/integration-credentials/provider/" + provider, headers=other).status,
         404, "another org's GET by provider")


def concurrent_orgs(srv, n=40):
    """n requests from each org at once: each answered 200 with its own org's row."""
    for org in ("a", "b"):
        r, _ = store(srv, org, "shared")
        assert r.status in (200, 201), r
    bad = []

    def client(org):
        for _ in range(n):
            r = h.request(srv.port, "GET", "/integration-credentials/provider/shared",
                          headers={"X-API-Key": ctx["key_" + org]})
            want = ORG_A if org == "a" else ORG_B
            if r.status != 200 or r.json().get("org_id") != want:
                bad.append((org, r.status))
    threads = [threading.Thread(target=client, args=(o,)) for o in ("a", "b", "a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    h.eq(bad[:5], [], "requests answered otherwise than 200 with their own org")


def t_http_session_mode():
    srv = server("sdr_pgb_session", "--pool", "2")
    try:
        crud(srv, "session-mode")
        concurrent_orgs(srv)
    finally:
        h.eq(srv.stop(), 0, "exit status after SIGTERM")


class Holder:
    """A client of the transaction pool holding one server connection in an
    open transaction, so the next transactions run on another."""

    def __init__(self, db="sdr_pgb_tx"):
        self.c = app(db)
        self.c.exec("BEGIN")
        self.pid = self.c.value("SELECT pg_backend_pid()")

    def release(self):
        self.c.exec("COMMIT")
        self.c.close()


def t_http_transaction_mode_prepared_fails():
    """Without --no-prepare in transaction mode: the statements are prepared
    on the server connection the pool's connection got at start; a request
    whose transaction runs on another server connection fails (500)."""
    srv = server("sdr_pgb_tx", "--pool", "1", name="prepared")
    held = None
    try:
        key = {"X-API-Key": ctx["key_a"]}
        # idle PgBouncer hands the same server connection back: it works
        h.eq(h.request(srv.port, "GET", "/integration-credentials", headers=key).status, 200,
             "GET on the server connection that prepared")
        held = Holder()                    # takes that (most recently used) server connection
        r = h.request(srv.port, "GET", "/integration-credentials", headers=key)
        h.eq(r.status, 500, "GET on another server connection: %r" % r)
        assert h.wait_until(lambda: "sdr_list failed: SQLSTATE 26000" in srv.read_log(), 5), \
            "the log says why (26000: no such prepared statement)"
    finally:
        if held:
            held.release()
        srv.stop()


def t_http_transaction_mode_no_prepare():
    srv = server("sdr_pgb_tx", "--pool", "2", "--no-prepare", name="noprepare")
    held = None
    try:
        crud(srv, "transaction-mode")
        concurrent_orgs(srv)
        held = Holder()
        h.eq(h.request(srv.port, "GET", "/integration-credentials",
                       headers={"X-API-Key": ctx["key_a"]}).status, 200,
             "GET while another client holds a server connection")
        assert "SQLSTATE" not in srv.read_log(), "an error in the log: " + srv.read_log()[-300:]
    finally:
        if held:
            held.release()
        h.eq(srv.stop(), 0, "exit status after SIGTERM")


def t_http_refresh_db_listen():
    """POST .../refresh with --db through transaction-mode PgBouncer and
    --db-listen straight to PostgreSQL: the wait sees the refresher's
    notification (200 with the new token)."""
    tr.client("bounced", tr.mock.url)
    seed = h.secret("seed-pgb-" + os.urandom(4).hex())
    old = tr.store("bounced", seed, expires_in=7200)
    direct = "host=%s port=%s dbname=sdr_pgb user=%s" % (os.environ["PGHOST"], os.environ["PGPORT"], tr.APP)
    srv = server("sdr_pgb_tx", "--pool", "1", "--no-prepare", "--db-listen", direct, name="listen")
    r = tr.Refresher("--interval", "3600")
    try:
        assert h.wait_until(lambda: "refresher started" in r.log(), 10), "refresher did not start"
        t0 = time.time()
        resp = tr.post_refresh(srv, old["id"])
        took = time.time() - t0
        h.eq(resp.status, 200, "POST .../refresh: %r" % resp)
        assert resp.json()["access_token"].startswith("mock-at-"), "the new access token"
        h.eq(resp.json()["access_token"], tr.tokens("bounced")[0], "the stored token")
        h.eq(tr.mock.stats()["chains"].get(seed), 1, "refreshed once")
        assert took < 5, "answered in %.1f s" % took
        listen = tr.q("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                      "'sdr_creds_server_listen' AND client_port IS NOT NULL AND datname = 'sdr_pgb'")
        h.eq(listen, "1", "listening connections")
    finally:
        r.stop()
        h.eq(srv.stop(), 0, "exit status after SIGTERM")


def t_http_refresh_listen_through_bouncer():
    """Without --db-listen the LISTEN goes through transaction-mode PgBouncer:
    it is lost with the transaction that ran it, so the wait ends at
    --refresh-wait with 202 although the refresher refreshed."""
    tr.client("bounced2", tr.mock.url)
    old = tr.store("bounced2", h.secret("seed-pgb2-" + os.urandom(4).hex()), expires_in=7200)
    srv = server("sdr_pgb_tx", "--pool", "1", "--no-prepare", "--refresh-wait", "2", name="nolisten")
    r = tr.Refresher("--interval", "3600")
    try:
        assert h.wait_until(lambda: "refresher started" in r.log(), 10), "refresher did not start"
        resp = tr.post_refresh(srv, old["id"])
        h.eq(resp.status, 202, "POST .../refresh: %r" % resp)
        assert h.wait_until(lambda: tr.tokens("bounced2")[0].startswith("mock-at-"), 10), \
            "the refresher did refresh"
    finally:
        r.stop()
        srv.stop()


def setup_all():
    setup()
    tr.mock = tr.Mock()


def cleanup():
    for srv in tr.servers:
        srv.stop()
    for r in tr.refreshers:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait(10)
    if tr.mock:
        tr.mock.stop()
    if "bouncer" in ctx:
        h.check("pgbouncer: stops on SIGINT (safe shutdown), exit 0",
                lambda: h.eq(ctx["bouncer"].stop(), 0, "pgbouncer's exit status"))
    h.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % tr.DB, db="postgres", check_rc=False)
    h.psql("DROP ROLE IF EXISTS %s; DROP ROLE IF EXISTS %s" % (tr.ROLE, tr.APP), db="postgres", check_rc=False)


def main():
    return h.run_with_setup("pgbouncer", setup_all, [
        ("pgbouncer: transaction mode, one server connection: B's statement waits for A's transaction,"
         " then sees no org; B's own org only; A's next transaction none; a rollback leaves none",
         t_interleaved_transactions),
        ("pgbouncer: authenticate() alone ends with its implicit transaction (as direct); same statement"
         " or query string keeps it", t_authenticate_outside_transaction),
        ("pgbouncer: a key revoked by one client is refused at once on three other server connections"
         " that had authenticated it", t_revoke_on_other_server_connections),
        ("pgbouncer: HTTP server in session mode works as is (POST, GETs, list, isolation, concurrent orgs)",
         t_http_session_mode),
        ("pgbouncer: HTTP server in transaction mode without --no-prepare: 500 once a request runs on"
         " another server connection", t_http_transaction_mode_prepared_fails),
        ("pgbouncer: HTTP server in transaction mode with --no-prepare works (CRUD, concurrent orgs,"
         " another server connection)", t_http_transaction_mode_no_prepare),
        ("pgbouncer: POST .../refresh with --db via transaction mode and --db-listen direct: 200",
         t_http_refresh_db_listen),
        ("pgbouncer: POST .../refresh with LISTEN through transaction mode: 202 after --refresh-wait",
         t_http_refresh_listen_through_bouncer),
    ], cleanup, lambda: [ctx["bouncer"].log_path] + [s.log_path for s in tr.servers])


if __name__ == "__main__":
    sys.exit(main())
