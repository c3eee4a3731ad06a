#!/usr/bin/python3
"""Failover to a synchronous standby, nothing acknowledged lost.

A primary (test/cluster.sh, wal_log_hints = on) and a standby made from it
with pg_basebackup -R, named in the primary's synchronous_standby_names
(synchronous_commit = on), both on loopback ports and sockets of their own
under the suite's work directory, reading the same keyring file. The HTTP
server runs with
  --db      "host=127.0.0.1,127.0.0.1 port=P1,P2 ... target_session_attrs=read-write"
  --db-read "host=127.0.0.1 port=P2 ..."          (the standby)
under a mixed load (GET threads, POST threads storing new providers, a key
revoked before the kill). The primary's postmaster is SIGKILLed, the standby
promoted 2 s later, and then:
  - while no primary exists, answers are 503 with Retry-After (GETs may be
    200 from the standby), quickly, never 500;
  - within 10 s of the promotion POSTs are answered 201 again, by the same
    server process;
  - every POST answered 201/200 reads back from the new primary;
  - the key revoked before the kill is refused;
  - /metrics counts the reconnects;
  - the old primary, rewound with pg_rewind and started as a standby of the
    new one, serves a server's --db-read.

Run by test/failover/run.sh (PGPORT, SDR_SERVER, SDR_REFRESHER exported, the
work directory in SDR_REFRESH_WORK). Prints one "ok - ..." line per test and
"# " lines with the figures."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "http"))
import harness as h  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "refresher"))
import test_refresher as tr  # noqa: E402  (its mock OAuth provider)

WORK = os.environ["SDR_REFRESH_WORK"]
SERVER = os.environ["SDR_SERVER"]
DB = "sdr_failover"
ORG = "00000000-0000-4000-8000-0000000f0001"
DEADLINE = 5                       # the server's --request-deadline, s
BINDIR = os.environ.get("SDR_PG_ROOT", "") + subprocess.run(
    ["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
ctx = {"servers": [], "clusters": [], "procs": []}
SEED = h.secret("seed-failover-" + os.urandom(6).hex())


def as_owner(cmd):
    """cmd as the clusters' owner (postgres when run as root)."""
    return ["runuser", "-u", "postgres", "--"] + cmd if os.getuid() == 0 else cmd


def run(cmd, timeout=120, check=True, env_prefix=()):
    p = subprocess.run(as_owner(["env", *env_prefix, *cmd]), capture_output=True, text=True,
                       timeout=timeout, cwd="/")
    if check and p.returncode != 0:
        raise AssertionError("%s failed: %s" % (os.path.basename(cmd[0]), h.redact(p.stdout + p.stderr)[-800:]))
    return p


def pg(name, *args, **kw):
    return run([os.path.join(BINDIR, name), *args], **kw)


def port_free(port):
    import socket
    s = socket.socket()
    try:
        return s.connect_ex(("127.0.0.1", port)) != 0
    finally:
        s.close()


def free_port(start):
    port = start
    while not port_free(port):
        port += 1
    return port


