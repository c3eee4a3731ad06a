#!/usr/bin/python3
"""PostgREST's own statements, replayed (PostgREST is not packaged for
Debian 12). Each request below is sent as PostgREST v12.2.9 sends it, one
libpq connection standing for one connection of its pool, logged in as its
authenticator role; every statement is a named prepared statement
(db-prepared-statements = true, PostgREST's default).

Taken from PostgREST v12.2.9 (github.com/PostgREST/postgrest, tag v12.2.9,
commit b454f29b) and hasql-transaction 1.0.1.4:
  - the transaction: src/PostgREST/Query.hs runQuery (SQL.transaction isoLvl
    txMode: READ COMMITTED, the default of db-isolation-level; planTxMode:
    Plan.hs callReadPlan gives READ ONLY for GET and for a STABLE function,
    READ WRITE for POST to a VOLATILE one), hasql-transaction
    Private/SQL.hs beginTransaction ("BEGIN ISOLATION LEVEL READ COMMITTED
    READ ONLY|READ WRITE"), Private/Sessions.hs tryTransaction (COMMIT on
    success, ABORT when a statement fails);
  - the settings: Query.hs setPgLocals (one "select set_config(...), ..."
    in the order search_path, role, request.jwt.claims, request.method,
    request.path, request.headers, request.cookies), SqlFragment.hs
    setConfigLocal / setConfigWithConstantNameJSON (values as "unknown"
    parameters, headers and cookies as one JSON object each, header names
    lower-cased: ApiRequest.hs iHdrs, the Cookie header left out); the role
    is the JWT's "role" claim or db-anon-role, and the claims get "role"
    added (Auth.hs parseClaims);
  - db-pre-request: Query.hs runPreReq ("select <function>()");
  - the call: Query.hs actionQuery (DbCall), Statements.hs prepareCall (the
    "WITH pgrst_source AS (...) SELECT ... json_agg ... response.status"
    wrapper), QueryBuilder.hs callPlanToQuery and readPlanToQuery,
    SqlFragment.hs fromJsonBodyF (the arguments as one json parameter:
    the query string's for GET, Plan/CallPlan.hs jsonRpcParams; the request
    body for POST), asJsonF, currentSettingF;
  - the status: Error.hs pgErrorStatus ("PTxyz" -> HTTP status xyz;
    42501 -> 403 when authenticated, else 401), Response.hs
    overrideStatusHeaders (response.status overrides 200).
hasql 1.6.4 (PostgREST's) prepares each statement text once per connection
(Hasql/IO.hs getPreparedStatementKey) and sends the "unknown" parameters in
text format with type OID 705, the json one in binary format with OID 114
(for json the same bytes as text: PostgresTypeInfo.hs), and asks for binary
results; this replay sends every parameter, and takes the results, in text
format with the same OIDs.

Run by test/postgrest/run.sh (PGHOST, PGPORT, SDR_CLUSTER_DIR exported).
Prints one "ok - ..." / "not ok - ..." line per test."""

import base64
import hashlib
import hmac
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "http"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "pgbouncer"))
import harness as h  # noqa: E402
from bouncer import Conn, SqlError  # noqa: E402

DB = "sdr_pgrst"
AUTHENTICATOR, ANON, USER = "sdr_pgrst_authenticator", "sdr_pgrst_anon", "sdr_pgrst_user"
ORG_A = "6a0c3b1e-0000-4000-8000-00000000000a"
ORG_B = "6a0c3b1e-0000-4000-8000-00000000000b"
SCHEMA = "sdr_creds"                       # db-schemas
EXTRA_SEARCH_PATH = ["public"]             # db-extra-search-path's default
PRE_REQUEST = "sdr_creds.authenticate_request"   # as docs/sql.md tells
UNKNOWN, JSON_OID = 705, 114
ctx = {}


def ident(name):
    return '"%s"' % name.replace('"', '""')


# --- the statements, as PostgREST builds them ---------------------------------

def begin_sql(write):
    return "BEGIN ISOLATION LEVEL READ COMMITTED " + ("READ WRITE" if write else "READ ONLY")


SET_LOCALS = ("select set_config('search_path', $1, true), set_config('role', $2, true), "
              "set_config('request.jwt.claims', $3, true), set_config('request.method', $4, true), "
              "set_config('request.path', $5, true), set_config('request.headers', $6, true), "
              "set_config('request.cookies', $7, true)")


