"""Tokens and JWKS documents for the JWT tests, made by a real JOSE
implementation (python3-jwt, with python3-cryptography for the keys), never
by this project's code. Shared by test/security/issuers.py and the HTTP tests.

Every key is generated at import, so no key or token is ever committed; the
tests print none of them.
"""
import base64
import datetime
import hashlib
import hmac
import json
import time

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from jwt.algorithms import get_default_algorithms

ALGS = get_default_algorithms()


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Keys:
    """One private key per kind, and its public JWK."""

    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa_small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        self.p256 = ec.generate_private_key(ec.SECP256R1())
        self.p384 = ec.generate_private_key(ec.SECP384R1())
        self.ed = ed25519.Ed25519PrivateKey.generate()


def jwk(private_key, **extra):
    """The public JWK of a private key, as PyJWT writes it, with extra members."""
    pub = private_key.public_key()
    if isinstance(private_key, rsa.RSAPrivateKey):
        d = json.loads(ALGS["RS256"].to_jwk(pub))
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        d = json.loads(ALGS["ES256"].to_jwk(pub))
    else:
        d = json.loads(ALGS["EdDSA"].to_jwk(pub))
    d.pop("key_ops", None)
    d.update(extra)
    return d


def short_x_key():
    """A P-256 key whose x has a leading zero byte (one key in 256), and its
    JWK twice: x written short, as PyJWT before 2.8 writes it (and as
    jwk() above does here), and x written full size, as RFC 7518 asks."""
    while True:
        key = ec.generate_private_key(ec.SECP256R1())
        x = key.public_key().public_numbers().x
        if x < 1 << 248:
            short = jwk(key)
            full = dict(short, x=b64(x.to_bytes(32, "big")))
            return key, short, full


def self_signed_cert(private_key, name):
    """A throwaway certificate of an RSA key, base64 DER as in x5c."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(private_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(private_key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    return base64.b64encode(der).decode(), b64(hashlib.sha1(der).digest()), b64(hashlib.sha256(der).digest())


def auth0_jwks(k, kid="auth0-kid-1"):
    """Auth0's /.well-known/jwks.json: RS256 keys with x5c and x5t (the current
    and the next), here with an ES256 key beside them."""
    x5c, x5t, _ = self_signed_cert(k.rsa, "dev-example.us.auth0.com")
    return {"keys": [jwk(k.rsa, alg="RS256", use="sig", kid=kid, x5c=[x5c], x5t=x5t),
                     jwk(k.rsa2, alg="RS256", use="sig", kid=kid + "-next"),
                     jwk(k.p256, alg="ES256", use="sig", kid="auth0-es256-kid")]}


def cognito_jwks(k):
    """Cognito's /.well-known/jwks.json: two RS256 keys (id and access tokens)."""
    return {"keys": [jwk(k.rsa, alg="RS256", kid="cognito-id-kid", use="sig"),
                     jwk(k.rsa2, alg="RS256", kid="cognito-access-kid", use="sig")]}


def keycloak_jwks(k):
    """Keycloak's .../protocol/openid-connect/certs: a signing key and an encryption key."""
    x5c, x5t, x5t256 = self_signed_cert(k.rsa, "example-realm")
    x5c2, _, _ = self_signed_cert(k.rsa2, "example-realm")
    return {"keys": [jwk(k.rsa, kid="kc-sig-kid", alg="RS256", use="sig", x5c=[x5c], x5t=x5t,
                         **{"x5t#S256": x5t256}),
                     jwk(k.rsa2, kid="kc-enc-kid", alg="RSA-OAEP", use="enc", x5c=[x5c2])]}


def supabase_jwks(k):
    """Supabase's asymmetric signing keys: ES256."""
    return {"keys": [jwk(k.p256, alg="ES256", kid="supabase-es256-kid", use="sig", ext=True,
                         key_ops=["verify"])]}


def mint(private_key, alg, claims, kid=None, headers=None):
    """A token signed by PyJWT."""
    h = dict(headers or {})
    if kid is not None:
        h["kid"] = kid
    return jwt.encode(claims, private_key, algorithm=alg, headers=h)


def sign_raw(private_key, alg, header_json, payload_json):
    """A token from given header and payload texts (duplicates, trailing data ...),
    signed by PyJWT's algorithm objects."""
    signing_input = b64(header_json) + "." + b64(payload_json)
    a = ALGS[alg]
    sig = a.sign(signing_input.encode(), a.prepare_key(private_key))
    return signing_input + "." + b64(sig)


def hs256_with(secret, header, claims):
    """HS256 by hand (PyJWT refuses a PEM public key as an HMAC secret, which is the attack)."""
    signing_input = b64(json.dumps(header)) + "." + b64(json.dumps(claims))
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(mac)


def der_signature(token, coord):
    """The same ES token with its R||S signature re-encoded as DER."""
    head, payload, sig = token.split(".")
    raw = b64d(sig)
    r = int.from_bytes(raw[:coord], "big")
    s = int.from_bytes(raw[coord:], "big")
    return head + "." + payload + "." + b64(encode_dss_signature(r, s))


def public_pem(private_key):
    return private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


def now():
    return int(time.time())




# ---- the tokens both the SQL and the HTTP tests send -----------------------

ALGORITHMS = [("RS256", "rsa"), ("RS384", "rsa"), ("RS512", "rsa"), ("PS256", "rsa"),
              ("ES256", "p256"), ("ES384", "p384"), ("EdDSA", "ed")]


