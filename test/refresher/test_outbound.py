"""The refresher's outbound requests: the address fence (token URLs and JWKS
URLs whose host resolves to a non-public address are refused before any
connection), sdr_creds.outbound_hosts, and --jwks ISSUER=URL keeping issuers'
key sets current, against a local HTTPS server (mock_jwks.py) with a
throwaway CA and a real PostgreSQL. Only loopback traffic.

Run by test/refresher/run.sh after test_refresher.py (same environment).
Prints one "ok - ..." / "not ok - ..." line per test."""

import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_refresher as tr  # noqa: E402  (its database, roles and helpers)

h = tr.h
WORK = tr.WORK
ISSUER = "https://tenant.auth0.example/"
CA = os.path.join(WORK, "ca.pem")
logs = []
jwks_server = None


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def make_ca():
    """A throwaway CA and a certificate for localhost and 127.0.0.1 issued by it."""
    key, cert = os.path.join(WORK, "server-key.pem"), os.path.join(WORK, "server.pem")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
            "-subj", "/CN=sdr_creds test CA", "-keyout", os.path.join(WORK, "ca-key.pem"), "-out", CA)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost",
            "-keyout", key, "-out", os.path.join(WORK, "server.csr"))
    with open(os.path.join(WORK, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", os.path.join(WORK, "server.csr"), "-CA", CA, "-CAkey",
            os.path.join(WORK, "ca-key.pem"), "-CAcreateserial", "-days", "1", "-extfile",
            os.path.join(WORK, "ext.cnf"), "-out", cert)
    return cert, key


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def ec_jwk(kid):
    """A fresh P-256 public key as a JWK (Supabase/Auth0-style members)."""
    pem = openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout")
    der = openssl("ec", "-pubout", "-outform", "DER", data=pem)
    point = der[-65:]
    return {"kty": "EC", "crv": "P-256", "x": b64url(point[1:33]), "y": b64url(point[33:]),
            "kid": kid, "alg": "ES256", "use": "sig"}


def rsa_jwk(kid):
    """A fresh RSA 2048 public key as Auth0 publishes it (n, e, kid, alg, use)."""
    pem = openssl("genrsa", "2048")
    modulus = openssl("rsa", "-noout", "-modulus", data=pem).decode().strip().split("=", 1)[1]
    return {"kty": "RSA", "n": b64url(bytes.fromhex(modulus)), "e": "AQAB", "kid": kid, "alg": "RS256",
            "use": "sig"}


class JwksServer:
    def __init__(self):
        cert, key = make_ca()
        port_file = os.path.join(WORK, "jwks.port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.proc = subprocess.Popen([sys.executable, "-B", os.path.join(HERE, "mock_jwks.py"), port_file, cert, key],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(WORK, "jwks.log"), "w"))
        assert h.wait_until(lambda: os.path.exists(port_file), 10), "mock_jwks did not start"
        self.port = int(open(port_file).read())
        self.url = "https://localhost:%d/jwks" % self.port
        self.ctx = ssl.create_default_context(cafile=CA)

    def call(self, path, body=None):
        req = urllib.request.Request("https://localhost:%d%s" % (self.port, path),
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=10, context=self.ctx) as r:
            return json.loads(r.read())

    def set(self, **kw):
        self.call("/_set", kw)

    def count(self, path="/jwks"):
        return self.call("/_stats").get(path, 0)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def refresher(*args, timeout=60):
    """sdr_creds_refresher --once with these flags; its log (stderr)."""
    p = subprocess.run([tr.BIN, "--db", tr.conninfo(), "--once", *args], capture_output=True, text=True,
                       timeout=timeout)
    logs.append(p.stderr)
    assert p.returncode == 0, "refresher exited %d: %s" % (p.returncode, p.stderr[-500:])
    return p.stderr


def jwks_lines(log):
    return [line for line in log.splitlines() if " jwks issuer=" in line]


def fetch(*args, issuer=ISSUER):
    """One --once run fetching the mock's JWKS for issuer; its single jwks log line."""
    lines = jwks_lines(refresher("--ca-file", CA, "--allow-http-loopback", "--jwks",
                                 "%s=%s" % (issuer, jwks_server.url), *args))
    h.eq(len(lines), 1, "jwks log lines")
    return lines[0]


def stored(issuer=ISSUER):
    out = tr.q("SELECT jwks FROM sdr_creds.list_issuers() WHERE issuer = '%s'" % issuer)
    return json.loads(out) if out else None


def set_issuer_calls():
    """Calls of sdr_creds.set_issuer by any backend that has ended (track_functions = all)."""
    tr.q("SELECT pg_stat_clear_snapshot()")
    return int(tr.q("SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions"
                    " WHERE schemaname = 'sdr_creds' AND funcname = 'set_issuer'"))


class Listener:
    """A TCP listener on a loopback port that counts the connections it accepts."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.six = None
        try:  # localhost may resolve to ::1 first: listen there on the same port too
            self.six = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            self.six.bind(("::1", self.port))
            self.six.listen(16)
            self.six.settimeout(0.2)
        except OSError:
            self.six = None
        self.accepted = 0
        self.running = True
        self.threads = [threading.Thread(target=self.loop, args=(s,), daemon=True) for s in (self.sock, self.six) if s]
        for t in self.threads:
            t.start()

    def loop(self, s):
        while self.running:
            try:
                c, _ = s.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted += 1
            c.close()

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join(5)
        for s in (self.sock, self.six):
            if s:
                s.close()


def test_token_url_to_loopback_refused():
    lst = Listener()
    try:
        tr.client("fenced", "https://localhost:%d/token" % lst.port)
        tr.store("fenced", h.secret("seed-f-" + os.urandom(4).hex()))
        log = refresher()
        time.sleep(0.3)
        h.eq(lst.accepted, 0, "connections to the listener without --allow-private-hosts")
        h.eq(tr.column("fenced", "refresh_error"), "refused_loopback", "refresh_error")
        line = [x for x in log.splitlines() if "provider=fenced" in x]
        h.eq(len(line), 1, "log lines of the refresh")
        assert ("outcome=retry error=refused_loopback" in line[0] and
                "refused: token URL resolves to a loopback address (use --allow-private-hosts)" in line[0]), line[0]
        # the control: with the flag the same refresh does connect (and fails on TLS: no server speaks there)
        tr.q("UPDATE sdr_creds.credentials SET refresh_retry_at = NULL WHERE provider = 'fenced'")
        refresher("--allow-private-hosts")
        assert h.wait_until(lambda: lst.accepted > 0, 5), "no connection with --allow-private-hosts"
        assert tr.column("fenced", "refresh_error") in ("connection_lost", "tls_failed"), \
            tr.column("fenced", "refresh_error")
    finally:
        lst.stop()
        tr.q("DELETE FROM sdr_creds.credentials WHERE provider = 'fenced'")


def test_outbound_hosts_superuser_only():
    _, err, rc = tr.as_org_try("SET sdr_creds.outbound_hosts = ''")
    assert rc != 0 and "permission denied to set parameter" in err, err[-300:]


def test_jwks_first_changed_unchanged():
    k1, k2 = rsa_jwk("rsa-1"), ec_jwk("ec-2")
    tr.q("SELECT 1 FROM sdr_creds.set_issuer('%s', '{\"keys\": %s}', 'https://api.example/', 'https://example.com/org_id')"
         % (ISSUER, json.dumps([k1])))
    jwks_server.set(jwks={"keys": [k1, k2]}, cache_control=None, mode="ok")
    calls = set_issuer_calls()
    line = fetch()
    assert "http=200 outcome=stored next=3600s" in line, line
    h.eq(stored(), {"keys": [k1, k2]}, "stored key set after the first fetch")
    h.eq(tr.q("SELECT audience || ' ' || org_claim FROM sdr_creds.list_issuers() WHERE issuer = '%s'" % ISSUER),
         "https://api.example/ https://example.com/org_id", "audience and org claim kept")
    h.eq(set_issuer_calls(), calls + 1, "set_issuer calls")
    # unchanged (the same keys, another order of members): no set_issuer call
    jwks_server.set(jwks={"keys": [dict(reversed(list(k1.items()))), k2]})
    updated = tr.q("SELECT updated_at FROM sdr_creds.list_issuers() WHERE issuer = '%s'" % ISSUER)
    line = fetch()
    assert "http=200 outcome=unchanged" in line, line
    h.eq(set_issuer_calls(), calls + 1, "set_issuer calls after an unchanged key set")
    h.eq(tr.q("SELECT updated_at FROM sdr_creds.list_issuers() WHERE issuer = '%s'" % ISSUER), updated, "updated_at")
    # rotated: k1 removed
    jwks_server.set(jwks={"keys": [k2]})
    assert "outcome=stored" in fetch(), "rotation"
    h.eq(stored(), {"keys": [k2]}, "stored key set after the rotation")
    h.eq(set_issuer_calls(), calls + 2, "set_issuer calls after the rotation")


def test_jwks_failures_keep_keys():
    before = stored()
    assert before, "no key set stored"
    calls = set_issuer_calls()
    for mode, args, want in [("error500", (), "http=500 outcome=kept error=http_500 next=60s"),
                             ("huge", (), "outcome=kept error=response_too_large"),
                             ("redirect", (), "http=302 outcome=kept error=http_302"),
                             ("slow", ("--timeout", "2"), "outcome=kept error=timeout")]:
        jwks_server.set(mode=mode)
        t0 = time.time()
        line = fetch(*args)
        assert want in line, "%s: %s" % (mode, line)
        if mode == "slow":
            assert time.time() - t0 < 5, "the slow answer was not cut at --timeout 2"
        h.eq(stored(), before, "keys after " + mode)
    h.eq(jwks_server.count("/moved"), 0, "requests that followed the redirect")
    h.eq(set_issuer_calls(), calls, "set_issuer calls on failures")
    # an answer that is not a key set the database accepts: refused, keys kept
    jwks_server.set(mode="ok", jwks={"keys": "not a list"})
    line = fetch()
    assert "outcome=kept error=rejected" in line, line
    h.eq(stored(), before, "keys after a rejected key set")
    jwks_server.set(jwks=before)


def test_jwks_max_age_bounded():
    for cc, want in [("public, max-age=120, must-revalidate", "next=120s"), ("max-age=5", "next=60s"),
                     ("max-age=99999999", "next=86400s"), ("no-cache", "next=3600s"), (None, "next=3600s")]:
        jwks_server.set(mode="ok", cache_control=cc)
        line = fetch()
        assert want in line, "Cache-Control %r: %s" % (cc, line)
    # a running refresher does not fetch again before max-age (60 s at least), though it wakes every second
    jwks_server.set(cache_control="max-age=120")
    n = jwks_server.count()
    r = tr.Refresher("--interval", "1", "--ca-file", CA, "--jwks", "%s=%s" % (ISSUER, jwks_server.url))
    try:
        assert h.wait_until(lambda: jwks_server.count() > n, 10), "the running refresher fetched nothing"
        time.sleep(3)
        h.eq(jwks_server.count(), n + 1, "fetches in 3 s with max-age=120")
    finally:
        r.stop()
        logs.append(r.log())


def test_jwks_fence_and_configuration():
    # without --allow-http-loopback or --allow-private-hosts: localhost refused, nothing fetched
    n = jwks_server.count()
    lines = jwks_lines(refresher("--ca-file", CA, "--jwks", "%s=%s" % (ISSUER, jwks_server.url)))
    h.eq(len(lines), 1, "jwks log lines")
    assert ("outcome=kept error=refused_loopback" in lines[0] and
            "refused: JWKS URL resolves to a loopback address (use --allow-private-hosts)" in lines[0]), lines[0]
    h.eq(jwks_server.count(), n, "requests without the flags")
    lines = jwks_lines(refresher("--ca-file", CA, "--allow-private-hosts", "--jwks", "%s=%s" % (ISSUER, jwks_server.url)))
    assert "http=200 outcome=unchanged" in lines[0], lines
    # the certificate is checked: without the test CA, TLS fails
    lines = jwks_lines(refresher("--allow-private-hosts", "--jwks", "%s=%s" % (ISSUER, jwks_server.url)))
    assert "outcome=kept error=tls_failed" in lines[0], lines
    # an issuer not configured in the database: one line, skipped
    line = fetch(issuer="https://unknown.example/")
    assert "outcome=not_configured" in line and "configure it first" in line, line
    h.eq(stored("https://unknown.example/"), None, "unknown issuer stored")
    # the refresher's role without EXECUTE on set_issuer: a clear line
    tr.q("REVOKE EXECUTE ON FUNCTION sdr_creds.set_issuer(text, jsonb, text, text) FROM %s" % tr.ROLE)
    try:
        jwks_server.set(jwks={"keys": [ec_jwk("ec-3")]})
        line = fetch()
        assert "outcome=kept error=permission_denied" in line and "needs EXECUTE on" in line, line
    finally:
        tr.q("GRANT EXECUTE ON FUNCTION sdr_creds.set_issuer(text, jsonb, text, text) TO %s" % tr.ROLE)
    # a --jwks URL that is not https: usage error
    p = subprocess.run([tr.BIN, "--db", tr.conninfo(), "--once", "--jwks", ISSUER + "=http://example.com/jwks"],
                       capture_output=True, text=True, timeout=30)
    h.eq(p.returncode, 2, "exit code for an http:// JWKS URL")


def test_no_key_in_logs():
    doc = json.dumps(stored()) + json.dumps(jwks_server.call("/_stats"))
    text = "".join(logs)
    assert " jwks issuer=" in text, "no jwks log lines"
    for k in (stored() or {}).get("keys", []):
        for member in ("n", "x", "y"):
            if member in k:
                assert k[member][:24] not in text, "a key's %s in the refresher's log" % member
    assert doc  # the key set itself was read


def setup():
    tr.setup()
    tr.q("GRANT EXECUTE ON FUNCTION sdr_creds.list_issuers(), sdr_creds.set_issuer(text, jsonb, text, text) TO %s;"
         " ALTER ROLE %s SET track_functions = 'all'" % (tr.ROLE, tr.ROLE))


def main():
    global jwks_server
    setup()
    jwks_server = JwksServer()
    try:
        h.run_tests([
            ("fence: a token URL whose host resolves to 127.0.0.1 (localhost) is refused without"
             " --allow-private-hosts: no connection reaches a listener there, refresh_error = refused_loopback,"
             " one log line naming the class; with the flag it connects", test_token_url_to_loopback_refused),
            ("fence: sdr_creds.outbound_hosts can be set by a superuser only", test_outbound_hosts_superuser_only),
            ("--jwks: the first fetch stores the keys (audience, org claim kept); an unchanged key set makes no"
             " set_issuer call (pg_stat_user_functions, updated_at); a rotated one is stored",
             test_jwks_first_changed_unchanged),
            ("--jwks: 500, a 10 MB answer, a redirect (not followed) and a slow answer (cut at --timeout) keep the"
             " last good keys with one log line each; a key set the database refuses too", test_jwks_failures_keep_keys),
            ("--jwks: Cache-Control max-age honoured within 60 s..24 h (default 1 h); a running refresher does not"
             " fetch before it", test_jwks_max_age_bounded),
            ("--jwks: localhost refused without the flags, allowed with --allow-private-hosts; TLS verified"
             " (--ca-file); an unconfigured issuer skipped; missing grants named; http:// refused",
             test_jwks_fence_and_configuration),
            ("--jwks: no key material in the refresher's log", test_no_key_in_logs),
        ], timed=True)
    finally:
        for r in tr.refreshers:
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait(10)
        jwks_server.stop()
        h.psql("DROP DATABASE IF EXISTS %s" % tr.DB, db="postgres", check_rc=False)
        h.psql("DROP ROLE IF EXISTS %s; DROP ROLE IF EXISTS %s" % (tr.ROLE, tr.APP), db="postgres", check_rc=False)
    sys.exit(h.finish())


if __name__ == "__main__":
    main()
