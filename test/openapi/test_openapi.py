#!/usr/bin/python3
"""Tests of GET /openapi.json over a real socket: the document the server
serves (no credentials, the source file with the extension's version), that
it names exactly the routes routes.c knows, that it passes a real OpenAPI
validator (@apidevtools/swagger-parser), that a client generated from it
(openapi-typescript + openapi-fetch, type-checked by tsc) works against the
server, and that every answer the HTTP tests recorded (SDR_HTTP_RECORD)
matches the schema of its route and status.

Reuses test_http.py's setup (database, role, orgs, API keys, server) on its
own database sdr_openapi. Same output contract as test_http.py."""

import json
import os
import re
import shutil
import subprocess
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "test", "http"))
sys.path.insert(0, HERE)
from harness import diag, eq, request, secret  # noqa: E402
import harness  # noqa: E402
import test_http as T  # noqa: E402
from answers import Document, libmicrohttpd_own  # noqa: E402

T.reuse("sdr_openapi", "sdr_openapi_app", os.path.join(os.environ.get("SDR_OPENAPI_WORK") or "/tmp", "openapi"))
WORK = T.WORK
ctx = T.ctx
BIN = os.path.join(HERE, "node_modules", ".bin")
SOURCE = os.path.join(TOP, "src", "server", "openapi.json")


def control_version():
    with open(os.path.join(TOP, "sdr_creds.control")) as f:
        return re.search(r"^default_version = '(.*)'$", f.read(), re.M).group(1)


def run(cmd, timeout=120, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=HERE)
    return p.returncode, (p.stdout + p.stderr).strip()


# --- the document served --------------------------------------------------------

def t_served():
    port = ctx["port"]
    r = request(port, "GET", "/openapi.json")
    eq((r.status, r.header("content-type")), (200, "application/json"), "GET /openapi.json without credentials")
    doc = r.json()
    with open(SOURCE) as f:
        source = json.load(f)
    eq(source["info"]["version"], "@SDR_CREDS_VERSION@", "the source's version placeholder")
    source["info"]["version"] = control_version()
    assert doc == source, "the served document differs from src/server/openapi.json"
    eq(doc["openapi"], "3.1.0", "openapi")
    ctx["doc"] = doc
    ctx["doc_path"] = os.path.join(WORK, "openapi.json")
    with open(ctx["doc_path"], "wb") as f:
        f.write(r.body)
    r = request(port, "HEAD", "/openapi.json")
    eq((r.status, r.header("content-type"), r.body), (200, "application/json", b""), "HEAD /openapi.json")
    # credentials change nothing, even invalid ones
    r = request(port, "GET", "/openapi.json", headers={"X-API-Key": secret("sk_live_made_up_openapi_0000")})
    eq((r.status, r.json()), (200, doc), "GET /openapi.json with an unknown API key")
    r = request(port, "POST", "/openapi.json", body="{}")
    eq((r.status, r.header("allow"), r.json()), (405, "GET, HEAD", {"detail": "Method Not Allowed"}),
       "POST /openapi.json")
    metrics = request(port, "GET", "/metrics").body.decode()
    for method, status in (("GET", "200"), ("HEAD", "200"), ("POST", "405")):
        assert re.search(r'^sdr_creds_http_requests_total\{route="/openapi.json",method="%s",status="%s"\} [1-9]'
                         % (method, status), metrics, re.M), "/metrics counts %s /openapi.json %s" % (method, status)
    assert harness.wait_until(lambda: "GET /openapi.json 200 " in ctx["server"].read_log(), 5), "access log line"


def routes_c():
    """{pattern: set of methods} from the route table in src/server/routes.c."""
    with open(os.path.join(TOP, "src", "server", "routes.c")) as f:
        text = f.read()
    table = re.search(r"routes\[\] = \{(.*?)\n\};", text, re.S).group(1)
    found = {m.group(1): {x.strip() for x in m.group(2).split(",")}
             for m in re.finditer(r'\[R_\w+\] = \{"(/[^"]*)", "([^"]*)"', table)}
    assert len(found) >= 8, "routes parsed from routes.c: %s" % sorted(found)
    return found


