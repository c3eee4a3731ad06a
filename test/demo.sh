#!/usr/bin/env bash
# make demo: a throwaway cluster with the extension, demo data and the HTTP
# server on 127.0.0.1:8080. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
work=$(mktemp -d /tmp/sdr_creds_demo.XXXXXX)
chmod 755 "$work"
port=${SDR_DEMO_PG_PORT:-54339}
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
http_port=${SDR_DEMO_HTTP_PORT:-8080}
server_pid=
refresher_pid=
mock_pid=

cleanup() {
  trap - EXIT INT TERM
  [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  # (the mock exits 143 on SIGTERM: not a failure of the clean-up)
  [ -n "$refresher_pid" ] && kill -TERM "$refresher_pid" 2>/dev/null && { wait "$refresher_pid" 2>/dev/null || true; }
  [ -n "$mock_pid" ] && kill -TERM "$mock_pid" 2>/dev/null && { wait "$mock_pid" 2>/dev/null || true; }
  test/cluster.sh stop "$work/cluster"
  rm -rf "$work"
  echo "demo stopped; cluster removed"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

echo "== Starting a throwaway PostgreSQL cluster in $work/cluster (port $port)"
eval "$(test/cluster.sh start "$work/cluster" "$port")"
createdb sdr_demo
# No pager: the demo must run through on any terminal size without a keypress.
psql -X -P pager=off -d sdr_demo -v keyfile="$work/api_key" -f test/demo.sql
api_key=$(cat "$work/api_key")

# Token refresh: a local OAuth provider (test/refresher/mock_oauth.py, which
# rotates refresh tokens) and sdr_creds_refresher, refreshing a token that
# expires in two minutes.
refresh_demo() {
  python3 -B test/refresher/mock_oauth.py "$work/mock.port" demo-client-secret 2>/dev/null &
  mock_pid=$!
  for _ in $(seq 50); do [ -s "$work/mock.port" ] && break; sleep 0.1; done
  echo; echo "== Token refresh: an OAuth client for hubspot (a local mock provider), a token expiring in 2 minutes"
  psql -X -q -At -P pager=off -d sdr_demo -v url="http://127.0.0.1:$(cat "$work/mock.port")/token" \
       -v key="$api_key" -f test/demo_refresh.sql
  src/refresher/sdr_creds_refresher --db "host=$PGHOST port=$PGPORT dbname=sdr_demo user=sdr_demo_refresher" \
    --allow-http-loopback --interval 5 2>"$work/refresher.log" &
  refresher_pid=$!
  for _ in $(seq 100); do grep -q 'outcome=' "$work/refresher.log" && break; sleep 0.1; done
  echo "== The refresher's log (one line per refresh, no token):"
  sed 's/^/  /' "$work/refresher.log"
  echo "== After the refresh (new access and refresh tokens from the provider, expires_at an hour on):"
  psql -X -q -At -P pager=off -d sdr_demo -v key="$api_key" <<'SQL'
SET ROLE sdr_demo_app;
BEGIN;
SELECT FROM sdr_creds.authenticate(:'key');
SELECT '  access_token=' || (j ->> 'access_token') || E'\n  refresh_token=' || (j -> 'metadata' ->> 'refresh_token')
       || E'\n  expires_at=' || (j -> 'metadata' ->> 'expires_at') FROM sdr_creds.get_by_provider('hubspot') j;
COMMIT;
SQL
}
[ -x src/refresher/sdr_creds_refresher ] && refresh_demo

server=src/server/sdr_creds_server
if [ ! -x "$server" ]; then
  echo "(the HTTP server is not built; the SQL demo is done)"
  exit 0
fi
"$server" --listen 127.0.0.1 --port "$http_port" \
  --db "host=$PGHOST port=$PGPORT dbname=sdr_demo user=sdr_demo_app" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null && break; sleep 0.1; done

base="http://127.0.0.1:$http_port"
cat <<MSG

== The HTTP server is on $base (log: $work/server.log)
Demo org: 123e4567-e89b-12d3-a456-426614174000
Demo API key (made for this throwaway cluster): $api_key

Paste these:
  export SDR_KEY='$api_key'
  curl -s $base/integration-credentials/provider/salesforce -H "X-API-Key: \$SDR_KEY"
  curl -s $base/integration-credentials/ -H "X-API-Key: \$SDR_KEY"
  curl -s '$base/integration-credentials?limit=1&offset=1' -H "X-API-Key: \$SDR_KEY"
  curl -s -X POST $base/integration-credentials/ -H "X-API-Key: \$SDR_KEY" -H 'Content-Type: application/json' \\
       -d '{"provider": "pipedrive", "dsn": "https://demo.pipedrive.com", "access_token": "demo-pd-token", "metadata": {"company_id": 7}}'
  ID=\$(curl -s $base/integration-credentials/provider/pipedrive -H "X-API-Key: \$SDR_KEY" | sed 's/.*"id": "\([^"]*\)".*/\1/')
  curl -s $base/integration-credentials/\$ID -H "X-API-Key: \$SDR_KEY"
  curl -s -X DELETE $base/integration-credentials/\$ID -H "X-API-Key: \$SDR_KEY"
  curl -si $base/integration-credentials/provider/salesforce          # 401
  curl -s $base/integration-credentials/not-a-uuid -H "X-API-Key: \$SDR_KEY"   # 422
  curl -s $base/healthz; curl -s $base/readyz
  curl -s $base/metrics | grep '^sdr_creds_http_requests_total'   # Prometheus
  curl -s $base/openapi.json > openapi.json   # the API described (OpenAPI 3.1)
The refresher runs beside it (log: $work/refresher.log); to ask for a refresh now:
  psql -h $PGHOST -p $PGPORT -d sdr_demo -U sdr_demo_app -c "BEGIN; SELECT FROM sdr_creds.authenticate('\$SDR_KEY');
    SELECT sdr_creds.request_refresh(id) FROM sdr_creds.credentials WHERE provider = 'hubspot'; COMMIT;"
MSG
echo "== First request, from here:"
curl -s "$base/integration-credentials/provider/salesforce" -H "X-API-Key: $api_key"; echo
if [ -t 0 ]; then
  echo; echo "Press Ctrl-C to stop the server and remove the cluster."
  wait "$server_pid"
fi
