#!/usr/bin/env python3
"""Bearer JWTs from identity providers, over SQL (psql, as an application
would): every algorithm accepted, every attack of issue 18 refused with its
audit reason and counted in sdr_creds.auth_failures, set_issuer's checks,
several issuers with their org claim paths, key rotation in one session, and
the verified-token cache. Prints "ok - ..." / "not ok - ..." lines; never a
token or a key. Needs PGHOST/PGPORT/PGUSER and SDR_CLUSTER_DIR (test/run.sh).
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokens as T  # noqa: E402

DB = "sdr_issuers"
ORG = "00000000-0000-4000-8000-0000000018a1"
ORG2 = "00000000-0000-4000-8000-0000000018a2"
failures = 0


def check(name, cond):
    global failures
    print(("ok - " if cond else "not ok - ") + "issuers: " + name, flush=True)
    if not cond:
        failures += 1


def psql(sql, db=DB):
    r = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=0",
                        "-v", "VERBOSITY=sqlstate", "-d", db],
                       input=sql, capture_output=True, text=True, timeout=60)
    return r.stdout.strip(), r.stderr.strip()


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def set_issuer(issuer, jwks, audience=None, org_claim=None):
    args = [sql_str(issuer), sql_str(json.dumps(jwks)) + "::jsonb",
            sql_str(audience) if audience else "NULL"]
    if org_claim:
        args.append(sql_str(org_claim))
    return psql("SELECT sdr_creds.set_issuer(%s);" % ", ".join(args))


def authenticate(token):
    """(the org, or the error's SQLSTATE; the last auth failure's reason and count)."""
    out, err = psql("SELECT sdr_creds.usage_reset();\n"
                    "\\set tok %s\n"
                    "SELECT sdr_creds.authenticate(:'tok');\n"
                    "SELECT coalesce((SELECT last_reason || ' ' || failures FROM sdr_creds.auth_failures"
                    " WHERE key_prefix = 'jwt'), 'none');\n" % sql_str(token))
    lines = out.splitlines()
    result = err.split(":")[-1].strip() if "ERROR" in err else (lines[-2] if len(lines) > 1 else "?")
    return result, lines[-1] if lines else "?"


def accepted(name, token, org=ORG):
    result, reason = authenticate(token)
    check(name + " is accepted", result == org and reason == "none")


def refused(name, token, reason):
    result, got = authenticate(token)
    check("%s is refused (PT401, reason %s, counted)" % (name, reason),
          result == "PT401" and got == reason + " 1")


def claims(iss, org=ORG, **extra):
    c = {"iss": iss, "sub": "user-18", "org_id": org, "exp": T.now() + 600, "iat": T.now()}
    c.update(extra)
    return c


def main():
    subprocess.run(["dropdb", "--if-exists", DB], capture_output=True)
    subprocess.run(["createdb", DB], check=True)
    psql("CREATE EXTENSION sdr_creds CASCADE;")
    k = T.Keys()

    # ---- set_issuer's checks: public signature keys only, PT422, no key material in the message
    out, err = set_issuer("https://generic.example/", T.generic_jwks(k))
    check("set_issuer stores a JWKS of RSA, P-256, P-384 and Ed25519 keys",
          json.loads(out)["key_ids"] == ["rsa", "p256", "p384", "ed"] if out else False)
    bad_jwks = {
        "an RSA key under 2048 bits": {"keys": [T.jwk(k.rsa_small, kid="small")]},
        "a private RSA key (d, p, q ...)": {"keys": [dict(T.jwk(k.rsa, kid="priv"), d=T.b64(b"x" * 32),
                                                          p=T.b64(b"y"), q=T.b64(b"z"))]},
        "a private Ed25519 key (d)": {"keys": [dict(T.jwk(k.ed, kid="ed"), d=T.b64(b"d" * 32))]},
        "a symmetric key (kty oct)": {"keys": [{"kty": "oct", "k": T.b64(b"s" * 32), "kid": "hs"}]},
        "two keys with the same kid": {"keys": [T.jwk(k.rsa, kid="same"), T.jwk(k.p256, kid="same")]},
        "two keys, one without kid": {"keys": [T.jwk(k.rsa, kid="a"), T.jwk(k.p256)]},
        "an alg that does not fit the key (ES256 on RSA)": {"keys": [T.jwk(k.rsa, kid="a", alg="ES256")]},
        "an unsupported alg (HS256)": {"keys": [T.jwk(k.rsa, kid="a", alg="HS256")]},
        "an unsupported curve (secp256k1)": {"keys": [dict(T.jwk(k.p256, kid="a"), crv="secp256k1")]},
        "an EC point not on its curve": {"keys": [dict(T.jwk(k.p256, kid="a"), y=T.jwk(k.p256)["x"])]},
        "an EC coordinate longer than its curve's": {"keys": [dict(T.jwk(k.p256, kid="a"),
                                                                   x=T.b64(b"\x01" + b"x" * 32))]},
        "no keys": {"keys": []},
        "not a JWKS": {"kty": "RSA"},
    }
    for name, doc in bad_jwks.items():
        out, err = set_issuer("https://bad.example/", doc)
        secret_bits = [v for key in doc.get("keys", []) for m, v in key.items()
                       if m in ("n", "x", "y", "d", "p", "q", "k") and isinstance(v, str) and len(v) > 8]
        check("set_issuer refuses %s with PT422, naming no key material" % name,
              out == "" and "PT422" in err and not any(s in err for s in secret_bits))
    out, _ = psql("SELECT count(*) FROM sdr_creds.issuers WHERE issuer = 'https://bad.example/';")
    check("nothing refused was stored", out == "0")

    # ---- every algorithm accepted
    iss = "https://generic.example/"
    for name, tok in T.accepted_tokens(k, claims(iss)):
        accepted(name, tok)

    # ---- an EC key whose x starts with a zero byte, written short or full size
    key, short, full = T.short_x_key()
    for name, x in (("short, as PyJWT 2.6 writes it", short), ("full size", full)):
        out, err = set_issuer("https://short-x.example/", {"keys": [dict(x, kid="p256")]})
        check("set_issuer takes a P-256 key whose x starts with a zero byte, written %s" % name,
              out != "" and err == "")
        accepted("an ES256 token under that key (x written %s)" % name,
                 T.mint(key, "ES256", claims("https://short-x.example/"), kid="p256"))

    # ---- the providers' JWKS shapes and org claims, several issuers at once
    providers = [
        ("Auth0", "https://dev-example.us.auth0.com/", T.auth0_jwks(k), "https://api.example.com",
         "https://example.com/org_id", k.rsa, "RS256", "auth0-kid-1"),
        ("Cognito", "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example", T.cognito_jwks(k),
         None, "custom:org_id", k.rsa2, "RS256", "cognito-access-kid"),
        ("Keycloak", "https://sso.example.com/realms/example", T.keycloak_jwks(k), "sdr-creds",
         "org.id", k.rsa, "RS256", "kc-sig-kid"),
        ("Supabase", "https://abcdefgh.supabase.co/auth/v1", T.supabase_jwks(k), "authenticated",
         "app_metadata.org_id", k.p256, "ES256", "supabase-es256-kid"),
    ]
    for name, issuer, doc, aud, org_claim, key, alg, kid in providers:
        out, err = set_issuer(issuer, doc, aud, org_claim)
        check("set_issuer takes a %s-shaped JWKS" % name, out != "" and err == "")
    for name, issuer, doc, aud, org_claim, key, alg, kid in providers:
        c = claims(issuer, org=None)
        del c["org_id"]
        if "." in org_claim and not org_claim.startswith("https://"):
            outer, inner = org_claim.split(".", 1)
            c[outer] = {inner: ORG2, "roles": ["admin"]}
        else:
            c[org_claim] = ORG2
        if aud:
            c["aud"] = [aud, "https://other.example/"]
        accepted("a %s %s token with the org at %s" % (name, alg, org_claim), T.mint(key, alg, c, kid=kid), ORG2)
        if aud:
            c2 = dict(c, aud="https://someone-else.example/")
            refused("a %s token for another audience" % name, T.mint(key, alg, c2, kid=kid), "invalid_claims")
    # a claim name holding dots is tried whole first, then as a path
    out, _ = set_issuer("https://dots.example/", {"keys": [T.jwk(k.ed, kid="ed")]}, None, "a.b")
    c = claims("https://dots.example/", **{"a.b": ORG2, "a": {"b": ORG}})
    del c["org_id"]
    accepted("a token with the org claim's whole name (a.b) and also its path", T.mint(k.ed, "EdDSA", c, kid="ed"), ORG2)
    c = claims("https://dots.example/", a={"b": ORG})
    accepted("a token with the org claim only at its dotted path", T.mint(k.ed, "EdDSA", c, kid="ed"), ORG)
    c = claims("https://dots.example/", a={"b": "not-a-uuid"})
    refused("a token whose org claim is not a UUID", T.mint(k.ed, "EdDSA", c, kid="ed"), "invalid_claims")

    # ---- the attacks of issue 18 (the same tokens go over HTTP in test/http/test_http.py)
    good = claims(iss)
    attacks = T.attack_tokens(k, good)
    for name, tok, reason in attacks:
        refused(name, tok, reason)
    es = T.mint(k.p256, "ES256", good, kid="p256")
    accepted("the ES256 token the DER cases re-encode", es)
    big = dict((n, t) for n, t, _ in attacks)["a token over 8 KiB"]
    refused("PS256 under a key whose JWK says RS256",
            T.mint(k.rsa, "PS256", claims(providers[0][1], **{"https://example.com/org_id": ORG}), kid="auth0-kid-1"),
            "alg_mismatch")
    accepted("a token expired within the leeway", T.mint(k.p256, "ES256", claims(iss, exp=T.now() - 5), kid="p256"))

    # ---- the audit line names the reason, never the token
    log = os.path.join(os.environ.get("SDR_CLUSTER_DIR", ""), "postgres.log")
    try:
        text = open(log, errors="replace").read()
    except OSError:
        text = ""
    check("the audit log has the unknown_kid reason", "reason=unknown_kid" in text)
    check("no token of this test is in the server log", es.split(".")[2] not in text and big[:60] not in text)

    # ---- one session: a key in use removed by set_issuer is refused at once (cache emptied)
    one = {"keys": [T.jwk(k.p256, kid="old"), T.jwk(k.ed, kid="new")]}
    set_issuer("https://rotate.example/", one)
    tok_old = T.mint(k.p256, "ES256", claims("https://rotate.example/"), kid="old")
    tok_new = T.mint(k.ed, "EdDSA", claims("https://rotate.example/"), kid="new")
    out, err = psql("\\set old %s\n\\set new %s\n"
                    "SELECT sdr_creds.authenticate(:'old');\n"
                    "SELECT sdr_creds.authenticate(:'old');\n"
                    "SELECT sdr_creds.set_issuer('https://rotate.example/', %s::jsonb) IS NOT NULL;\n"
                    "SELECT sdr_creds.authenticate(:'new');\n"
                    "SELECT sdr_creds.authenticate(:'old');\n"
                    % (sql_str(tok_old), sql_str(tok_new), sql_str(json.dumps({"keys": [T.jwk(k.ed, kid="new")]}))))
    check("rotation: in one session, a cached token of a removed kid is refused at once",
          out.splitlines() == [ORG, ORG, "t", ORG] and err.endswith("PT401"))
    out, err = psql("\\set new %s\nSELECT sdr_creds.authenticate(:'new');\n"
                    "SELECT sdr_creds.delete_issuer('https://rotate.example/');\n"
                    "SELECT sdr_creds.authenticate(:'new');\n" % sql_str(tok_new))
    check("delete_issuer: the issuer's tokens are refused at once", out.splitlines() == [ORG, "t"] and err.endswith("PT401"))

    # ---- privileges: nothing for PUBLIC; a role granted set_issuer can use it
    out, err = psql("DO $$ BEGIN CREATE ROLE sdr_issuer_admin LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;\n"
                    "DO $$ BEGIN CREATE ROLE sdr_issuer_nobody LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;\n"
                    "GRANT USAGE ON SCHEMA sdr_creds TO sdr_issuer_admin, sdr_issuer_nobody;\n"
                    "GRANT EXECUTE ON FUNCTION sdr_creds.set_issuer(text, jsonb, text, text),"
                    " sdr_creds.list_issuers(), sdr_creds.delete_issuer(text) TO sdr_issuer_admin;\n"
                    "SET ROLE sdr_issuer_admin;\n"
                    "SELECT sdr_creds.set_issuer('https://granted.example/', %s::jsonb) ->> 'issuer';\n"
                    "SELECT count(*) FROM sdr_creds.list_issuers() WHERE issuer = 'https://granted.example/';\n"
                    "SELECT sdr_creds.delete_issuer('https://granted.example/');\n"
                    "RESET ROLE;\nSET ROLE sdr_issuer_nobody;\n"
                    "SELECT sdr_creds.set_issuer('https://nobody.example/', %s::jsonb);\n"
                    % (sql_str(json.dumps({"keys": [T.jwk(k.ed)]})), sql_str(json.dumps({"keys": [T.jwk(k.ed)]}))))
    check("a role granted the issuer functions manages issuers", out.splitlines() == ["https://granted.example/", "1", "t"])
    check("a role without the grant cannot call set_issuer", "42501" in err)

    subprocess.run(["dropdb", DB], capture_output=True)
    return failures


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
