#!/usr/bin/python3
"""HTTP tests of sdr_creds_server over a real socket, against the throwaway
cluster test/run.sh started (PGHOST, PGPORT, PGUSER, SDR_CLUSTER_DIR,
SDR_SERVER). Creates database sdr_http and role sdr_http_app, starts the
server as that role, runs every row of the README's HTTP API table and the operational
tests (database restart, SIGTERM drain, access log), then cleans up.

Prints one "ok - name" / "not ok - name" line per test; diagnostics start
with "# " and never contain a key, token or JWT."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "jwt"))
import tokens as jose  # noqa: E402  (python3-jwt: tokens of identity providers)
from harness import (HERE, Server, diag, eq, finish, jwt, parse_raw, pg_ctl, psql,  # noqa: E402
                     raw, request, secret, seen, sql_literal, wait_until)
import harness  # noqa: E402

DB = "sdr_http"
ROLE = "sdr_http_app"
FIELDS = ["id", "org_id", "provider", "dsn", "access_token", "metadata", "created_at", "updated_at"]
UNAUTHORIZED = "Invalid or missing authentication credentials"
FORBIDDEN = "You do not have permission to access this resource"
WORK = os.environ.get("SDR_HTTP_WORK") or "/tmp"

ORG_A = str(uuid.uuid4())
ORG_B = str(uuid.uuid4())
ctx = {}


def reuse(db, role, work):
    """For the suites that reuse setup() (test_attacks.py, test/openapi): their
    own database, role and work directory."""
    global DB, ROLE, WORK
    DB, ROLE, WORK = db, role, work
    os.makedirs(WORK, exist_ok=True)


# --- setup -------------------------------------------------------------------

def setup():
    os.environ["SDR_HTTP_DB"] = DB
    psql("DROP DATABASE IF EXISTS %s" % DB, db="postgres")
    psql("CREATE DATABASE %s" % DB, db="postgres")
    psql("CREATE EXTENSION sdr_creds CASCADE")
    # the server runs as an application role with the README's GRANTs
    psql("DROP ROLE IF EXISTS %s" % ROLE, db="postgres")
    psql("CREATE ROLE %s LOGIN" % ROLE, db="postgres")
    psql("GRANT USAGE ON SCHEMA sdr_creds TO {r}; GRANT EXECUTE ON FUNCTION "
         "sdr_creds.authenticate(text), sdr_creds.authenticate_headers(text, text), "
         "sdr_creds.authenticate_request(), sdr_creds.current_org_id(), "
         "sdr_creds.store(text, text, text, jsonb), sdr_creds.store_json(text), "
         "sdr_creds.get_by_provider(text), sdr_creds.get(uuid), sdr_creds.list(integer, integer), "
         "sdr_creds.delete(uuid) TO {r}".format(r=ROLE))
    for name, org in (("a", ORG_A), ("b", ORG_B)):
        out = psql("SELECT sdr_creds.create_api_key(%s::uuid, 'http test')" % sql_literal(org))
        ctx["key_" + name] = secret(json.loads(out)["key"])
    revoked = json.loads(psql("SELECT sdr_creds.create_api_key(%s::uuid, 'revoked')" % sql_literal(ORG_A)))
    ctx["key_revoked"] = secret(revoked["key"])
    psql("SELECT sdr_creds.revoke_api_key(%s::uuid)" % sql_literal(revoked["id"]))
    with open(os.path.join(os.environ["SDR_CLUSTER_DIR"], "keys", "jwt_secret"), "rb") as f:
        ctx["jwt_secret"] = f.read().strip()
    secret(ctx["jwt_secret"].decode())
    now = int(time.time())
    ctx["jwt_a"] = jwt(ctx["jwt_secret"], {"org_id": ORG_A, "exp": now + 3600})
    ctx["jwt_b"] = jwt(ctx["jwt_secret"], {"org_id": ORG_B, "exp": now + 3600, "nbf": now - 10})
    # SDR_HTTP_SERVER_ROLE=postgres runs the server as the superuser instead
    # (to tell a GRANT problem from a server problem)
    ctx["conninfo"] = "dbname=%s user=%s" % (DB, os.environ.get("SDR_HTTP_SERVER_ROLE") or ROLE)
    ctx["log"] = os.path.join(WORK, "sdr_http_server.log")
    open(ctx["log"], "w").close()
    ctx["server"] = Server(os.environ["SDR_SERVER"], ctx["conninfo"], ctx["log"])
    ctx["port"] = ctx["server"].port


def teardown():
    srv = ctx.get("server")
    if srv:
        srv.stop()
    psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB, db="postgres", check_rc=False)
    psql("DROP ROLE IF EXISTS %s" % ROLE, db="postgres", check_rc=False)


def key(org="a"):
    return {"X-API-Key": ctx["key_" + org]}


def bearer(org="a"):
    return {"Authorization": "Bearer " + ctx["jwt_" + org]}


def req(method, path, body=None, headers=None, **kw):
    return request(ctx["port"], method, path, body=body, headers=headers, **kw)


def store(org, provider, token, metadata=None, dsn="https://example.test"):
    body = {"provider": provider, "dsn": dsn, "access_token": secret(token),
            "metadata": metadata if metadata is not None else {}}
    return req("POST", "/integration-credentials/", json.dumps(body), key(org))


def detail(r):
    return r.json().get("detail")


def expect(r, status, detail_text=None):
    assert r.status == status, "expected %d, got %d: %s" % (status, r.status, r.body[:300])
    eq(r.header("content-type"), "application/json", "Content-Type")
    if detail_text is not None:
        eq(detail(r), detail_text, "detail")


# --- health ------------------------------------------------------------------

def t_healthz():
    r = req("GET", "/healthz")
    expect(r, 200)
    eq(r.json(), {"status": "ok"})


def t_readyz():
    r = req("GET", "/readyz")
    expect(r, 200)
    eq(r.json(), {"status": "ready"})


def t_head():
    r = req("HEAD", "/healthz")
    eq(r.status, 200)
    eq(r.body, b"", "HEAD body")


# --- store -------------------------------------------------------------------

def t_post_created():
    r = store("a", "salesforce", "tok-made-up-sf-1", {
        "instance_url": "https://acme.my.salesforce.com", "api_version": "v58.0",
        "token_type": "Bearer", "refresh_token": secret("rt-made-up-sf-1"),
        "client_secret": secret("cs-made-up-1"), "scopes": "api refresh_token",
        "webhook_token": secret("wt-made-up-1"), "signing_key": secret("sk-made-up-sign")})
    expect(r, 201)
    eq([k for k, _ in r.json(ordered=True)], FIELDS, "field order")
    o = r.json()
    eq(o["org_id"], ORG_A, "org_id")
    eq(o["provider"], "salesforce")
    eq(o["access_token"], "tok-made-up-sf-1", "access_token")
    eq(o["metadata"]["refresh_token"], "rt-made-up-sf-1", "secret metadata in the object")
    uuid.UUID(o["id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", o["created_at"]), o["created_at"]
    ctx["sf"] = o


def t_post_replaced():
    time.sleep(1.1)  # updated_at has seconds precision
    r = store("a", "salesforce", "tok-made-up-sf-2", {
        "instance_url": "https://acme.my.salesforce.com", "api_version": "v58.0",
        "refresh_token": secret("rt-made-up-sf-2")}, dsn="https://acme.my.salesforce.com")
    expect(r, 200)
    o = r.json()
    eq(o["id"], ctx["sf"]["id"], "id kept on replace")
    eq(o["created_at"], ctx["sf"]["created_at"], "created_at kept")
    assert o["updated_at"] > ctx["sf"]["updated_at"], "updated_at moves forward"
    eq(o["access_token"], "tok-made-up-sf-2")
    eq(o["dsn"], "https://acme.my.salesforce.com")
    ctx["sf"] = o


def t_post_without_slash():
    body = json.dumps({"provider": "hubspot", "dsn": None, "access_token": secret("tok-made-up-hs"),
                       "metadata": {"portal_id": "12345"}})
    r = req("POST", "/integration-credentials", body, {**key("a"), "Content-Type": "application/json"})
    expect(r, 201)
    eq(r.json()["dsn"], None, "dsn may be null")
    ctx["hs"] = r.json()


def t_post_422():
    cases = [
        ("invalid JSON", b'{"provider": "x", '),
        ("not an object", b'["provider"]'),
        ("missing provider", b'{"access_token": "tok-made-up-x"}'),
        ("missing access_token", b'{"provider": "pipedrive"}'),
        ("provider not a string", b'{"provider": 123, "access_token": "tok-made-up-x"}'),
        ("access_token not a string", b'{"provider": "pipedrive", "access_token": 5}'),
        ("metadata not an object", b'{"provider": "pipedrive", "access_token": "tok-made-up-x", "metadata": "x"}'),
        ("dsn not a string", b'{"provider": "pipedrive", "access_token": "tok-made-up-x", "dsn": 7}'),
        ("bad provider name", b'{"provider": "Bad Name!", "access_token": "tok-made-up-x"}'),
        ("empty body", b""),
        ("NUL byte in body", b'{"provider": "pipedrive", "access_token": "tok\x00made-up"}'),
        ("body not UTF-8", b'{"provider": "pipedrive", "access_token": "tok-\xff\xfe"}'),
    ]
    secret("tok-made-up-x")
    bad = []
    for name, body in cases:
        r = req("POST", "/integration-credentials/", body, key("a"))
        if r.status != 422 or r.header("content-type") != "application/json" or not detail(r):
            bad.append("%s: %d %s" % (name, r.status, r.body[:200]))
    assert not bad, "\n".join(bad)
    r = req("GET", "/integration-credentials/provider/pipedrive", headers=key("a"))
    expect(r, 404)


def t_post_unauthenticated():
    r = req("POST", "/integration-credentials/", b'{"provider": "x", "access_token": "y"}')
    expect(r, 401, UNAUTHORIZED)
    r = req("POST", "/integration-credentials/", b'{not json')
    expect(r, 401, UNAUTHORIZED)


# --- read --------------------------------------------------------------------

def t_get_by_provider():
    r = req("GET", "/integration-credentials/provider/salesforce", headers=key("a"))
    expect(r, 200)
    eq([k for k, _ in r.json(ordered=True)], FIELDS, "field order")
    eq(r.json(), ctx["sf"], "object")


def t_get_by_provider_404():
    r = req("GET", "/integration-credentials/provider/zoho", headers=key("a"))
    expect(r, 404, "Integration credentials for provider 'zoho' not found")


def t_get_by_id():
    r = req("GET", "/integration-credentials/" + ctx["sf"]["id"], headers=key("a"))
    expect(r, 200)
    eq([k for k, _ in r.json(ordered=True)], FIELDS, "field order")
    eq(r.json(), ctx["sf"], "object")
    r = req("GET", "/integration-credentials/" + ctx["sf"]["id"].upper(), headers=key("a"))
    expect(r, 200)


def t_get_by_id_404():
    missing = str(uuid.uuid4())
    r = req("GET", "/integration-credentials/" + missing, headers=key("a"))
    expect(r, 404, "Integration credentials %s not found" % missing)


def t_get_by_id_422():
    for bad in ["not-a-uuid", "123", "6f1c2a4e-9b1d-4c3e-8a55-0d9e4b7c21a", "6f1c2a4e-9b1d-4c3e-8a55-0d9e4b7c21aaa",
                "6f1c2a4e-9b1d-4c3e-8a55-0d9e4b7c21ag", "'%20OR%201=1--", "%00"]:
        r = req("GET", "/integration-credentials/" + bad, headers=key("a"))
        expect(r, 422)
        assert "UUID" in detail(r), detail(r)


def t_list():
    for path in ("/integration-credentials", "/integration-credentials/"):
        r = req("GET", path, headers=key("a"))
        expect(r, 200)
        items = r.json(ordered=True)
        assert isinstance(items, list), "a JSON array"
        eq([k for k, _ in items[0]], FIELDS, "field order in a listing")
        items = r.json()
        eq([i["provider"] for i in items], ["hubspot", "salesforce"], "newest first (" + path + ")")
        sf = items[1]
        eq(sf["access_token"], ctx["sf"]["access_token"], "listing carries access_token")
        eq(sf["metadata"], {"instance_url": "https://acme.my.salesforce.com", "api_version": "v58.0"},
           "listing omits secret metadata")


def t_list_secret_metadata():
    r = store("a", "salesforce-sandbox", "tok-made-up-sb", {
        "token_type": "Bearer", "portal_id": "p1", "refresh_token": secret("rt-made-up-sb"),
        "client_secret": secret("cs-made-up-sb"), "id_token": secret("it-made-up-sb"),
        "password": secret("pw-made-up-sb"), "private_key": secret("pk-made-up-sb"),
        "webhook_token": secret("wh-made-up-sb"), "app_secret": secret("as-made-up-sb"),
        "db_password": secret("dp-made-up-sb"), "api_key": secret("ak-made-up-sb")})
    expect(r, 201)
    ctx["sb"] = r.json()
    eq(len(ctx["sb"]["metadata"]), 11, "the object keeps all metadata")
    r = req("GET", "/integration-credentials/?limit=1", headers=key("a"))
    expect(r, 200)
    items = r.json()
    eq(len(items), 1)
    eq(items[0]["provider"], "salesforce-sandbox")
    eq(items[0]["metadata"], {"token_type": "Bearer", "portal_id": "p1"}, "listing metadata")


def t_list_limit_offset():
    r = req("GET", "/integration-credentials/?limit=2", headers=key("a"))
    expect(r, 200)
    eq([i["provider"] for i in r.json()], ["salesforce-sandbox", "hubspot"], "limit=2")
    r = req("GET", "/integration-credentials/?limit=2&offset=1", headers=key("a"))
    expect(r, 200)
    eq([i["provider"] for i in r.json()], ["hubspot", "salesforce"], "limit=2&offset=1")
    r = req("GET", "/integration-credentials?offset=3", headers=key("a"))
    expect(r, 200)
    eq(r.json(), [], "offset past the end")
    r = req("GET", "/integration-credentials/?limit=1000&offset=0&other=x", headers=key("a"))
    expect(r, 200)
    eq(len(r.json()), 3)


def t_list_422():
    bad = []
    for q in ["limit=0", "limit=1001", "limit=-1", "offset=-1", "limit=abc", "limit=", "limit=1.5",
              "offset=x", "limit=99999999999999999999", "offset=-99999999999", "limit=%201", "limit=1e3"]:
        r = req("GET", "/integration-credentials/?" + q, headers=key("a"))
        if r.status != 422 or not detail(r):
            bad.append("%s: %d %s" % (q, r.status, r.body[:200]))
    assert not bad, "\n".join(bad)


# --- delete ------------------------------------------------------------------

def t_delete():
    cid = ctx["sb"]["id"]
    r = req("DELETE", "/integration-credentials/" + cid, headers=key("a"))
    expect(r, 200)
    eq(r.json(), {"message": "Integration credentials %s deleted successfully" % cid})
    r = req("GET", "/integration-credentials/" + cid, headers=key("a"))
    expect(r, 404, "Integration credentials %s not found" % cid)
    r = req("DELETE", "/integration-credentials/" + cid, headers=key("a"))
    expect(r, 404, "Integration credentials %s not found" % cid)


def t_delete_422():
    r = req("DELETE", "/integration-credentials/nope", headers=key("a"))
    expect(r, 422)


# --- authentication ----------------------------------------------------------

def t_bearer_jwt():
    r = req("GET", "/integration-credentials/provider/salesforce", headers=bearer("a"))
    expect(r, 200)
    eq(r.json()["id"], ctx["sf"]["id"])
    r = req("GET", "/integration-credentials/provider/salesforce", headers={"authorization": "bearer " + ctx["jwt_a"]})
    expect(r, 200)


def t_bearer_identity_provider():
    """Tokens minted by python3-jwt against an Auth0-shaped JWKS (issue 18)."""
    k = jose.Keys()
    iss, aud, claim = "https://dev-example.us.auth0.com/", "https://api.example.com", "https://example.com/org_id"
    psql("SELECT sdr_creds.set_issuer(%s, %s::jsonb, %s, %s)" % (
        sql_literal(iss), sql_literal(json.dumps(jose.auth0_jwks(k))), sql_literal(aud), sql_literal(claim)))
    now = int(time.time())
    claims = {"iss": iss, "aud": [aud], "sub": "auth0|user-18", claim: ORG_A, "exp": now + 600, "iat": now}
    path = "/integration-credentials/provider/salesforce"
    es = secret(jose.mint(k.p256, "ES256", claims, kid="auth0-es256-kid"))
    rs = secret(jose.mint(k.rsa, "RS256", claims, kid="auth0-kid-1"))
    for name, tok in (("ES256", es), ("RS256", rs)):
        for _ in range(3):  # the same token again: from the backends' verified-token caches
            r = req("GET", path, headers={"Authorization": "Bearer " + tok})
            expect(r, 200)
            eq(r.json()["id"], ctx["sf"]["id"], name + " token reads org A's credential")
    bad = {
        "unknown kid": jose.mint(k.p256, "ES256", claims, kid="no-such-kid"),
        "DER signature": jose.der_signature(es, 32),
        "jku header": jose.mint(k.p256, "ES256", claims, kid="auth0-es256-kid",
                                headers={"jku": "https://attacker.example/jwks.json"}),
        "HS256 keyed with the public key": jose.hs256_with(jose.public_pem(k.rsa), {"alg": "HS256", "kid": "auth0-kid-1"}, claims),
        "another audience": jose.mint(k.p256, "ES256", dict(claims, aud="https://other.example"), kid="auth0-es256-kid"),
    }
    for name, tok in bad.items():
        r = req("GET", path, headers={"Authorization": "Bearer " + secret(tok)})
        expect(r, 401, UNAUTHORIZED)
        eq(r.header("www-authenticate"), 'Bearer error="invalid_token"', name + ": WWW-Authenticate")
    # the ES256 key removed: refused at once by every pooled connection that cached the token
    doc = jose.auth0_jwks(k)
    doc["keys"] = [j for j in doc["keys"] if j["kid"] != "auth0-es256-kid"]
    psql("SELECT sdr_creds.set_issuer(%s, %s::jsonb, %s, %s)" % (
        sql_literal(iss), sql_literal(json.dumps(doc)), sql_literal(aud), sql_literal(claim)))
    for _ in range(4):
        expect(req("GET", path, headers={"Authorization": "Bearer " + es}), 401, UNAUTHORIZED)
    expect(req("GET", path, headers={"Authorization": "Bearer " + rs}), 200)
    psql("SELECT sdr_creds.delete_issuer(%s)" % sql_literal(iss))


def t_api_key_wins():
    # a valid key for A and a valid JWT for B: A's view
    r = req("GET", "/integration-credentials/", headers={**key("a"), **bearer("b")})
    expect(r, 200)
    eq(sorted(i["provider"] for i in r.json()), ["hubspot", "salesforce"], "org A's credentials")
    # an invalid key and a valid JWT: the key decides
    r = req("GET", "/integration-credentials/", headers={"X-API-Key": secret("sk_live_madeupmadeupmadeupmadeup"), **bearer("a")})
    expect(r, 401, UNAUTHORIZED)


def t_401():
    now = int(time.time())
    s = ctx["jwt_secret"]
    cases = {
        "no credentials": {},
        "unknown API key": {"X-API-Key": secret("sk_live_0000000000000000000000000000")},
        "revoked API key": {"X-API-Key": ctx["key_revoked"]},
        "empty API key": {"X-API-Key": ""},
        "not Bearer": {"Authorization": "Basic " + secret("dXNlcjpwYXNzd29yZA==")},
        "Bearer without token": {"Authorization": "Bearer "},
        "garbage JWT": {"Authorization": "Bearer " + secret("not.a.jwt")},
        "expired JWT": {"Authorization": "Bearer " + jwt(s, {"org_id": ORG_A, "exp": now - 120})},
        "JWT not yet valid": {"Authorization": "Bearer " + jwt(s, {"org_id": ORG_A, "exp": now + 600, "nbf": now + 300})},
        "JWT wrong signature": {"Authorization": "Bearer " + jwt(b"x" * 64, {"org_id": ORG_A, "exp": now + 600})},
        "JWT alg none": {"Authorization": "Bearer " + jwt(s, {"org_id": ORG_A, "exp": now + 600},
                                                           header={"alg": "none", "typ": "JWT"}, sign=False)},
        "JWT HS512 header": {"Authorization": "Bearer " + jwt(s, {"org_id": ORG_A, "exp": now + 600},
                                                               header={"alg": "HS512", "typ": "JWT"})},
        "JWT without org_id": {"Authorization": "Bearer " + jwt(s, {"exp": now + 600})},
        "API key not UTF-8": {"X-API-Key": b"sk_live_\xff\xfe"},
        "Authorization not UTF-8": {"Authorization": b"Bearer \xc3\x28"},
    }
    bad = []
    for name, headers in cases.items():
        for path in ("/integration-credentials/provider/salesforce", "/integration-credentials/",
                     "/integration-credentials/" + ctx["sf"]["id"], "/integration-credentials/not-a-uuid"):
            r = req("GET", path, headers=headers)
            auth = headers.get("Authorization", b"")
            auth = auth if isinstance(auth, bytes) else auth.encode()
            want = ('Bearer error="invalid_token"' if "X-API-Key" not in headers and auth.lower().startswith(b"bearer ")
                    and auth[7:].strip() else "Bearer")
            if (r.status != 401 or r.header("www-authenticate") != want
                    or r.header("content-type") != "application/json" or detail(r) != UNAUTHORIZED):
                bad.append("%s %s: %d %s %s" % (name, path, r.status, r.header("www-authenticate"), r.body[:200]))
    r = req("DELETE", "/integration-credentials/" + ctx["sf"]["id"])
    if r.status != 401:
        bad.append("DELETE without credentials: %d" % r.status)
    assert not bad, "\n".join(bad)


# --- isolation ---------------------------------------------------------------

def t_403_other_org():
    cid = ctx["sf"]["id"]
    for headers in (key("b"), bearer("b")):
        r = req("GET", "/integration-credentials/" + cid, headers=headers)
        expect(r, 403, FORBIDDEN)
        r = req("DELETE", "/integration-credentials/" + cid, headers=headers)
        expect(r, 403, FORBIDDEN)
    r = req("GET", "/integration-credentials/" + cid, headers=key("a"))
    expect(r, 200)


def t_isolation():
    r = req("GET", "/integration-credentials/", headers=key("b"))
    expect(r, 200)
    eq(r.json(), [], "org B sees none of A's credentials")
    r = req("GET", "/integration-credentials/provider/salesforce", headers=key("b"))
    expect(r, 404, "Integration credentials for provider 'salesforce' not found")
    # B stores its own salesforce credential: each org sees only its own
    r = store("b", "salesforce", "tok-made-up-b-sf")
    expect(r, 201)
    b_sf = r.json()
    assert b_sf["id"] != ctx["sf"]["id"]
    eq(b_sf["org_id"], ORG_B)
    for hdr, want in ((key("a"), ctx["sf"]["id"]), (key("b"), b_sf["id"]), (bearer("b"), b_sf["id"])):
        r = req("GET", "/integration-credentials/provider/salesforce", headers=hdr)
        expect(r, 200)
        eq(r.json()["id"], want, "own credential")
    r = req("GET", "/integration-credentials/", headers=key("a"))
    assert b_sf["id"] not in [i["id"] for i in r.json()], "B's credential not in A's listing"
    r = req("DELETE", "/integration-credentials/" + b_sf["id"], headers=key("a"))
    expect(r, 403, FORBIDDEN)
    r = req("GET", "/integration-credentials/" + b_sf["id"], headers=key("b"))
    expect(r, 200)


# --- routing and limits --------------------------------------------------------

def t_404():
    for path in ["/", "/nope", "/integration-credential", "/integration-credentialsX",
                 "/integration-credentials/provider/", "/integration-credentials//",
                 "/integration-credentials/provider/salesforce/extra", "/healthz/",
                 "/integration-credentials/../healthz", "/integration-credentials/%2e%2e/healthz",
                 "//integration-credentials", "/integration-credentials%2F", "/integration-credentials%2f",
                 "/x/../integration-credentials",
                 "/./healthz", "/HEALTHZ"]:
        r = req("GET", path, headers=key("a"))
        assert r.status == 404 and detail(r) == "Not Found", "%s: %d %s" % (path, r.status, r.body[:200])
    # an encoded slash stays inside its segment: this is an (invalid) id
    r = req("GET", "/integration-credentials/provider%2Fsalesforce", headers=key("a"))
    expect(r, 422)


def t_provider_tricks():
    r = req("GET", "/integration-credentials/provider/sales%66orce", headers=key("a"))
    expect(r, 200)  # ordinary percent-encoding is decoded
    eq(r.json()["id"], ctx["sf"]["id"])
    for raw_path, shown in [("x'%20OR%20'1'='1", "x' OR '1'='1"), ("sf%3B%20DROP%20TABLE%20x", "sf; DROP TABLE x"),
                            ("salesforce%00", "salesforce%00"), ("a%2Fb", "a%2Fb"),
                            ("%22%5C%0A", '"\\\n')]:
        r = req("GET", "/integration-credentials/provider/" + raw_path, headers=key("a"))
        expect(r, 404, "Integration credentials for provider '%s' not found" % shown)
    r = req("GET", "/integration-credentials/provider/%FF%FE", headers=key("a"))
    expect(r, 422)
    r = req("GET", "/integration-credentials/provider/" + "a" * 5000, headers=key("a"))
    expect(r, 404)
    expect(req("GET", "/healthz"), 200)


def t_405():
    cases = [("PUT", "/integration-credentials/", "GET, HEAD, POST"),
             ("PATCH", "/integration-credentials", "GET, HEAD, POST"),
             ("DELETE", "/integration-credentials/", "GET, HEAD, POST"),
             ("POST", "/integration-credentials/provider/salesforce", "GET, HEAD"),
             ("DELETE", "/integration-credentials/provider/salesforce", "GET, HEAD"),
             ("POST", "/integration-credentials/" + ctx["sf"]["id"], "GET, HEAD, DELETE"),
             ("PUT", "/integration-credentials/" + ctx["sf"]["id"], "GET, HEAD, DELETE"),
             ("POST", "/healthz", "GET, HEAD"),
             ("OPTIONS", "/readyz", "GET, HEAD")]
    for method, path, allow in cases:
        r = req(method, path, body=b"{}" if method in ("POST", "PUT", "PATCH") else None, headers=key("a"))
        expect(r, 405, "Method Not Allowed")
        eq(r.header("allow"), allow, "Allow for %s %s" % (method, path))


def t_413():
    big = b'{"provider": "big", "access_token": "' + b"x" * (64 * 1024) + b'"}'
    r = req("POST", "/integration-credentials/", big, key("a"))
    expect(r, 413, "Request body too large")
    # chunked, so the size is known only while reading
    chunks = b"".join(b"%x\r\n%s\r\n" % (8192, b"y" * 8192) for _ in range(10)) + b"0\r\n\r\n"
    out = raw(ctx["port"], b"POST /integration-credentials/ HTTP/1.1\r\nHost: t\r\nX-API-Key: "
              + ctx["key_a"].encode() + b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks)
    status, headers, body = parse_raw(out)
    eq(status, 413, "chunked")
    eq(headers.get("content-type"), "application/json")
    eq(json.loads(body), {"detail": "Request body too large"})
    # just under the limit is read and handed to the database
    ok = b'{"provider": "big", "access_token": "tok-made-up-big"' + b" " * (60 * 1024) + b'}'
    r = req("POST", "/integration-credentials/", ok, key("a"))
    expect(r, 201)
    expect(req("DELETE", "/integration-credentials/" + r.json()["id"], headers=key("a")), 200)


def t_431():
    # --max-header's default: 8 KiB
    r = req("GET", "/healthz", headers={"X-Filler": "f" * 7000})
    expect(r, 200)
    r = req("GET", "/healthz", headers={"X-Filler": "f" * 10000})
    expect(r, 431)
    r = req("GET", "/integration-credentials/", headers={**key("a"), **{"X-F%d" % i: "f" * 1000 for i in range(9)}})
    expect(r, 431)
    # too big even for libmicrohttpd's per-connection memory: its own 431
    out = raw(ctx["port"], b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Filler: " + b"f" * 60000 + b"\r\n\r\n")
    status, _, _ = parse_raw(out)
    eq(status, 431, "huge header block")
    expect(req("GET", "/healthz"), 200)


def t_malformed_requests():
    # libmicrohttpd answers protocol errors itself (400/505, not JSON); the
    # server must stay up
    for data in [b"GET /heal\x00thz HTTP/1.1\r\nHost: t\r\n\r\n", b"GARBAGE\r\n\r\n",
                 b"GET /healthz HTTP/9.9\r\nHost: t\r\n\r\n", b"\r\n\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n",
                 b"POST /integration-credentials/ HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"]:
        raw(ctx["port"], data, timeout=2)
    expect(req("GET", "/healthz"), 200)


def t_keep_alive():
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", ctx["port"], timeout=10)
    try:
        statuses = [request(ctx["port"], m, p, headers=key("a"), conn=conn).status
                    for m, p in [("GET", "/healthz"), ("GET", "/integration-credentials/provider/salesforce"),
                                 ("GET", "/nope"), ("GET", "/integration-credentials/bad"),
                                 ("GET", "/integration-credentials/")]]
    finally:
        conn.close()
    eq(statuses, [200, 200, 404, 422, 200], "statuses on one connection")

def t_pool_bound():
    """300 kept-alive connections with a request each: the server holds no
    more than --pool database connections. The requests wait on a table
    lock, so all 300 are in at once while the database connections are
    counted."""
    import http.client
    expect(store("a", "pool-bound", "tok-made-up-pool-bound"), 201)
    app, pool, n = "sdr_pool_bound", 2, 300
    log = os.path.join(WORK, "sdr_http_pool.log")
    srv = Server(os.environ["SDR_SERVER"], ctx["conninfo"] + " application_name=" + app, log,
                 args=("--pool", str(pool), "--max-per-addr", "0"))
    conns, lock = [], None
    backends = "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'" % app
    try:
        for _ in range(n):
            conns.append(http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30))
            conns[-1].connect()
        lock = harness.TableLock(db=DB)
        for c in conns:
            c.putrequest("GET", "/integration-credentials/provider/pool-bound", skip_accept_encoding=True)
            c.putheader("X-API-Key", ctx["key_a"])
            c.endheaders()
        waiting = wait_until(lambda: psql(backends + " AND wait_event_type = 'Lock'") == str(pool), 15)
        # (not from /metrics: every worker is waiting on the database)
        open_http = sum(os.readlink("/proc/%d/fd/%s" % (srv.proc.pid, fd)).startswith("socket:")
                        for fd in os.listdir("/proc/%d/fd" % srv.proc.pid))
        held = int(psql(backends))
        lock.release()
        lock = None
        statuses = [c.getresponse().status for c in conns]
        after = int(psql(backends))
    finally:
        if lock:
            lock.release()
        for c in conns:
            c.close()
        srv.stop()
    assert waiting, "the pool's connections did not all wait on the lock"
    assert open_http >= n + pool, "%d sockets open, expected %d connections and the pool" % (open_http, n)
    eq(held, pool, "database connections with %d requests in" % n)
    eq(after, pool, "database connections afterwards")
    eq(statuses, [200] * n, "statuses")


def t_write_waits_alone():
    """A DELETE waiting for a row lock holds up no GET: a write ends its
    pipeline, and requests queued behind a held pipeline go to the other
    connection (the default --pool is at least 2). All GETs are answered
    while the DELETE still waits; it completes once the lock is released."""
    expect(store("a", "held-row", "tok-made-up-held-row"), 201)
    expect(store("a", "free-row", "tok-made-up-free-row"), 201)
    cid = req("GET", "/integration-credentials/provider/held-row", headers=key("a")).json()["id"]
    lock = harness.RowLock("provider = 'held-row'", db=DB)
    deleted = {}
    deleting = threading.Thread(target=lambda: deleted.update(
        r=req("DELETE", "/integration-credentials/" + cid, headers=key("a"), timeout=60)))
    try:
        deleting.start()
        assert wait_until(lambda: lock.waiters() == 1, 15), "the DELETE is not waiting on the row lock"
        statuses = [req("GET", "/integration-credentials/provider/free-row", headers=key("a"),
                        timeout=10).status for _ in range(20)]
        still_waiting = deleting.is_alive() and lock.waiters() == 1
    finally:
        lock.release()
        deleting.join(60)
    eq(statuses, [200] * 20, "GETs while the DELETE waits")
    assert still_waiting, "the DELETE did not wait for the lock"
    eq(deleted["r"].status, 200, "the DELETE after the release")


def t_pipelining():
    """Concurrent requests share round trips: with 32 clients on one pool
    connection's worth of work, the pipelines sent are fewer than the
    statements (sdr_creds_db_pipelines_total against the round-trip count),
    and every answer is the right one for its org."""
    expect(store("a", "piped", "tok-made-up-piped-a"), 201)
    expect(store("b", "piped", "tok-made-up-piped-b"), 201)
    _, before = scrape(ctx["port"])
    answers = []

    def client(org, n):
        for _ in range(n):
            r = req("GET", "/integration-credentials/provider/piped", headers=key(org))
            answers.append((org, r.status, r.json().get("org_id")))

    threads = [threading.Thread(target=client, args=("ab"[i % 2], 25)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    _, after = scrape(ctx["port"])
    statements = val(after, "sdr_creds_db_roundtrip_seconds_count") - val(before, "sdr_creds_db_roundtrip_seconds_count")
    pipelines = val(after, "sdr_creds_db_pipelines_total") - val(before, "sdr_creds_db_pipelines_total")
    eq(len(answers), 32 * 25, "answers")
    eq(sorted(set(answers)), [("a", 200, ORG_A), ("b", 200, ORG_B)], "each org's own credential")
    eq(statements, 32 * 25, "statements")
    assert pipelines < statements, "%d pipelines for %d statements: no batching" % (pipelines, statements)
    diag("%d statements in %d pipelines" % (statements, pipelines))


def t_client_address():
    """The database records the HTTP client's address (audit lines, usage):
    the peer's, or with --trust-forwarded-for the last X-Forwarded-For entry.
    Without EXECUTE on the three-argument authenticate_headers() (the README's
    app GRANTs), the server still works and says it does not pass it."""
    import http.client
    assert "client addresses are not passed" in ctx["server"].read_log(), "fallback not logged"
    expect(store("a", "client-addr", "tok-made-up-client-addr"), 201)
    psql("GRANT EXECUTE ON FUNCTION sdr_creds.authenticate_headers(text, text, text) TO %s" % ROLE)
    got = {}
    try:
        for trust in (False, True):
            log = os.path.join(WORK, "sdr_http_client.log")
            srv = Server(os.environ["SDR_SERVER"], ctx["conninfo"], log,
                         args=("--trust-forwarded-for",) if trust else ())
            try:
                for forwarded in ("203.0.113.5, 198.51.100.77", "198.51.100.78, not-an-address"):
                    psql("SELECT sdr_creds.usage_reset()")
                    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10,
                                                      source_address=("127.0.0.2", 0))
                    hdrs = dict(key("a"), **{"X-Forwarded-For": forwarded})
                    expect(request(srv.port, "GET", "/integration-credentials/provider/client-addr",
                                   headers=hdrs, conn=conn), 200)
                    conn.close()
                    got[(trust, forwarded)] = psql(
                        "SELECT string_agg(DISTINCT last_client, ' ') FROM sdr_creds.usage "
                        "WHERE org_id = %s" % sql_literal(ORG_A))
                assert "client addresses are not passed" not in srv.read_log(), "granted, yet not passed"
            finally:
                srv.stop()
    finally:
        psql("REVOKE EXECUTE ON FUNCTION sdr_creds.authenticate_headers(text, text, text) FROM %s" % ROLE)
    eq(got, {(False, "203.0.113.5, 198.51.100.77"): "127.0.0.2",
             (False, "198.51.100.78, not-an-address"): "127.0.0.2",
             (True, "203.0.113.5, 198.51.100.77"): "198.51.100.77",
             (True, "198.51.100.78, not-an-address"): "127.0.0.2"}, "recorded clients")


def t_missing_grants():
    """The server names, once, each function its role may not execute (the
    test role has the README's app GRANTs, which leave out request_refresh)."""
    log = ctx["server"].read_log()
    line = "database: this role may not execute sdr_creds.request_refresh(uuid): " \
        "the requests that call it answer 500 until it is granted"
    eq(log.count(line), 1, "the missing grant logged once")
    named = re.findall(r"may not execute (\S+\(.*?\))", log)
    eq(named, ["sdr_creds.request_refresh(uuid)"], "functions named")


# --- /metrics ------------------------------------------------------------------

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def scrape(port):
    """GET /metrics: (text, {(sample name, frozenset of labels): value}),
    parsed with prometheus_client's text-format parser."""
    from prometheus_client.parser import text_string_to_metric_families
    r = request(port, "GET", "/metrics")
    eq(r.status, 200, "GET /metrics")
    eq(r.header("content-type"), METRICS_TYPE, "content type")
    text = r.body.decode()
    samples = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            samples[(smp.name, frozenset(smp.labels.items()))] = smp.value
    return text, samples


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def check_histogram(before, after, name, want, **labels):
    """The histogram's _count grew by want; buckets cumulative, +Inf = _count, _sum > 0."""
    count = val(after, name + "_count", **labels)
    eq(count - val(before, name + "_count", **labels), want, "%s%r count" % (name, labels))
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in after.items()
                     if k[0] == name + "_bucket" and all(dict(k[1]).get(a) == b for a, b in labels.items()))
    assert len(buckets) == 13, "%s buckets: %d" % (name, len(buckets))
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), "%s buckets not cumulative" % name
    eq(buckets[-1], (float("inf"), count), "%s +Inf bucket" % name)
    assert val(after, name + "_sum", **labels) > 0, "%s _sum" % name