def call_sql(fn, params, scalar):
    """prepareCall around callPlanToQuery for sdr_creds.<fn>, whose named
    parameters params [(name, type)] come from the json parameter $1 (none:
    no parameter at all); scalar: the function returns one value (json)
    rather than a record (OUT parameters)."""
    qi = "%s.%s" % (ident(SCHEMA), ident(fn))
    args = ", ".join("%s := pgrst_body.%s" % (ident(n), ident(n)) for n, _ in params)
    call = ("(SELECT %s(%s) pgrst_scalar) pgrst_call" % (qi, args) if scalar
            else "%s(%s) pgrst_call" % (qi, args))
    if params:
        source = ("FROM (SELECT $1 AS json_data) pgrst_payload, LATERAL (SELECT %s FROM "
                  "json_to_record(pgrst_payload.json_data) AS _(%s) LIMIT 1) pgrst_body , LATERAL %s"
                  % (", ".join(ident(n) for n, _ in params),
                     ", ".join("%s %s" % (ident(n), t) for n, t in params), call))
    else:
        source = "FROM " + call
    cols = "pgrst_call.pgrst_scalar" if scalar else '"pgrst_call".*'
    body = ("coalesce(json_agg(_postgrest_t.pgrst_scalar)->0, 'null')" if scalar
            else "coalesce(json_agg(_postgrest_t)->0, 'null')")
    return ("WITH pgrst_source AS (SELECT %s %s) SELECT null::bigint AS total_result_set, "
            "1 AS page_total, %s AS body, "
            "nullif(current_setting('response.headers', true), '') AS response_headers, "
            "nullif(current_setting('response.status', true), '') AS response_status, "
            "'' AS response_inserted FROM (SELECT %s.* FROM \"pgrst_source\" AS %s     ) _postgrest_t"
            % (cols, source, body, ident(fn), ident(fn)))


# the routes: function, its parameters PostgREST reads from the schema
# cache, whether it returns one scalar, whether it is VOLATILE
ROUTES = {
    "get_by_provider": ([("provider", "text")], True, False),
    "list": ([("limit", "integer"), ("offset", "integer")], True, False),
    "store_json": ([("body", "text")], False, True),
    "store": ([("provider", "text"), ("dsn", "text"), ("access_token", "text"),
               ("metadata", "jsonb")], False, True),
    "delete": ([("id", "uuid")], True, True),
}


def pg_error_status(sqlstate, authed):
    """Error.hs pgErrorStatus, for the SQLSTATEs these calls can raise."""
    if sqlstate.startswith("PT"):
        return int(sqlstate[2:])
    if sqlstate == "42501":
        return 403 if authed else 401
    if sqlstate == "25006":
        return 405
    if sqlstate[:2] in ("XX", "F0", "P0", "40", "25"):
        return 500
    return 400


def verify_jwt(token):
    """What PostgREST checks before any SQL (Auth.hs parseToken): the HS256
    signature with its jwt-secret (here the same secret as
    sdr_creds.jwt_secret) and exp; the claims, or None (401)."""
    try:
        head, payload, sig = token.split(".")
        want = hmac.new(ctx["jwt_secret"], (head + "." + payload).encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)), want):
            return None
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        return None
    if "exp" in claims and claims["exp"] < time.time() - 30:
        return None
    return claims


class Response:
    def __init__(self, status, body, statements):
        self.status, self.body, self.statements = status, body, statements

    def json(self):
        return json.loads(self.body)


