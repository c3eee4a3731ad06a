#!/usr/bin/env bash
# Installs the OpenAPI tests' npm packages (package-lock.json: a validator,
# openapi-typescript, openapi-fetch, typescript) into test/openapi/node_modules,
# only when they are missing or older than the lock file.
set -euo pipefail
cd "$(dirname "$0")"
for tool in node npm; do
  command -v $tool >/dev/null || { echo "openapi deps: $tool is not installed" >&2; exit 1; }
done
if [ -f node_modules/.package-lock.json ] && [ ! package-lock.json -nt node_modules/.package-lock.json ]; then
  exit 0
fi
echo "# openapi deps: npm ci" >&2
npm ci --no-audit --no-fund --loglevel=error >&2