def generic_jwks(k):
    """A JWKS of one key of each kind, none naming its alg (the RSA key serves RS* and PS256)."""
    return {"keys": [jwk(k.rsa, kid="rsa"), jwk(k.p256, kid="p256"), jwk(k.p384, kid="p384"),
                     jwk(k.ed, kid="ed")]}


def _key(k, kid):
    return {"rsa": k.rsa, "p256": k.p256, "p384": k.p384, "ed": k.ed}[kid]


def accepted_tokens(k, claims):
    """(name, token): one token of each algorithm under generic_jwks's keys."""
    return [("a %s token" % alg, mint(_key(k, kid), alg, claims, kid=kid)) for alg, kid in ALGORITHMS]


def attack_tokens(k, claims):
    """(name, token, audit reason): the attacks of issue 18 against an issuer holding
    generic_jwks, each a token that must be refused; claims are a valid token's
    (iss that issuer, org_id an org, exp ahead)."""
    body = json.dumps(claims)
    hdr = json.dumps({"alg": "ES256", "kid": "p256", "typ": "JWT"})
    es = mint(k.p256, "ES256", claims, kid="p256")
    h, p, s = es.split(".")
    no_org = {c: v for c, v in claims.items() if c != "org_id"}
    later = {"jku": "https://attacker.example/jwks", "x5u": "https://attacker.example/cert",
             "jwk": jwk(k.p256), "x5c": ["MIIB"]}
    attacks = [
        ("alg none", b64('{"alg":"none","kid":"p256"}') + "." + b64(body) + ".", "invalid_jwt"),
        ("alg none with a signature",
         b64('{"alg":"none","kid":"p256"}') + "." + b64(body) + "." + b64(b"x" * 64), "invalid_jwt"),
        ("HS256 keyed with the issuer's public key (algorithm confusion)",
         hs256_with(public_pem(k.rsa), {"alg": "HS256", "kid": "rsa"}, claims), "invalid_jwt"),
        ("ES256 header with an RSA key's kid",
         sign_raw(k.p256, "ES256", json.dumps({"alg": "ES256", "kid": "rsa"}), body), "alg_mismatch"),
        ("an RS256 token naming an Ed25519 key",
         mint(k.rsa, "RS256", claims, kid="ed"), "alg_mismatch"),
    ]
    attacks += [("a %s header" % name, mint(k.p256, "ES256", claims, kid="p256", headers={name: v}),
                 "invalid_jwt") for name, v in later.items()]
    attacks += [
        ("a crit header", mint(k.p256, "ES256", claims, kid="p256", headers={"crit": ["exp"]}), "invalid_jwt"),
        ("an ES256 signature in DER", der_signature(es, 32), "bad_signature"),
        ("an ES384 signature in DER", der_signature(mint(k.p384, "ES384", claims, kid="p384"), 48), "bad_signature"),
        ("a signature by another key", mint(k.rsa2, "RS256", claims, kid="rsa"), "bad_signature"),
        ("a changed payload", h + "." + b64(json.dumps(dict(claims, sub="someone-else"))) + "." + s, "bad_signature"),
        ("bad base64url (standard alphabet)",
         h + "." + p + "." + s.replace("-", "+").replace("_", "/") + "+/", "invalid_jwt"),
        ("bad base64url (padding)", h + "=." + p + "." + s, "invalid_jwt"),
        ("a duplicate kid in the header",
         sign_raw(k.p256, "ES256", '{"alg":"ES256","kid":"p256","kid":"rsa"}', body), "invalid_jwt"),
        ("a duplicate alg in the header",
         sign_raw(k.p256, "ES256", '{"alg":"ES256","alg":"HS256","kid":"p256"}', body), "invalid_jwt"),
        ("a duplicate org claim",
         sign_raw(k.p256, "ES256", hdr, body[:-1] + ', "org_id": "%s"}' % claims["org_id"]), "invalid_jwt"),
        ("a duplicate iss claim",
         sign_raw(k.p256, "ES256", hdr, body[:-1] + ', "iss": "https://other.example/"}'), "invalid_jwt"),
        ("trailing data after the payload's JSON", sign_raw(k.p256, "ES256", hdr, body + " {}"), "invalid_jwt"),
        ("trailing data after the header's JSON", sign_raw(k.p256, "ES256", hdr + "x", body), "invalid_jwt"),
        ("a fourth segment", es + ".e30", "invalid_jwt"),
        ("a token over 8 KiB", mint(k.p256, "ES256", dict(claims, pad="p" * 8200), kid="p256"), "invalid_jwt"),
        ("an unknown kid", mint(k.p256, "ES256", claims, kid="no-such-kid"), "unknown_kid"),
        ("no kid with a JWKS of several keys", mint(k.p256, "ES256", claims), "unknown_kid"),
        ("an unknown issuer",
         mint(k.p256, "ES256", dict(claims, iss="https://unknown.example/"), kid="p256"), "unknown_issuer"),
        ("an expired token (past the 30 s leeway)",
         mint(k.p256, "ES256", dict(claims, exp=now() - 60), kid="p256"), "invalid_claims"),
        ("a token not yet valid (nbf)",
         mint(k.p256, "ES256", dict(claims, nbf=now() + 120), kid="p256"), "invalid_claims"),
        ("a token without its org claim", mint(k.p256, "ES256", no_org, kid="p256"), "invalid_claims"),
    ]
    return attacks