PROV = "/integration-credentials/provider/{provider}"


def metrics_traffic(port):
    """The requests whose counts t_metrics checks."""
    made_up = secret("sdrk_madeup_" + uuid.uuid4().hex)
    a = key("a")
    eq(request(port, "POST", "/integration-credentials/",
               json.dumps({"provider": "metrics-prov", "access_token": "tok-made-up-m"}), a).status, 201)
    for _ in range(7):
        eq(request(port, "GET", "/integration-credentials/provider/metrics-prov", headers=a).status, 200)
    for i in range(3):
        eq(request(port, "GET", "/integration-credentials/provider/none-%d" % i, headers=a).status, 404)
    for _ in range(2):
        eq(request(port, "GET", "/integration-credentials/provider/metrics-prov",
                   headers={"X-API-Key": made_up}).status, 401)
    big = b'{"provider": "big", "access_token": "' + b"x" * (64 * 1024) + b'"}'
    eq(request(port, "POST", "/integration-credentials/", big, a).status, 413)
    eq(request(port, "GET", "/integration-credentials/not-a-uuid", headers=a).status, 422)
    eq(request(port, "GET", "/no/such/" + ORG_A).status, 404)
    return made_up


def t_metrics():
    srv = Server(os.environ["SDR_SERVER"], ctx["conninfo"], os.path.join(WORK, "sdr_metrics.log"),
                 args=("--pool", "3"))
    try:
        port = srv.port
        _, before = scrape(port)
        made_up = metrics_traffic(port)
        r = request(port, "HEAD", "/metrics")
        eq((r.status, r.header("content-type"), r.body), (200, METRICS_TYPE, b""), "HEAD /metrics")
        req_total = "sdr_creds_http_requests_total"
        want = ((PROV, "GET", "200", 7), (PROV, "GET", "404", 3),
                (PROV, "GET", "401", 2), ("/integration-credentials/", "POST", "413", 1),
                ("/integration-credentials/", "POST", "201", 1),
                ("/integration-credentials/{credentials_id}", "GET", "422", 1),
                ("-", "GET", "404", 1), ("/metrics", "HEAD", "200", 1))

        def counted(samples):
            return sum(val(samples, req_total, route=route, method=method, status=status) -
                       val(before, req_total, route=route, method=method, status=status)
                       for route, method, status, _ in want)
        # A request is counted once its response has been sent, a moment
        # after the client has read it: wait for the last ones to be counted.
        scrapes = []
        wait_until(lambda: scrapes.append(scrape(port)) or counted(scrapes[-1][1]) >= sum(n for *_, n in want), 10)
        text, after = scrapes[-1]
        for route, method, status, n in want:
            labels = dict(route=route, method=method, status=status)
            eq(val(after, req_total, **labels) - val(before, req_total, **labels), n, repr(labels))
        assert val(after, req_total, route="/metrics", method="GET", status="200") >= 1, "/metrics counted"
        check_histogram(before, after, "sdr_creds_http_request_duration_seconds", 12, route=PROV)
        # round trips: 12 by provider, the POST 201, the 422 (authentication only)
        check_histogram(before, after, "sdr_creds_db_roundtrip_seconds", 14)
        # one after another: each statement its own pipeline
        eq(val(after, "sdr_creds_db_pipelines_total") - val(before, "sdr_creds_db_pipelines_total"), 14,
           "pipelines")
        rej = "sdr_creds_http_rejected_total"
        eq(val(after, rej, reason="body_too_large") - val(before, rej, reason="body_too_large"), 1, "413s")
        eq(sum(val(after, "sdr_creds_db_pool_connections", state=st) for st in ("busy", "idle", "broken")),
           3, "pool gauges sum to --pool")
        eq(val(after, "sdr_creds_http_unavailable_total"), 0, "503s")
        assert val(after, "sdr_creds_http_connections") >= 1, "open connections"
        assert val(after, "process_resident_memory_bytes") > 1 << 20, "resident memory"
        eq([k for k in after if k[0] == "sdr_creds_build_info"] != [], True, "build_info")
        for s, what in ((made_up, "made-up key"), (ctx["key_a"], "key"), (ctx["key_a"][:12], "key prefix"),
                        (ORG_A, "org id"), ("metrics-prov", "provider"), ("/no/such", "raw path")):
            assert s not in text, what + " in /metrics"
        expect(request(port, "DELETE", "/integration-credentials/" +
                       request(port, "GET", "/integration-credentials/provider/metrics-prov",
                               headers=key("a")).json()["id"], headers=key("a")), 200)
    finally:
        eq(srv.stop(), 0, "exit status")