def t_routes():
    doc = ctx["doc"]
    want = routes_c()
    # the collection answers with and without its trailing slash (route_find)
    want["/integration-credentials"] = want["/integration-credentials/"]
    got = {}
    for path, item in doc["paths"].items():
        methods = {m.upper() for m in item if m in ("get", "put", "post", "delete", "patch", "head", "options", "trace")}
        got[path] = methods | ({"HEAD"} if "GET" in methods else set())
    eq(sorted(got.items()), sorted(want.items()), "paths and methods (HEAD with every GET)")
    # every route's answers are described, and the credential routes need credentials
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            public = path in ("/healthz", "/readyz", "/metrics", "/openapi.json")
            eq(op.get("security", doc["security"]) == [], public, "%s %s without authentication" % (method, path))
            want_codes = {"413", "431"} | ({"401", "422", "500", "503"} if not public else set())
            assert want_codes <= set(op["responses"]), "%s %s lacks %s" % (method, path, want_codes - set(op["responses"]))
    schemes = doc["components"]["securitySchemes"]
    eq(schemes["ApiKey"], {**schemes["ApiKey"], "type": "apiKey", "in": "header", "name": "X-API-Key"}, "ApiKey")
    eq(schemes["BearerJWT"], {**schemes["BearerJWT"], "type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
       "BearerJWT")


# --- a real validator ---------------------------------------------------------------

def t_validator():
    rc, out = run(["node", os.path.join(HERE, "validate.mjs"), ctx["doc_path"]])
    assert rc == 0 and out.startswith("valid sdr_creds HTTP API %s 9 paths" % control_version()), out[-2000:]
    diag(out)
    # the validator can fail: a response without its description, a $ref to nothing
    for name, breaks in (("a response without description",
                          lambda d: d["paths"]["/healthz"]["get"]["responses"]["200"].pop("description")),
                         ("dangling $ref", lambda d: d["paths"]["/readyz"]["get"]["responses"].update(
                             {"503": {"$ref": "#/components/responses/NoSuchResponse"}}))):
        broken = json.loads(json.dumps(ctx["doc"]))
        breaks(broken)
        path = os.path.join(WORK, "broken.json")
        with open(path, "w") as f:
            json.dump(broken, f)
        rc, out = run(["node", os.path.join(HERE, "validate.mjs"), path])
        assert rc == 1 and out.startswith("invalid"), "a document with %s passed: %s" % (name, out[-500:])


# --- a generated client -----------------------------------------------------------

def t_generated_client():
    d = os.path.join(WORK, "client")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    os.symlink(os.path.join(HERE, "node_modules"), os.path.join(d, "node_modules"))
    shutil.copy(os.path.join(HERE, "client.mts"), d)
    rc, out = run([os.path.join(BIN, "openapi-typescript"), ctx["doc_path"], "-o", os.path.join(d, "schema.d.ts")])
    assert rc == 0, "openapi-typescript: " + out[-2000:]
    with open(os.path.join(d, "schema.d.ts")) as f:
        types = f.read()
    assert '"/integration-credentials/provider/{provider}"' in types, "generated types lack a path"
    rc, out = run([os.path.join(BIN, "tsc"), "--strict", "--target", "es2022", "--module", "nodenext",
                   "--moduleResolution", "nodenext", "--types", "node", "--skipLibCheck",
                   "--outDir", d, os.path.join(d, "client.mts")])
    assert rc == 0, "tsc: " + out[-3000:]
    provider = "openapi-client-" + uuid.uuid4().hex[:8]
    env = dict(os.environ, SDR_CREDS_URL="http://127.0.0.1:%d" % ctx["port"], SDR_CREDS_API_KEY=ctx["key_a"],
               SDR_CREDS_ORG_ID=T.ORG_A, SDR_CREDS_PROVIDER=provider,
               SDR_CREDS_TOKEN=secret("tok-made-up-openapi-" + uuid.uuid4().hex[:8]))
    rc, out = run(["node", os.path.join(d, "client.mjs")], env=env)
    lines = out.splitlines()
    try:
        summary = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise AssertionError("client output: " + out[-2000:])
    assert rc == 0, "client failed: %s" % summary
    eq({k: summary.get(k) for k in ("store", "get_by_provider", "list", "get", "replace", "unauthenticated",
                                      "delete", "get_deleted", "checks")},
       {"store": 201, "get_by_provider": 200, "list": 200, "get": 200, "replace": 200, "unauthenticated": 401,
        "delete": 200, "get_deleted": 404, "checks": 11}, "the client's statuses and checks")
    # what the client did is in the database: stored, then deleted
    r = request(ctx["port"], "GET", "/integration-credentials/provider/" + provider, headers=T.key("a"))
    eq(r.status, 404, "the client's credential after its delete")
    diag("client: " + lines[-1])


# --- every recorded answer ----------------------------------------------------------

def load_answers():
    path = os.environ.get("SDR_HTTP_RECORD")
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# Answers the check must refuse (so that it can fail): a credential without a
# field, a listing with secret metadata, a 403 from a route that has none, an
# undeclared status, a 405 with a wrong Allow, a 401 without WWW-Authenticate,
# an unknown path's 200, an error that is not {"detail"}, a wrong Content-Type.
OBJ = {"id": str(uuid.uuid4()), "org_id": str(uuid.uuid4()), "provider": "p", "dsn": None,
       "access_token": "[redacted]", "metadata": {}, "created_at": "2024-10-06T12:00:00Z",
       "updated_at": "2024-10-06T12:00:00Z"}
JSON = "application/json"
WRONG = [
    ("GET", "/integration-credentials/provider/p", 200, JSON, {}, {k: v for k, v in OBJ.items() if k != "dsn"}),
    ("GET", "/integration-credentials/?limit=1", 200, JSON, {}, [dict(OBJ, metadata={"Refresh_Token": "x"})]),
    ("GET", "/integration-credentials/provider/p", 403, JSON, {}, {"detail": "x"}),
    ("GET", "/healthz", 500, JSON, {}, {"detail": "x"}),
    ("PUT", "/healthz", 405, JSON, {"allow": "GET, HEAD, POST"}, {"detail": "Method Not Allowed"}),
    ("GET", "/integration-credentials/", 401, JSON, {}, {"detail": "x"}),
    ("GET", "/no/such/path", 200, JSON, {}, {"status": "ok"}),
    ("DELETE", "/integration-credentials/" + OBJ["id"], 404, JSON, {}, {"detail": "x", "extra": 1}),
    ("GET", "/readyz", 200, "text/plain", {}, None),
]


def t_answers(answers):
    doc = Document(ctx["doc"])
    for method, path, status, ctype, headers, body in WRONG:
        a = {"method": method, "path": path, "status": status, "content_type": ctype, "headers": headers,
             "body_bytes": 2, "body": body}
        assert doc.check(a), "the check passed a wrong answer: %s %s %d" % (method, path, status)
    bad = {}
    statuses = {}
    for a in answers:
        why = doc.check(a)
        route = doc.route(a["path"]) or "-"
        statuses.setdefault(a["status"], set()).add(route)
        if why:
            key_ = "%s %s -> %d: %s" % (a["method"], route, a["status"], why)
            bad[key_] = bad.get(key_, 0) + 1
    diag("statuses seen: " + ", ".join("%d (%d routes)" % (s, len(r)) for s, r in sorted(statuses.items())))
    assert not bad, "answers that do not match the document:\n" + "\n".join(
        "%s (%d times)" % (k, n) for k, n in sorted(bad.items())[:30])
    # the recording is on and covers the API: a check that checked nothing would pass
    assert len(answers) > 500, "answers recorded: %d (is SDR_HTTP_RECORD set for the HTTP tests?)" % len(answers)
    for s in (200, 201, 401, 403, 404, 405, 413, 422, 431, 503):
        assert s in statuses, "no answer with status %d was recorded" % s


def check_answers():
    """After the tests: every recorded answer, this suite's included."""
    if "doc" not in ctx:
        print("not ok - openapi: recorded answers (no document)")
        harness.results["failed"] += 1
        return
    answers = load_answers()
    checked = [a for a in answers if not libmicrohttpd_own(a)]
    harness.check("openapi: every answer the HTTP tests got (%d; %d of libmicrohttpd's own left out) matches "
                  "the schema of its route and status" % (len(checked), len(answers) - len(checked)),
                  t_answers, checked)


def main():
    tests = [
        ("openapi: GET/HEAD /openapi.json need no credentials, serve src/server/openapi.json with the "
         "extension's version, POST is 405, counted in /metrics and logged", t_served),
        ("openapi: the document names exactly the routes and methods of routes.c, with security and error answers",
         t_routes),
        ("openapi: the document passes @apidevtools/swagger-parser's validation (broken copies do not)", t_validator),
        ("openapi: a client generated from it (openapi-typescript, openapi-fetch, tsc) stores, gets by provider, "
         "lists, gets by id, replaces and deletes", t_generated_client),
    ]
    return T.run_suite("openapi", T.setup, tests, lambda: (ctx.get("log"),), then=check_answers)


if __name__ == "__main__":
    sys.exit(main())