class Cluster:
    """A data directory under WORK/name, its socket in WORK/name."""

    def __init__(self, name):
        self.dir = os.path.join(WORK, name)
        self.data = os.path.join(self.dir, "data")
        self.port = None
        ctx["clusters"].append(self)

    def start(self, first_port):
        """Starts it on first_port or the next free one (a port taken between
        the check and the start: the next ones)."""
        port = free_port(first_port)
        for _ in range(5):
            with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as f:
                f.write("port = %d\nunix_socket_directories = '%s'\n" % (port, self.dir))
            p = pg("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "postgres.log"), "-w", "-t", "60",
                   "start", check=False, env_prefix=os.environ.get("SDR_PG_ENV", "").split())
            if p.returncode == 0:
                self.port = port
                return
            h.diag("start on port %d failed: %s" % (port, self.log()[-300:]))
            port = free_port(port + 1)
        raise AssertionError("%s did not start" % self.dir)

    def log(self):
        try:
            return open(os.path.join(self.dir, "postgres.log"), errors="replace").read()
        except OSError:
            return ""

    def q(self, sql, db=DB, check=True):
        p = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                            "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError("psql on port %s: %s" % (self.port, h.redact(p.stderr)[-500:]))
        return p.stdout.strip() if check else (p.returncode, p.stdout.strip(), p.stderr)

    def conninfo(self, db=DB):
        return "host=127.0.0.1 port=%d dbname=%s user=postgres" % (self.port, db)

    def postmaster_pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    def stop(self):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            pg("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "30", "stop", check=False)


def wait_replayed(primary, standby):
    lsn = primary.q("SELECT pg_current_wal_lsn()")
    assert h.wait_until(lambda: standby.q("SELECT pg_last_wal_replay_lsn() >= '%s'" % lsn) == "t", 20), \
        "the standby did not replay up to %s" % lsn


def setup():
    primary = ctx["primary"] = Cluster("primary")
    # test/cluster.sh makes the keyring and the configuration; wal_log_hints
    # (for pg_rewind) needs a restart
    port = free_port(int(os.environ["PGPORT"]) + 2000)
    for _ in range(5):
        p = subprocess.run([os.path.join(TOP, "test/cluster.sh"), "start", primary.dir, str(port)],
                           capture_output=True, text=True, timeout=120)
        if p.returncode == 0:
            break
        subprocess.run([os.path.join(TOP, "test/cluster.sh"), "stop", primary.dir], capture_output=True)
        run(["rm", "-rf", primary.data])
        port = free_port(port + 1)
    assert p.returncode == 0, "the primary did not start: " + p.stderr[-500:]
    primary.port = port
    with open(os.path.join(primary.data, "postgresql.auto.conf"), "a") as f:
        f.write("wal_log_hints = on\nwal_keep_size = 256MB\n")
    subprocess.run([os.path.join(TOP, "test/cluster.sh"), "restart", primary.dir], check=True,
                   capture_output=True, timeout=120)
    primary.q("CREATE DATABASE %s" % DB, db="postgres")
    primary.q("CREATE EXTENSION sdr_creds CASCADE")
    ctx["key"] = h.secret(primary.q("SELECT sdr_creds.create_api_key('%s', 'failover') ->> 'key'" % ORG))
    ctx["key_revoked"] = h.secret(primary.q("SELECT sdr_creds.create_api_key('%s', 'failover revoked') ->> 'key'"
                                            % ORG))
    primary.q("SELECT sdr_creds.act_as('%s'); SELECT 1 FROM sdr_creds.store('salesforce', NULL, "
              "'made-up-failover-token', '{}')" % ORG)
    # a credential due for refresh (expires in 60 s; the refresher's window is
    # 300 s) at the mock provider, which holds the refresh until released
    mock = ctx["mock"] = tr.Mock()
    primary.q("SELECT sdr_creds.act_as('%s'); SELECT 1 FROM sdr_creds.set_oauth_client('hubspot', %s, "
              "'mock-client', %s, 'client_secret_basic', NULL); SELECT 1 FROM sdr_creds.store('hubspot', NULL, "
              "'made-up-failover-hs', %s)" % (ORG, h.sql_literal(mock.url), h.sql_literal(tr.CLIENT_SECRET),
                                                h.sql_literal(json.dumps({"refresh_token": SEED, "expires_in": 60}))))
    mock.mode("hold")

    standby = ctx["standby"] = Cluster("standby")
    os.mkdir(standby.dir, 0o700)
    if os.getuid() == 0:
        import pwd
        pw = pwd.getpwnam("postgres")
        os.chown(standby.dir, pw.pw_uid, pw.pw_gid)
    pg("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres", "-D", standby.data,
       "-R", "-X", "stream", "-c", "fast")
    # the name synchronous_standby_names gives it (after pg_basebackup's own line)
    with open(os.path.join(standby.data, "postgresql.auto.conf"), "a") as f:
        f.write("primary_conninfo = 'host=127.0.0.1 port=%d user=postgres application_name=sdr_sync'\n"
                % primary.port)
    standby.start(primary.port + 1)
    with open(os.path.join(primary.data, "postgresql.auto.conf"), "a") as f:
        f.write("synchronous_standby_names = 'sdr_sync'\nsynchronous_commit = on\n")
    primary.q("SELECT pg_reload_conf()", db="postgres")
    assert h.wait_until(lambda: primary.q("SELECT sync_state FROM pg_stat_replication "
                                          "WHERE application_name = 'sdr_sync'", db="postgres") == "sync", 20), \
        "the standby is not synchronous"


def server(db, db_read, log):
    s = h.Server(SERVER, db, os.path.join(WORK, log),
                 ["--db-read", db_read, "--pool", "4", "--request-deadline", str(DEADLINE)])
    ctx["servers"].append(s)
    return s


def t_synchronous_standby():
    primary, standby = ctx["primary"], ctx["standby"]
    h.eq(primary.q("SELECT sync_state FROM pg_stat_replication", db="postgres"), "sync", "sync_state")
    h.eq(standby.q("SELECT pg_is_in_recovery()"), "t", "the standby in recovery")
    h.eq(primary.q("SHOW wal_log_hints"), "on", "wal_log_hints on the primary")


class Load:
    """GET and POST threads; every answer as (method, start, end, status,
    Retry-After, provider)."""

    def __init__(self, port):
        self.port, self.stop, self.answers, self.lock = port, threading.Event(), [], threading.Lock()
        self.threads = [threading.Thread(target=self.get) for _ in range(2)] + \
            [threading.Thread(target=self.post, args=(i,)) for i in range(2)]

    def one(self, method, path, body=None, provider=None):
        start = time.monotonic()
        headers = {"X-API-Key": ctx["key"]}
        if body:
            headers["Content-Type"] = "application/json"
        try:
            r = h.request(self.port, method, path, json.dumps(body) if body else None, headers,
                          timeout=3 * DEADLINE)
            status, retry = r.status, r.header("retry-after")
        except Exception as e:  # noqa: BLE001 - recorded: no answer at all fails the tests
            status, retry = "no answer: %s" % type(e).__name__, None
        with self.lock:
            self.answers.append((method, start, time.monotonic(), status, retry, provider))
        time.sleep(0.02)

    def get(self):
        while not self.stop.is_set():
            self.one("GET", "/integration-credentials/provider/salesforce")

    def post(self, i):
        n = 0
        while not self.stop.is_set():
            n += 1
            provider = "failover-%d-%d" % (i, n)
            self.one("POST", "/integration-credentials", {"provider": provider,
                                                            "access_token": "made-up-%s" % provider}, provider)

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)


