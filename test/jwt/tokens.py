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