def t_metrics_rejections():
    """A dribbled request cut off by the deadline, and a connection over the
    per-address cap, are counted."""
    srv = Server(os.environ["SDR_SERVER"], ctx["conninfo"], os.path.join(WORK, "sdr_metrics2.log"),
                 args=("--request-deadline", "1", "--max-per-addr", "2"))
    try:
        port = srv.port
        _, before = scrape(port)
        # from 127.0.0.2, so the scrapes' connections from 127.0.0.1 do not count
        held = [socket.create_connection(("127.0.0.1", port), 10, ("127.0.0.2", 0)) for _ in range(2)]
        for s in held:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")  # never finished
        extra = socket.create_connection(("127.0.0.1", port), 10, ("127.0.0.2", 0))
        eq(extra.recv(100), b"", "third connection from one address closed")
        extra.close()
        for s in held:
            eq(s.recv(100), b"", "dribbled request cut off at the deadline")
            s.close()
        _, after = scrape(port)
        rej = "sdr_creds_http_rejected_total"
        eq(val(after, rej, reason="deadline") - val(before, rej, reason="deadline"), 2, "deadline")
        eq(val(after, rej, reason="per_address_limit") - val(before, rej, reason="per_address_limit"),
           1, "per-address cap")
    finally:
        eq(srv.stop(), 0, "exit status")


