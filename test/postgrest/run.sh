#!/usr/bin/env bash
# PostgREST replay: the statements PostgREST v12 sends for /rpc/ calls (its
# transaction, set_config calls, db-pre-request, query wrapper, commit or
# abort), as prepared statements on one pooled libpq connection logged in as
# an authenticator role (test_postgrest.py cites the sources). Called by
# test/run.sh with PGHOST, PGPORT and SDR_CLUSTER_DIR exported. Prints one
# "ok - ..." / "not ok - ..." line per test; exits non-zero on failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../suite.sh" postgrest "$here/test_postgrest.py" 120 PGHOST PGPORT SDR_CLUSTER_DIR