def t_failover_under_load():
    primary, standby, mock = ctx["primary"], ctx["standby"], ctx["mock"]
    db = "host=127.0.0.1,127.0.0.1 port=%d,%d dbname=%s user=postgres target_session_attrs=read-write " \
        "connect_timeout=2" % (primary.port, standby.port, DB)
    s = ctx["server"] = server(db, standby.conninfo(), "server.log")
    ctx["refresher_log"] = os.path.join(WORK, "refresher.log")
    ctx["refresher"] = subprocess.Popen([os.environ["SDR_REFRESHER"], "--db", db, "--allow-http-loopback",
                                         "--interval", "1"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=open(ctx["refresher_log"], "w"))
    ctx["procs"].append(ctx["refresher"])
    load = ctx["load"] = Load(s.port)
    load.start()
    try:
        time.sleep(2)
        # the revoke commits on the primary only once the standby has it
        primary.q("SELECT sdr_creds.revoke_api_key(id) FROM sdr_creds.api_keys WHERE key_hash = "
                  "sha256(convert_to(%s, 'UTF8'))" % h.sql_literal(ctx["key_revoked"]))
        # the refresher has claimed the credential and sent its refresh token
        assert h.wait_until(lambda: mock.stats()["held"] >= 1, 10), "the refresher sent no refresh request"
        time.sleep(1)
        ctx["kill"] = time.monotonic()
        os.kill(primary.postmaster_pid(), signal.SIGKILL)
        # the provider's answer arrives while no primary exists
        time.sleep(0.3)
        mock.call("/_release", {})
        assert h.wait_until(lambda: mock.stats()["refreshed"] == 1, 10), "the provider did not answer"
        ctx["answered"] = time.monotonic()
        time.sleep(max(0, ctx["kill"] + 2 - time.monotonic()))
        ctx["promote"] = time.monotonic()
        pg("pg_ctl", "-D", standby.data, "-w", "-t", "30", "promote")
        ctx["promoted"] = time.monotonic()
        # until a POST started after the promotion is answered 201, then 3 s more
        h.wait_until(lambda: any(a[0] == "POST" and a[1] >= ctx["promote"] and a[3] in (200, 201)
                                 for a in list(load.answers)), 15)
        time.sleep(3)
    finally:
        load.finish()
    assert s.proc.poll() is None, "the server exited"
    before = [a for a in load.answers if a[2] < ctx["kill"]]
    h.diag("answers before the kill: %s" % count(before))
    assert before and all(a[3] in (200, 201) for a in before), "before the kill: %s" % count(before)


def count(answers):
    c = {}
    for a in answers:
        c["%s %s" % (a[0], a[3])] = c.get("%s %s" % (a[0], a[3]), 0) + 1
    return dict(sorted(c.items()))


def t_no_primary_503():
    load = ctx["load"]
    # from the kill until writes are answered again
    back = min((a[1] for a in load.answers if a[0] == "POST" and a[1] >= ctx["promote"]
                and a[3] in (200, 201)), default=float("inf"))
    during = [a for a in load.answers if a[2] >= ctx["kill"] and a[1] < back]
    unavailable = [a for a in during if a[3] == 503]
    h.diag("answers from the kill until writes came back: %s" % count(during))
    # A write is acknowledged in the window only by a primary: one sent before
    # the kill, or answered within a second of it (the old primary's backends
    # outlive its postmaster for a moment, and their commits reach the
    # synchronous standby), or answered once the promotion began (a request
    # that met a reconnect in progress). The readback test checks each is on
    # the new primary. Any other request gets 503, or 200 for a GET from the
    # standby.
    acked = [a for a in during if a[3] in (200, 201) and not (a[0] == "GET" and a[3] == 200)]
    for a in acked:
        h.diag("%s %s in the window: sent %+.3f s, answered %+.3f s from the kill (promotion at %+.3f s)"
               % (a[0], a[3], a[1] - ctx["kill"], a[2] - ctx["kill"], ctx["promote"] - ctx["kill"]))
    wrong = [a for a in during if not (a[3] == 503 or (a[0] == "GET" and a[3] == 200)
                                       or (a in acked and (a[1] < ctx["kill"] or a[2] < ctx["kill"] + 1
                                                           or a[2] >= ctx["promote"])))]
    assert not wrong, "other answers while no primary existed: %s" % count(wrong)
    assert unavailable, "no 503 while no primary existed"
    assert all(a[4] is not None and a[4].isdigit() for a in unavailable), "a 503 without Retry-After"
    slowest = max(a[2] - a[1] for a in unavailable)
    h.diag("503s: %d, the slowest answered in %.3f s (--request-deadline %d s)"
           % (len(unavailable), slowest, DEADLINE))
    assert slowest < DEADLINE, "a 503 took %.1f s" % slowest
    everything = count(load.answers)
    assert not any(k.endswith(" 500") or "no answer" in k for k in everything), "answers: %s" % everything


def t_recovered_within_10s():
    load = ctx["load"]
    first = min((a[2] for a in load.answers if a[0] == "POST" and a[1] >= ctx["promote"]
                 and a[3] in (200, 201)), default=None)
    assert first is not None, "no POST answered 201 after the promotion"
    h.diag("seconds from the promotion to the first POST answered 201: %.2f (pg_ctl promote returned "
           "after %.2f s)" % (first - ctx["promote"], ctx["promoted"] - ctx["promote"]))
    assert first - ctx["promote"] < 10, "recovered after %.1f s" % (first - ctx["promote"])
    tail = [a for a in load.answers if a[1] > first + 0.5]
    assert tail and all(a[3] in (200, 201) for a in tail), "after recovering: %s" % count(tail)
    r = h.request(ctx["server"].port, "GET", "/integration-credentials/provider/salesforce",
                  headers={"X-API-Key": ctx["key"]})
    h.eq(r.status, 200, "a GET on the same server process")


def t_no_acknowledged_write_lost():
    load, standby = ctx["load"], ctx["standby"]
    acked = {a[5]: a[2] < ctx["kill"] for a in load.answers if a[0] == "POST" and a[3] in (200, 201)}
    stored = set(standby.q("SELECT provider FROM sdr_creds.credentials WHERE org_id = '%s'" % ORG).split("\n"))
    lost = sorted(p for p in acked if p not in stored)
    h.diag("POSTs acknowledged: %d before the kill, %d in all; lost: %d"
           % (sum(acked.values()), len(acked), len(lost)))
    assert sum(acked.values()) > 0, "no POST acknowledged before the kill"
    assert not lost, "acknowledged, not stored: %s" % lost[:10]
    for p in sorted(acked)[:3] + sorted(acked)[-3:]:
        r = h.request(ctx["server"].port, "GET", "/integration-credentials/provider/" + p,
                      headers={"X-API-Key": ctx["key"]})
        h.eq((r.status, r.json().get("access_token")), (200, "made-up-" + p), "reading back " + p)


def t_revoked_key_refused():
    r = h.request(ctx["server"].port, "GET", "/integration-credentials/provider/salesforce",
                  headers={"X-API-Key": ctx["key_revoked"]})
    h.eq(r.status, 401, "the key revoked before the kill, through the server")
    rc, _, err = ctx["standby"].q("SELECT sdr_creds.authenticate(%s)" % h.sql_literal(ctx["key_revoked"]),
                                  check=False)
    assert rc != 0 and "Invalid or missing authentication credentials" in err, \
        "the revoked key over SQL on the new primary: " + h.redact(err)


def t_metrics_reconnects():
    r = h.request(ctx["server"].port, "GET", "/metrics")
    line = [x for x in r.body.decode().splitlines() if x.startswith("sdr_creds_db_reconnects_total ")]
    h.eq(len(line), 1, "the reconnects metric")
    n = float(line[0].split()[1])
    h.diag("sdr_creds_db_reconnects_total %d" % n)
    assert n >= 1, "no reconnect counted"
    unavailable = [x for x in r.body.decode().splitlines() if x.startswith("sdr_creds_http_unavailable_total ")]
    assert unavailable and float(unavailable[0].split()[1]) >= 1, "503s not counted: %s" % unavailable


def hubspot(cluster):
    """The hubspot credential's (access token, refresh token, refresh_status)."""
    j = json.loads(cluster.q("SELECT sdr_creds.act_as('%s'); SELECT sdr_creds.get_by_provider('hubspot')"
                             % ORG).splitlines()[-1])
    meta = j.get("metadata") or {}
    return h.secret(j.get("access_token")), h.secret(meta.get("refresh_token")), meta.get("refresh_status")


def t_refresh_answer_kept():
    mock, new = ctx["mock"], ctx["standby"]
    assert ctx["answered"] < ctx["promote"], "the provider answered after the promotion"
    got = h.wait_until(lambda: hubspot(new)[1].startswith("mock-rt-") and hubspot(new), 20)
    assert got, "the credential was not refreshed on the new primary: refresh token %s..., status %s" \
        % (hubspot(new)[1][:5], hubspot(new)[2])
    h.eq((got[0][:8], got[1][:8], got[2]), ("mock-at-", "mock-rt-", None),
         "(access token, refresh token, refresh_status) prefixes")
    st = mock.stats()
    h.eq((st["reused"], st["invalid_grant"], st["chains"].get(SEED)), (0, 0, 1),
         "the provider's (reused, invalid_grant, refreshes of the chain)")
    log = open(ctx["refresher_log"], errors="replace").read()
    assert "kept in memory" in log and "(kept answer) outcome=refreshed" in log, \
        "the refresher's log: " + h.redact(log)[-600:]
    assert ctx["refresher"].poll() is None, "the refresher exited"
    # the stored refresh token is the provider's live one: the next refresh works
    cid = new.q("SELECT id FROM sdr_creds.credentials WHERE provider = 'hubspot'")
    new.q("SELECT sdr_creds.act_as('%s'); SELECT 1 FROM sdr_creds.request_refresh('%s')" % (ORG, cid))
    assert h.wait_until(lambda: mock.stats()["chains"].get(SEED) == 2, 20), "no second refresh"
    st = mock.stats()
    h.eq((st["reused"], st["invalid_grant"]), (0, 0), "after the second refresh: (reused, invalid_grant)")
    assert h.wait_until(lambda: hubspot(new)[1] != got[1] and hubspot(new)[2] is None, 10), \
        "the second refresh was not stored"
    h.diag("the refresh answered while no primary existed was stored on the new primary; the provider "
           "saw no refresh token twice (%d refreshes, 0 reused)" % st["refreshed"])


def t_kept_answer_dropped_if_row_changed():
    """The refresher's connection lost while the provider holds its answer,
    the credential stored anew meanwhile: the kept answer is dropped, the new
    refresh token refreshed (no reuse, no invalid_grant)."""
    mock, new = ctx["mock"], ctx["standby"]
    seed_a, seed_b = (h.secret("seed-failover-%s-%s" % (x, os.urandom(6).hex())) for x in "ab")
    act = "SELECT sdr_creds.act_as('%s'); " % ORG
    store = act + "SELECT 1 FROM sdr_creds.store('close', NULL, 'made-up-failover-close', %s)"
    held = mock.stats()["held"]
    mock.mode("hold")
    new.q(act + "SELECT 1 FROM sdr_creds.set_oauth_client('close', %s, 'mock-client', %s, 'client_secret_basic', "
          "NULL)" % (h.sql_literal(mock.url), h.sql_literal(tr.CLIENT_SECRET)))
    new.q(store % h.sql_literal(json.dumps({"refresh_token": seed_a, "expires_in": 60})))
    assert h.wait_until(lambda: mock.stats()["held"] > held, 15), "the refresher sent no refresh request"
    h.eq(new.q("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%%refresh_claim%%' "
               "AND pid <> pg_backend_pid()", db=DB), "t", "the refresher's backend terminated")
    new.q(store % h.sql_literal(json.dumps({"refresh_token": seed_b, "expires_in": 60})))
    mock.call("/_release", {})

    def close():
        j = json.loads(new.q(act + "SELECT sdr_creds.get_by_provider('close')").splitlines()[-1])
        return h.secret((j.get("metadata") or {}).get("refresh_token"))
    assert h.wait_until(lambda: close().startswith("mock-rt-"), 20), "not refreshed: %s..." % close()[:5]
    st = mock.stats()
    h.eq((st["chains"].get(seed_a), st["chains"].get(seed_b), st["reused"], st["invalid_grant"]), (1, 1, 0, 0),
         "the provider's refreshes of (the first token, the second), reused, invalid_grant")
    log = open(ctx["refresher_log"], errors="replace").read()
    assert "the kept answer dropped: the credential's refresh token changed meanwhile" in log, \
        "the refresher's log: " + h.redact(log)[-600:]


def t_old_primary_rewound():
    old, new = ctx["primary"], ctx["standby"]
    # the promotion's timeline must be in the new primary's control file
    new.q("CHECKPOINT", db="postgres")
    pg("pg_rewind", "-D", old.data, "--source-server", new.conninfo("postgres"), "-R", timeout=180)
    # pg_rewind copied the new primary's configuration: its own port and
    # socket again, and no synchronous standby name to wait for
    with open(os.path.join(old.data, "postgresql.auto.conf"), "a") as f:
        f.write("synchronous_standby_names = ''\n")
    old.start(old.port)
    h.eq(old.q("SELECT pg_is_in_recovery()"), "t", "the old primary in recovery")
    new.q("SELECT sdr_creds.act_as('%s'); SELECT 1 FROM sdr_creds.store('after-rewind', NULL, "
          "'made-up-after-rewind', '{}')" % ORG)
    wait_replayed(new, old)
    s = server(new.conninfo(), old.conninfo(), "server-rewound.log")
    old.q("SELECT sdr_creds.usage_reset()")
    new.q("SELECT sdr_creds.usage_reset()")
    for p in ("salesforce", "after-rewind"):
        r = h.request(s.port, "GET", "/integration-credentials/provider/" + p, headers={"X-API-Key": ctx["key"]})
        h.eq((r.status, r.json().get("access_token")), (200, "made-up-" + ("failover-token" if p == "salesforce"
                                                                         else p)), "GET " + p)
    calls = "SELECT coalesce(sum(calls), 0) FROM sdr_creds.usage WHERE org_id = '%s' AND action = " \
            "'get_by_provider'" % ORG
    h.eq((old.q(calls), new.q(calls)), ("2", "0"), "get_by_provider calls on (the rewound standby, the primary)")


def t_no_secret_in_logs():
    for path in [s.log_path for s in ctx["servers"]] + [ctx["refresher_log"]]:
        log = open(path, errors="replace").read()
        for v in [ctx["key"], ctx["key_revoked"], "made-up", SEED, "mock-rt-", "mock-at-", tr.CLIENT_SECRET]:
            assert v not in log, "a key or token in %s" % os.path.basename(path)


def cleanup():
    for s in ctx["servers"]:
        s.stop()
    for p in ctx["procs"]:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    if "mock" in ctx:
        ctx["mock"].stop()
    for c in ctx["clusters"]:
        c.stop()


def main():
    tests = [
        ("failover: a primary with wal_log_hints and a synchronous standby", t_synchronous_standby),
        ("failover: under load, the primary SIGKILLed, the standby promoted, the server still running",
         t_failover_under_load),
        ("failover: while no primary existed, 503 with Retry-After before --request-deadline (GETs 200 "
         "from the standby), never 500", t_no_primary_503),
        ("failover: within 10 s of the promotion, POSTs answered 201 by the same server", t_recovered_within_10s),
        ("failover: every POST answered 201/200 reads back from the new primary", t_no_acknowledged_write_lost),
        ("failover: a key revoked before the kill is refused after it", t_revoked_key_refused),
        ("failover: a refresh answered while no primary existed is stored on the new primary, the refresher "
         "still running; the provider saw no refresh token twice", t_refresh_answer_kept),
        ("failover: a kept answer is dropped when the credential was stored anew meanwhile",
         t_kept_answer_dropped_if_row_changed),
        ("failover: /metrics counts the reconnects and the 503s", t_metrics_reconnects),
        ("failover: the old primary, rewound with pg_rewind, serves a server's --db-read", t_old_primary_rewound),
        ("failover: no key or token in the servers' or the refresher's logs", t_no_secret_in_logs),
    ]
    return h.run_with_setup("failover", setup, tests, cleanup,
                     logs=lambda: [os.path.join(c.dir, "postgres.log") for c in ctx["clusters"]]
                     + [s.log_path for s in ctx["servers"]] + [ctx.get("refresher_log")])


if __name__ == "__main__":
    sys.exit(main())