def t_content_type_everywhere():
    bad = ["%s %s -> %d %r" % (m, p, r.status, r.header("content-type")) for m, p, r in seen
           if r.header("content-type") != (METRICS_TYPE if p == "/metrics" and r.status == 200
                                           else "application/json")]
    assert len(seen) > 100, "responses seen: %d" % len(seen)
    assert not bad, "\n".join(bad[:20])


# --- the client example ------------------------------------------------------

def t_crm_sync_example():
    env = dict(os.environ, SDR_CREDS_URL="http://127.0.0.1:%d" % ctx["port"],
               SDR_CREDS_API_KEY=ctx["key_a"], SDR_CREDS_PROVIDER="salesforce-crm-sync")
    p = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "crm_sync_example.py")], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, "exit %d\n%s%s" % (p.returncode, p.stdout, p.stderr)
    diag(p.stdout.strip())


# --- access log ----------------------------------------------------------------

ACCESS = re.compile(r"^\S+ ([A-Z]+|-) (\S+) (\d{3}|-) (\d+\.\d{3})ms org=(\S+)( \(connection closed early\))?$")


def t_access_log_lines():
    # Its own server and log: a line is written after its response is sent,
    # so lines of earlier tests' requests could still arrive in the shared
    # log; and this log is complete once its server has stopped.
    ctx["access_log"] = os.path.join(WORK, "sdr_http_access.log")
    open(ctx["access_log"], "w").close()
    srv = Server(os.environ["SDR_SERVER"], ctx["conninfo"], ctx["access_log"])
    try:
        sent = access_log_requests(srv.port)
    finally:
        code = srv.stop()
    eq(code, 0, "exit status")
    text = srv.read_log()
    lines = [line for line in text.splitlines() if ACCESS.match(line)]
    eq(len(lines), len(sent), "one access line per request")
    # Workers log concurrently, so lines may come in another order than the requests.
    got = sorted((m.group(1), m.group(2), m.group(3), m.group(5)) for m in map(ACCESS.match, lines))
    want = sorted((method, route, str(status), org) for method, _, _, route, status, org in sent)
    eq(got, want, "access lines")
    for leak in ("salesforce", "not-a-uuid", "limit=", "token=", "secret-path", ctx["sf"]["id"], "?"):
        assert leak not in text, "the log shows %r (raw path or query)" % leak


