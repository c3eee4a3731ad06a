#!/usr/bin/python3
"""make bench's Bearer tokens, minted by python3-jwt from throwaway keys:
    bearer_tokens.py ORG N OUTDIR
writes OUTDIR/jwks.json (an Auth0-shaped JWKS: an RS256 and an ES256 key),
OUTDIR/es256 and OUTDIR/rs256 (one token each, reused by every call) and
OUTDIR/tokens.tsv (N ES256 then N RS256 tokens, "id<TAB>token", for COPY).
The files are the caller's (mode 600); nothing is printed."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "jwt"))
import tokens as T  # noqa: E402

ISSUER = "https://bench.example.auth0.com/"


def main():
    org, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.umask(0o077)
    k = T.Keys()
    jwks = {"keys": [T.jwk(k.rsa, alg="RS256", use="sig", kid="bench-rs"),
                     T.jwk(k.p256, alg="ES256", use="sig", kid="bench-es")]}
    exp = T.now() + 86400
    with open(os.path.join(out, "jwks.json"), "w") as f:
        json.dump(jwks, f)

    def mint(alg, i):
        key, kid = (k.p256, "bench-es") if alg == "ES256" else (k.rsa, "bench-rs")
        return T.mint(key, alg, {"iss": ISSUER, "sub": "bench-%d" % i, "org_id": org, "exp": exp}, kid=kid)

    for alg in ("ES256", "RS256"):
        with open(os.path.join(out, alg.lower()), "w") as f:
            f.write(mint(alg, 0))
    with open(os.path.join(out, "tokens.tsv"), "w") as f:
        for j, alg in enumerate(("ES256", "RS256")):
            for i in range(1, n + 1):
                f.write("%d\t%s\n" % (j * n + i, mint(alg, i)))


if __name__ == "__main__":
    main()