def request(conn, method, fn, args=None, headers=None, pre_request=False, claims_override=None):
    """One PostgREST request on conn (a pooled connection): GET
    /rpc/<fn>?<args> or POST /rpc/<fn> with the JSON body args. Returns the
    Response PostgREST would send, and the statements it ran in order."""
    params, scalar, volatile = ROUTES[fn]
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    hdrs = {"host": "127.0.0.1:3000", "user-agent": "sdr-creds-replay", "accept": "*/*", **headers}
    body = None
    if method == "POST":
        body = json.dumps(args or {})
        hdrs.update({"content-type": "application/json", "content-length": str(len(body))})
    else:
        body = json.dumps({k: str(v) for k, v in (args or {}).items()})
    # the JWT: verified by PostgREST; its role claim is the role, else db-anon-role
    claims = {}
    auth = hdrs.get("authorization", "")
    if auth.lower().startswith("bearer "):
        claims = verify_jwt(auth[7:].strip())
        if claims is None:
            return Response(401, json.dumps({"code": "PGRST301"}), [])
    role = claims.get("role", ANON)
    claims = dict(claims, role=role)
    authed = role != ANON
    # the arguments: only the function's parameters that were given (Plan.hs callPlan)
    given = set(json.loads(body)) if body else set()
    used = [p for p in params if p[0] in given]
    write = method == "POST" and volatile
    statements = []

    def run(sql, values=(), types=()):
        statements.append(sql)
        return conn.exec_prepared(sql, values, types)

    run(begin_sql(write))
    try:
        search_path = ", ".join(ident(s) for s in [SCHEMA] + EXTRA_SEARCH_PATH)
        run(SET_LOCALS, [search_path, role, claims_override or json.dumps(claims), method,
                         "/rpc/" + fn, json.dumps(hdrs), "{}"], [UNKNOWN] * 7)
        if pre_request:
            run("select %s()" % ".".join(ident(p) for p in PRE_REQUEST.split(".")))
        if used:
            row = run(call_sql(fn, used, scalar), [body], [JSON_OID])[0]
        else:
            row = run(call_sql(fn, [], scalar))[0]
    except SqlError as e:
        run("ABORT")
        return Response(pg_error_status(e.sqlstate, authed),
                        json.dumps({"code": e.sqlstate, "message": str(e)}), statements)
    run("COMMIT")
    status = int(row[4]) if row[4] else 200
    return Response(status, row[2], statements)


# --- setup ----------------------------------------------------------------------

def setup():
    os.environ["SDR_HTTP_DB"] = DB
    h.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB, db="postgres")
    h.psql("CREATE DATABASE %s" % DB, db="postgres")
    h.psql("CREATE EXTENSION sdr_creds CASCADE")
    # PostgREST's roles: it logs in as the authenticator (no privileges of
    # its own: NOINHERIT), which may switch to the anon and the user role
    for r in (AUTHENTICATOR, ANON, USER):
        h.psql("DROP ROLE IF EXISTS %s" % r, db="postgres")
    h.psql("CREATE ROLE %s LOGIN NOINHERIT; CREATE ROLE %s NOLOGIN; CREATE ROLE %s NOLOGIN; "
           "GRANT %s, %s TO %s" % (AUTHENTICATOR, ANON, USER, ANON, USER, AUTHENTICATOR), db="postgres")
    # docs/sql.md's GRANTs, to db-anon-role (X-API-Key requests) and to the JWT's role
    h.psql("GRANT USAGE ON SCHEMA sdr_creds TO {a}, {u}; GRANT EXECUTE ON FUNCTION "
           "sdr_creds.authenticate(text), sdr_creds.authenticate_headers(text, text), "
           "sdr_creds.authenticate_request(), sdr_creds.current_org_id(), "
           "sdr_creds.store(text, text, text, jsonb), sdr_creds.store_json(text), "
           "sdr_creds.get_by_provider(text), sdr_creds.get(uuid), sdr_creds.list(integer, integer), "
           "sdr_creds.delete(uuid) TO {a}, {u}".format(a=ANON, u=USER))
    for name, org in (("a", ORG_A), ("b", ORG_B)):
        out = h.psql("SELECT sdr_creds.create_api_key(%s::uuid, 'postgrest replay')" % h.sql_literal(org))
        ctx["key_" + name] = h.secret(json.loads(out)["key"])
    with open(os.path.join(os.environ["SDR_CLUSTER_DIR"], "keys", "jwt_secret"), "rb") as f:
        ctx["jwt_secret"] = f.read().strip()
    h.secret(ctx["jwt_secret"].decode())
    now = int(time.time())
    for name, org in (("a", ORG_A), ("b", ORG_B)):
        ctx["jwt_" + name] = h.jwt(ctx["jwt_secret"], {"org_id": org, "role": USER, "exp": now + 3600})
    ctx["conn"] = Conn("host=%s port=%s dbname=%s user=%s" % (
        os.environ.get("PGHOST", "127.0.0.1"), os.environ["PGPORT"], DB, AUTHENTICATOR))


def key(org):
    return {"X-API-Key": ctx["key_" + org]}


def bearer(org):
    return {"Authorization": "Bearer " + ctx["jwt_" + org]}


def store_body(provider, token, **extra):
    """POST /rpc/store_json's body: store_json(body text) has one named
    parameter, so PostgREST (Plan.hs findProc, callPlan) takes a JSON object
    with a "body" key, its value the credential's JSON as a string."""
    return {"body": json.dumps({"provider": provider, "dsn": "https://%s.example.test" % provider,
                                "access_token": token, "metadata": {"instance": "eu1", **extra}})}