def access_log_requests(port):
    """Sends the access log test's requests; returns what each should log."""
    sf = ctx["sf"]["id"]
    sent = [("GET", "/healthz", {}, "/healthz", 200, "-"),
            ("GET", "/integration-credentials/provider/salesforce", key("a"),
             "/integration-credentials/provider/{provider}", 200, ORG_A),
            ("GET", "/integration-credentials/" + sf + "?token=" + secret("tok-made-up-in-query"), bearer("a"),
             "/integration-credentials/{credentials_id}", 200, ORG_A),
            ("GET", "/integration-credentials/?limit=1&offset=0", key("b"), "/integration-credentials/", 200, ORG_B),
            ("DELETE", "/integration-credentials/" + sf, key("b"), "/integration-credentials/{credentials_id}", 403, ORG_B),
            ("GET", "/integration-credentials/not-a-uuid", key("a"), "/integration-credentials/{credentials_id}", 422, ORG_A),
            ("GET", "/integration-credentials/", {"X-API-Key": secret("sk_live_made_up_wrong_key_0000")},
             "/integration-credentials/", 401, "-"),
            ("GET", "/secret-path-made-up", {}, "-", 404, "-"),
            ("PUT", "/healthz", {}, "/healthz", 405, "-")]
    for method, path, headers, _, status, _ in sent:
        eq(request(port, method, path, headers=headers).status, status, "%s %s" % (method, path))
    body = json.dumps({"provider": "log-probe", "access_token": secret("tok-made-up-log-probe"),
                       "metadata": {"refresh_token": secret("rt-made-up-log-probe")}})
    expect(request(port, "POST", "/integration-credentials/", body, key("a")), 201)
    sent.append(("POST", "", {}, "/integration-credentials/", 201, ORG_A))
    return sent


