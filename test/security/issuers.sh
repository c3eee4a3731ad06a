#!/usr/bin/env bash
# Bearer JWTs from identity providers over SQL: test/jwt/test_issuers.py (tokens
# minted by python3-jwt; needs /usr/bin/python3 with python3-jwt and
# python3-cryptography, installed by test/deps.sh).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if ! /usr/bin/python3 -c "import jwt, cryptography" 2>/dev/null; then
  echo "not ok - issuers: python3-jwt and python3-cryptography are missing (make deps)"; exit 1
fi
timeout --kill-after=10 300 /usr/bin/python3 -B "$here/jwt/test_issuers.py"