def expect(resp, status, what):
    assert resp.status == status, "%s: expected HTTP %d, got %d (%s)" % (
        what, status, resp.status, h.redact(resp.body))
    return resp


# --- the tests ------------------------------------------------------------------

def t_store_json():
    c = ctx["conn"]
    for org, auth in (("a", key("a")), ("b", bearer("b"))):
        r = expect(request(c, "POST", "store_json", store_body("salesforce", "tok-sf-" + org), auth),
                   201, "first store, org " + org)
        got = r.json()
        h.eq(got["created"], True, "created")
        h.eq(list(got["credential"]), ["id", "org_id", "provider", "dsn", "access_token", "metadata",
                                        "created_at", "updated_at"], "fields")
        h.eq(got["credential"]["org_id"], ORG_A if org == "a" else ORG_B, "org")
        h.eq(got["credential"]["access_token"], "tok-sf-" + org, "token")
        ctx["id_" + org] = got["credential"]["id"]
    h.eq(r.statements[0], "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE", "POST's transaction")
    h.eq(r.statements[-1], "COMMIT", "POST's end")
    r = expect(request(c, "POST", "store_json", store_body("salesforce", "tok-sf-a2", refresh_token="rt-a"),
                       key("a")), 200, "replacing store")
    h.eq((r.json()["created"], r.json()["credential"]["id"]), (False, ctx["id_a"]), "replaced in place")
    # flat arguments to /rpc/store, as most PostgREST clients call it
    r = expect(request(c, "POST", "store", {"provider": "hubspot", "dsn": "https://api.hubapi.test",
                                            "access_token": "tok-hs-a", "metadata": {"portal": 7}},
                       bearer("a")), 201, "POST /rpc/store")
    h.eq(r.json()["credential"]["provider"], "hubspot", "stored provider")


def t_get_by_provider():
    c = ctx["conn"]
    for org, auth in (("a", key("a")), ("a", bearer("a")), ("b", key("b")), ("b", bearer("b"))):
        r = expect(request(c, "GET", "get_by_provider", {"provider": "salesforce"}, auth), 200,
                   "GET /rpc/get_by_provider, org " + org)
        got = r.json()
        h.eq((got["org_id"], got["id"]), (ORG_A, ctx["id_a"]) if org == "a" else (ORG_B, ctx["id_b"]), "org")
    h.eq(r.statements[0], "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY", "GET's transaction")
    h.eq(len(r.statements), 4, "BEGIN, set_config, the call, COMMIT")
    got = expect(request(c, "GET", "get_by_provider", {"provider": "salesforce"}, key("a")), 200, "A").json()
    h.eq((got["access_token"], got["metadata"]), ("tok-sf-a2", {"instance": "eu1", "refresh_token": "rt-a"}),
         "the decrypted credential")


def t_list():
    c = ctx["conn"]
    got = expect(request(c, "GET", "list", None, key("a")), 200, "GET /rpc/list").json()
    h.eq(sorted(x["provider"] for x in got), ["hubspot", "salesforce"], "A's providers")
    h.eq({x["org_id"] for x in got}, {ORG_A}, "A's list holds A's rows only")
    assert all("refresh_token" not in x["metadata"] for x in got), "list carries a secret metadata key"
    got = expect(request(c, "GET", "list", {"limit": 1}, bearer("a")), 200, "GET /rpc/list?limit=1").json()
    h.eq(len(got), 1, "one row")
    got = expect(request(c, "GET", "list", {"limit": 5, "offset": 0}, bearer("b")), 200, "B's list").json()
    h.eq([(x["org_id"], x["provider"]) for x in got], [(ORG_B, "salesforce")], "B's list")