def check_log_has_no_secrets(path):
    with open(path, "r", errors="replace") as f:
        text = f.read()
    leaked = [s for s in harness.SECRETS if s and s in text]
    assert not leaked, "%d secret(s) found in %s" % (len(leaked), os.path.basename(path))
    for word in ("sk_live_", "Bearer ", "eyJ", "access_token", "refresh_token", "made-up"):
        assert word not in text, "%r found in %s" % (word, os.path.basename(path))


def t_log_no_secrets():
    check_log_has_no_secrets(ctx["log"])
    for name in ("drain_log", "access_log"):
        if ctx.get(name):
            check_log_has_no_secrets(ctx[name])


# --- database restart ----------------------------------------------------------

def t_db_restart():
    port = ctx["port"]
    expect(req("GET", "/integration-credentials/provider/salesforce", headers=key("a")), 200)
    stop = threading.Event()
    seen_statuses = []
    acked = {"n": -1}
    lock = threading.Lock()

    def hammer():
        n = 0
        while not stop.is_set():
            n += 1
            body = json.dumps({"provider": "restart-probe", "access_token": secret("tok-made-up-restart-%d" % n)})
            try:
                r = request(port, "POST", "/integration-credentials/", body, key("a"), timeout=10)
                g = request(port, "GET", "/integration-credentials/provider/salesforce", headers=key("a"), timeout=10)
            except OSError as e:
                with lock:
                    seen_statuses.append(("error", type(e).__name__, None))
                time.sleep(0.02)
                continue
            with lock:
                for x in (r, g):
                    seen_statuses.append((x.status, x.header("retry-after"), detail(x) if x.status >= 400 else None))
                if r.status in (200, 201):
                    acked["n"] = n
            time.sleep(0.02)

    def answered(status):
        with lock:
            return any(x[0] == status for x in seen_statuses)

    t = threading.Thread(target=hammer, daemon=True)
    t.start()
    t0 = time.time()
    down = False
    try:
        assert wait_until(lambda: answered(200), 10), "no 200 before the restart"
        pg_ctl("-m", "fast", "stop")
        down = True
        # down until the server has answered a request without the database
        saw_503 = wait_until(lambda: answered(503), 15)
        pg_ctl("start")
        down = False
        t_up = time.time()
        assert saw_503, "no 503 while the database was down"
        ok = wait_until(lambda: req("GET", "/integration-credentials/provider/salesforce",
                                    headers=key("a")).status == 200, 10)
        t_ok = time.time()
        time.sleep(0.3)  # a few more requests after the recovery
    finally:
        if down:
            pg_ctl("start")
        stop.set()
        t.join(15)
    assert ok, "the server did not recover within 10 s of the restart"
    diag("restart took %.1f s; first 200 %.2f s after the database was back" % (t_up - t0, t_ok - t_up))
    with lock:
        statuses = list(seen_statuses)
    unexpected = [s for s in statuses if s[0] not in (200, 201, 503)]
    assert not unexpected, "unexpected answers during the restart: %r" % unexpected[:10]
    unavailable = [s for s in statuses if s[0] == 503]
    assert unavailable, "no 503 seen while the database was down (%d requests)" % len(statuses)
    assert all(s[1] == "1" for s in unavailable), "every 503 has Retry-After: 1"
    diag("%d requests during the restart: %d answered 503" % (len(statuses), len(unavailable)))
    expect(req("GET", "/readyz"), 200)
    # nothing acknowledged was lost
    r = req("GET", "/integration-credentials/provider/restart-probe", headers=key("a"))
    expect(r, 200)
    stored = int(r.json()["access_token"].rsplit("-", 1)[1])
    assert stored >= acked["n"], "last acknowledged write %d, stored %d" % (acked["n"], stored)
    expect(req("DELETE", "/integration-credentials/" + r.json()["id"], headers=key("a")), 200)


