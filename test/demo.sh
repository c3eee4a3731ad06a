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

cleanup() {
  trap - EXIT INT TERM
  [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
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
MSG
echo "== First request, from here:"
curl -s "$base/integration-credentials/provider/salesforce" -H "X-API-Key: $api_key"; echo
if [ -t 0 ]; then
  echo; echo "Press Ctrl-C to stop the server and remove the cluster."
  wait "$server_pid"
fi