def t_errors():
    """Each PTxyz the functions raise, and the HTTP status PostgREST gives it."""
    c = ctx["conn"]
    cases = [
        ("no credentials", "GET", "get_by_provider", {"provider": "salesforce"}, {}, 401),
        ("an unknown API key", "GET", "list", None, {"X-API-Key": "sk_live_" + "0" * 40}, 401),
        ("an unknown provider", "GET", "get_by_provider", {"provider": "pipedrive"}, key("a"), 404),
        ("limit=0", "GET", "list", {"limit": 0}, key("a"), 422),
        ("limit=1001", "GET", "list", {"limit": 1001}, bearer("a"), 422),
        ("a body that is not JSON", "POST", "store_json", {"body": "{not json"}, key("a"), 422),
        ("a bad provider name", "POST", "store_json", store_body("Bad Name!", "t"), bearer("a"), 422),
        ("another org's id", "POST", "delete", {"id": ctx["id_b"]}, key("a"), 403),
        ("another org's id (JWT)", "POST", "delete", {"id": ctx["id_a"]}, bearer("b"), 403),
        ("an unknown id", "POST", "delete", {"id": "00000000-0000-4000-8000-000000000001"}, key("a"), 404),
    ]
    for what, method, fn, args, auth, status in cases:
        r = expect(request(c, method, fn, args, auth), status, what)
        h.eq(json.loads(r.body)["code"], "PT%d" % status, what + ": SQLSTATE")
        h.eq(r.statements[-1], "ABORT", what + ": the transaction's end")
    # a JWT that PostgREST refuses never reaches the database
    bad = ctx["jwt_a"][:-4] + ("AAAA" if not ctx["jwt_a"].endswith("AAAA") else "BBBB")
    r = request(c, "GET", "list", None, {"Authorization": "Bearer " + bad})
    h.eq((r.status, r.statements), (401, []), "a JWT with a bad signature")
    # the other org's rows are untouched by the refused deletes
    h.eq(expect(request(c, "GET", "get_by_provider", {"provider": "salesforce"}, key("b")), 200,
                "B's credential after A's refused delete").json()["id"], ctx["id_b"], "B's id")


def t_role_switch():
    """The JWT's role claim becomes the transaction's role (set_config('role',
    ..., true), i.e. SET LOCAL ROLE): a role the authenticator was not
    granted is refused (42501, 403 as the request is authenticated), and the
    authenticator's own privileges (none) are never used."""
    c = ctx["conn"]
    h.psql("DROP ROLE IF EXISTS sdr_pgrst_other; CREATE ROLE sdr_pgrst_other NOLOGIN", db="postgres")
    try:
        tok = h.jwt(ctx["jwt_secret"], {"org_id": ORG_A, "role": "sdr_pgrst_other", "exp": int(time.time()) + 600})
        r = request(c, "GET", "list", None, {"Authorization": "Bearer " + tok})
        h.eq((r.status, json.loads(r.body)["code"], len(r.statements)), (403, "42501", 3),
             "a role claim the authenticator may not switch to: refused at set_config")
        h.psql("GRANT sdr_pgrst_other TO %s" % AUTHENTICATOR, db="postgres")
        r = request(c, "GET", "list", None, {"Authorization": "Bearer " + tok})
        h.eq((r.status, json.loads(r.body)["code"]), (403, "42501"),
             "granted to the authenticator but without EXECUTE: the role's own privileges apply")
    finally:
        h.psql("DROP ROLE IF EXISTS sdr_pgrst_other", db="postgres")
    # the session's role after the transactions: the authenticator again
    h.eq(c.value("SELECT current_user"), AUTHENTICATOR, "role after COMMIT/ABORT")
    got = expect(request(c, "GET", "list", None, bearer("a")), 200, "the user role's request next").json()
    h.eq({x["org_id"] for x in got}, {ORG_A}, "A's rows")


def t_pooled_connection():
    """One pooled connection: org A's request, then org B's, then one with no
    credentials: each sees its own org only, the last none."""
    c = ctx["conn"]
    pid = c.value("SELECT pg_backend_pid()")
    for auth_a, auth_b in ((key("a"), bearer("b")), (bearer("a"), key("b"))):
        got_a = expect(request(c, "GET", "list", None, auth_a), 200, "A").json()
        got_b = expect(request(c, "GET", "list", None, auth_b), 200, "B right after A").json()
        h.eq({x["org_id"] for x in got_a}, {ORG_A}, "A sees A only")
        h.eq({x["org_id"] for x in got_b}, {ORG_B}, "B sees B only")
        made = expect(request(c, "POST", "store_json", store_body("zoho", "tok-z"), auth_a), 201, "A writes")
        expect(request(c, "GET", "get_by_provider", {"provider": "zoho"}, auth_b), 404,
               "B right after A's write: A's provider not found")
        expect(request(c, "GET", "list", None, {}), 401, "no credentials right after B")
        got = expect(request(c, "POST", "delete", {"id": made.json()["credential"]["id"]}, auth_a), 200,
                     "A deletes").json()
        assert "message" in got, "delete's answer: %r" % got
        expect(request(c, "GET", "get_by_provider", {"provider": "zoho"}, auth_a), 404, "A's deleted provider")
        expect(request(c, "GET", "get_by_provider", {"provider": "salesforce"}, {}), 401,
               "no credentials right after A")
    h.eq(c.value("SELECT pg_backend_pid()"), pid, "all on one backend")
    # nothing lingers in the session between requests (the authenticator
    # itself may not even call current_org_id(): NOINHERIT, no grants)
    h.eq(c.exec("SELECT current_user, current_setting('request.headers', true), "
                "current_setting('request.jwt.claims', true)"),
         [[AUTHENTICATOR, "", ""]], "role and request settings between requests")
    h.eq(c.error("SELECT sdr_creds.current_org_id()"), "42501", "the authenticator's own privileges")