# --- graceful stop ------------------------------------------------------------

def t_sigterm_drain():
    ctx["drain_log"] = os.path.join(WORK, "sdr_http_drain.log")
    open(ctx["drain_log"], "w").close()
    srv = Server(os.environ["SDR_SERVER"], ctx["conninfo"], ctx["drain_log"], args=("--pool", "2"))
    lock = None
    try:
        expect(request(srv.port, "GET", "/integration-credentials/provider/salesforce", headers=key("a")), 200)
        # the next read waits in the database until the lock is released
        lock = harness.TableLock(db=DB)
        result = {}

        def slow():
            try:
                result["r"] = request(srv.port, "GET", "/integration-credentials/provider/salesforce",
                                      headers=key("a"), timeout=30)
            except OSError as e:
                result["error"] = repr(e)

        th = threading.Thread(target=slow, daemon=True)
        th.start()
        assert wait_until(lambda: lock.waiters() == 1, 10), "the request is not waiting in the database"
        srv.signal(signal.SIGTERM)
        # new connections are refused at once
        refused = wait_until(lambda: _refused(srv.port), 10)
        assert refused, "new connections still accepted after SIGTERM"
        assert th.is_alive() and not result, "the request did not wait for the lock: %r" % result
        eq(srv.proc.poll(), None, "the server waits for the request in flight")
        lock.release()
        th.join(20)
        assert "r" in result, "the in-flight request failed: %s" % result.get("error")
        expect(result["r"], 200)
        eq(result["r"].json()["id"], ctx["sf"]["id"], "in-flight answer")
        code = srv.wait(20)
        eq(code, 0, "exit status")
        log = srv.read_log()
        assert "stopped" in log, "no 'stopped' line"
        lines = [l for l in log.splitlines() if ACCESS.match(l)]
        eq(len(lines), 2, "access lines")
        assert " 200 " in lines[-1] and "closed early" not in lines[-1], lines[-1]
    finally:
        if lock:
            lock.release()
        srv.stop()