def t_forged_claims():
    """PostgREST's request.jwt.claims is not trusted: claims naming org B with
    A's key in the headers act as A; claims without a key or JWT: 401."""
    c = ctx["conn"]
    forged = json.dumps({"role": ANON, "org_id": ORG_B})
    got = expect(request(c, "GET", "list", None, key("a"), claims_override=forged), 200, "forged claims").json()
    h.eq({x["org_id"] for x in got}, {ORG_A}, "acts as the key's org")
    expect(request(c, "GET", "list", None, {}, claims_override=forged), 401, "claims alone")


def t_pre_request():
    """db-pre-request = sdr_creds.authenticate_request, as docs/sql.md offers:
    it authenticates once per request; a request without credentials fails
    there (PT401 -> 401) before the call."""
    c = ctx["conn"]
    for auth, org in ((key("a"), ORG_A), (bearer("b"), ORG_B)):
        r = expect(request(c, "GET", "list", None, auth, pre_request=True), 200, "with db-pre-request")
        h.eq({x["org_id"] for x in r.json()}, {org}, "own org only")
        h.eq(r.statements[2], 'select "sdr_creds"."authenticate_request"()', "the pre-request call")
    r = expect(request(c, "GET", "list", None, {}, pre_request=True), 401, "no credentials")
    h.eq((len(r.statements), r.statements[-1]), (4, "ABORT"), "failed at the pre-request call")
    r = expect(request(c, "POST", "store_json", store_body("pipedrive", "tok-p"), bearer("a"), pre_request=True),
               201, "POST with db-pre-request")
    expect(request(c, "POST", "delete", {"id": r.json()["credential"]["id"]}, key("a"), pre_request=True),
           200, "delete with db-pre-request")


def cleanup():
    if "conn" in ctx:
        ctx["conn"].close()
    h.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB, db="postgres", check_rc=False)
    for r in (AUTHENTICATOR, ANON, USER):
        h.psql("DROP ROLE IF EXISTS %s" % r, db="postgres", check_rc=False)


def main():
    return h.run_with_setup("postgrest", setup, [
        ("postgrest: POST /rpc/store_json (X-API-Key, Bearer) in READ WRITE: 201 then 200 from"
         " response.status, the object; POST /rpc/store with flat arguments", t_store_json),
        ("postgrest: GET /rpc/get_by_provider?provider=salesforce in READ ONLY, X-API-Key and Bearer:"
         " each org its own credential, decrypted", t_get_by_provider),
        ("postgrest: GET /rpc/list (and ?limit=, &offset=) in READ ONLY: the org's rows only, no secret"
         " metadata", t_list),
        ("postgrest: PT401/PT404/PT422/PT403 map to HTTP 401/404/422/403 (Error.hs pgErrorStatus), each"
         " ending in ABORT; a bad JWT stops before SQL", t_errors),
        ("postgrest: the JWT role claim's set_config('role') (SET LOCAL ROLE): refused when not granted to the"
         " authenticator; the role's own privileges apply; reset after the transaction", t_role_switch),
        ("postgrest: one pooled connection, A's request then B's then one without credentials: B sees B"
         " only, the last none", t_pooled_connection),
        ("postgrest: request.jwt.claims is not trusted: forged claims act as the key's org, alone 401",
         t_forged_claims),
        ("postgrest: db-pre-request = sdr_creds.authenticate_request: GET and POST work, no credentials"
         " 401 at the pre-request call", t_pre_request),
    ], cleanup)


if __name__ == "__main__":
    sys.exit(main())