def _refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def t_final_stop():
    srv = ctx.pop("server")
    code = srv.stop()
    eq(code, 0, "exit status after SIGTERM")
    assert "stopped" in srv.read_log(), "no 'stopped' line"
    assert "runtime error" not in srv.read_log() and "Sanitizer" not in srv.read_log(), "sanitizer report in the log"


# --- command line -------------------------------------------------------------

def t_cli():
    binary = os.environ["SDR_SERVER"]
    p = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    eq(p.returncode, 0, "--help exit")
    for flag in ("--listen", "--port", "--db", "--pool", "--log-level", "--max-body", "--max-header",
                 "--max-connections", "SDR_CREDS_MAX_CONNECTIONS", "--max-per-addr", "--request-deadline", "SDR_CREDS_MAX_PER_ADDR", "SDR_CREDS_REQUEST_DEADLINE",
                 "SDR_CREDS_DB", "SDR_CREDS_LISTEN", "SDR_CREDS_PORT", "SDR_CREDS_POOL", "SDR_CREDS_LOG_LEVEL"):
        assert flag in p.stdout, flag + " not in --help"
    for args in (["--port", "70000"], ["--pool", "0"], ["--log-level", "loud"], ["--bogus"],
                 ["--listen", "localhost", "--port", "0"], ["--max-body", "x"], ["--max-per-addr", "-1"], ["--max-connections", "0"],
                 ["--request-deadline", "0"], ["--request-deadline", "x"]):
        p = subprocess.run([binary, *args], capture_output=True, text=True, timeout=10)
        assert p.returncode != 0, "%s accepted" % args


def run_suite(label, setup_fn, tests, logs, timed=False, then=None):
    """setup_fn(), the tests (harness.run_tests), then() if given, teardown();
    after a failure the tails of the logs that logs() names. Returns the exit
    status; a failed setup is "not ok - <label>: setup"."""
    try:
        setup_fn()
    except Exception as e:  # noqa: BLE001
        print("not ok - %s: setup" % label)
        diag(repr(e))
        teardown()
        return 1
    try:
        harness.run_tests(tests, timed=timed)
        if then:
            then()
    finally:
        if harness.results["failed"]:
            harness.show_log_tails(logs())
        teardown()
    return finish()


def main():
    tests = [
        ("http: GET /healthz", t_healthz),
        ("http: GET /readyz", t_readyz),
        ("http: HEAD", t_head),
        ("http: POST creates (201), exact field order", t_post_created),
        ("http: POST same provider replaces (200)", t_post_replaced),
        ("http: POST without trailing slash, null dsn", t_post_without_slash),
        ("http: POST 422 on invalid JSON, missing and wrong-typed fields", t_post_422),
        ("http: POST without credentials is 401", t_post_unauthenticated),
        ("http: GET by provider", t_get_by_provider),
        ("http: GET by provider 404", t_get_by_provider_404),
        ("http: GET by id", t_get_by_id),
        ("http: GET by id 404", t_get_by_id_404),
        ("http: GET by id 422 when not a UUID", t_get_by_id_422),
        ("http: list with and without slash, newest first, no secret metadata", t_list),
        ("http: list omits every kind of secret metadata", t_list_secret_metadata),
        ("http: list limit and offset", t_list_limit_offset),
        ("http: list 422 on bad limit/offset", t_list_422),
        ("http: DELETE", t_delete),
        ("http: DELETE 422 when not a UUID", t_delete_422),
        ("http: Bearer JWT works", t_bearer_jwt),
        ("http: Bearer JWTs of an identity provider (ES256, RS256; Auth0-shaped JWKS), refusals, key removal",
         t_bearer_identity_provider),
        ("http: X-API-Key wins over Authorization", t_api_key_wins),
        ("http: 401 with WWW-Authenticate for missing or invalid credentials", t_401),
        ("http: 403 for another org's credential", t_403_other_org),
        ("http: tenant isolation (get, list, delete)", t_isolation),
        ("http: 404 for unknown paths and path tricks", t_404),
        ("http: provider with SQL metacharacters, NUL, slash, bad UTF-8", t_provider_tricks),
        ("http: 405 with Allow", t_405),
        ("http: 413 for oversized bodies", t_413),
        ("http: 431 for oversized headers", t_431),
        ("http: malformed requests leave the server up", t_malformed_requests),
        ("http: keep-alive connection serves several requests", t_keep_alive),
        ("http: 300 connections hold no more database connections than --pool", t_pool_bound),
        ("http: a write waiting for a lock holds up no read", t_write_waits_alone),
        ("http: concurrent requests share pipelines, each gets its own org's answer", t_pipelining),
        ("http: the database records the HTTP client's address (peer, or trusted X-Forwarded-For)",
         t_client_address),
        ("http: the log names a function the server's role may not execute, once", t_missing_grants),
        ("http: CRM sync client example (requests)", t_crm_sync_example),
        ("http: access log has one line per request, routes not paths", t_access_log_lines),
        ("http: database restart gives 503 + Retry-After, then recovers", t_db_restart),
        ("http: SIGTERM lets the in-flight request finish, exit 0", t_sigterm_drain),
        ("http: logs hold no key, token or JWT", t_log_no_secrets),
        ("http: /metrics counts requests, latencies, round trips, pool; no secrets", t_metrics),
        ("http: /metrics counts deadline and per-address rejections", t_metrics_rejections),
        ("http: every response is application/json (but /metrics)", t_content_type_everywhere),
        ("http: command line flags", t_cli),
        ("http: server stops cleanly on SIGTERM (exit 0)", t_final_stop),
    ]
    return run_suite("http", setup, tests, lambda: (ctx.get("log"), ctx.get("drain_log")))


if __name__ == "__main__":
    sys.exit(main())
