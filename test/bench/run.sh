#!/usr/bin/env bash
# make bench: the performance targets, measured as ratios in one run, on a throwaway cluster.
#   1. in-database get_by_provider (API-key auth + decryption), pgbench -M prepared -c 8,
#      against a plaintext point select of the same row as JSON;
#   2. HTTP get by provider with wrk -c 32, against (1), with its p99 latency;
#   3. the HTTP server's RSS after 60 s of load, and whether it grew;
#   4. scale: get_by_provider with 1M credentials over 100k orgs against 10k over
#      1k orgs (BENCH_SCALE=0 skips it; loading takes a few minutes).
# Every load is bounded in time. BENCH_SECONDS (default 10) sets each run,
# BENCH_ROUNDS (default 3) the interleaved pgbench rounds.
set -uo pipefail
cd "$(dirname "$0")/../.."
secs=${BENCH_SECONDS:-10}
work=$(mktemp -d /tmp/sdr_creds_bench.XXXXXX); chmod 755 "$work"
port=54349
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; test/cluster.sh stop "$work/cluster"; rm -rf "$work"; }
trap cleanup EXIT
eval "$(test/cluster.sh start "$work/cluster" "$port")"
# as a DBA would run it: the library preloaded, and shared_buffers sized to hold
# the 1M-credential working set (the default 128 MB does not)
psql -Xq -c "ALTER SYSTEM SET shared_preload_libraries = 'sdr_creds'" -c "ALTER SYSTEM SET shared_buffers = '1GB'" >/dev/null
test/cluster.sh restart "$work/cluster"
createdb bench
org=123e4567-e89b-12d3-a456-426614174000
psql -Xq -d bench -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE EXTENSION sdr_creds CASCADE;
CREATE ROLE bench_app LOGIN;
GRANT USAGE ON SCHEMA sdr_creds TO bench_app;
GRANT EXECUTE ON FUNCTION sdr_creds.authenticate(text), sdr_creds.authenticate_headers(text, text),
  sdr_creds.get_by_provider(text), sdr_creds.get(uuid), sdr_creds.list(integer, integer),
  sdr_creds.store_json(text), sdr_creds.delete(uuid) TO bench_app;
BEGIN;
SELECT sdr_creds.act_as('$org');
SELECT sdr_creds.store('salesforce', 'https://bench.my.salesforce.com', '00D5g000001234567!AQYAQ.made-up-bench-token',
  '{"instance_url": "https://bench.my.salesforce.com", "api_version": "v58.0", "refresh_token": "5Aep861.made-up", "token_type": "Bearer"}');
SELECT sdr_creds.store('hubspot', NULL, 'made-up-hubspot', '{}');
COMMIT;
CREATE TABLE bench_plain (id uuid PRIMARY KEY, org_id uuid, provider text, dsn text, access_token text,
  metadata jsonb, created_at timestamptz, updated_at timestamptz, UNIQUE (org_id, provider));
INSERT INTO bench_plain VALUES (gen_random_uuid(), '$org', 'salesforce', 'https://bench.my.salesforce.com',
  '00D5g000001234567!AQYAQ.made-up-bench-token', '{"instance_url": "https://bench.my.salesforce.com", "api_version": "v58.0",
  "refresh_token": "5Aep861.made-up", "token_type": "Bearer"}', now(), now());
GRANT SELECT ON bench_plain TO bench_app;
SQL
key=$(psql -XAtq -d bench -c "SELECT sdr_creds.create_api_key('$org', 'bench') ->> 'key'")

# Interleaved rounds, median of each: the machine's noise hits both alike.
rounds=${BENCH_ROUNDS:-3}
run_pgbench() {  # NAME[_audited]: test/bench/NAME.pgbench, results in $work/NAME[_audited].tps
  pgbench -n -M prepared -c 8 -j 2 -T "$secs" -U bench_app -D key="$key" -f "test/bench/${1%_audited}.pgbench" bench 2>&1 |
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p' >> "$work/$1.tps"
}
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for _ in $(seq "$rounds"); do run_pgbench plain_select; run_pgbench get_by_provider; done
plain=$(median "$work/plain_select.tps"); creds=$(median "$work/get_by_provider.tps")
ratio=$(awk -v a="$creds" -v b="$plain" 'BEGIN { printf "%.2f", a / b }')
echo "in-database (median of $rounds interleaved ${secs} s rounds): get_by_provider with API-key auth + decryption ${creds} tps; plaintext JSON point select ${plain} tps"
echo "  ratio ${ratio} (target >= 0.85)"

# The same with every call audited (sdr_creds.audit = all: one log line per call)
# and the usage statistics on, against the plaintext figure above.
psql -Xq -c "ALTER SYSTEM SET sdr_creds.audit = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
until [ "$(psql -XAtq -d bench -c "SHOW sdr_creds.audit")" = all ]; do sleep 0.05; done
for _ in $(seq "$rounds"); do run_pgbench get_by_provider_audited; done
audited=$(median "$work/get_by_provider_audited.tps")
aratio=$(awk -v a="$audited" -v b="$plain" 'BEGIN { printf "%.2f", a / b }')
echo "in-database with sdr_creds.audit = all: ${audited} tps, ratio ${aratio} (target >= 0.85)"
psql -Xq -c "ALTER SYSTEM RESET sdr_creds.audit" -c "SELECT pg_reload_conf()" >/dev/null

server=src/server/sdr_creds_server
if [ -x "$server" ] && command -v wrk >/dev/null; then
  http_port=18080
  "$server" --listen 127.0.0.1 --port $http_port --log-level error \
    --db "host=$PGHOST port=$PGPORT dbname=bench user=bench_app" 2>"$work/server.log" &
  server_pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null && break; sleep 0.1; done
  url="http://127.0.0.1:$http_port/integration-credentials/provider/salesforce"
  wrk -t 2 -c 32 -d "${secs}s" --latency -H "X-API-Key: $key" "$url" > "$work/wrk.out" 2>&1
  rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' "$work/wrk.out")
  p99=$(awk '$1 == "99%" { print $2 }' "$work/wrk.out")
  non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\)/\1/p' "$work/wrk.out")
  hratio=$(awk -v a="$rps" -v b="$creds" 'BEGIN { printf "%.2f", a / b }')
  echo "HTTP: get by provider ${rps} req/s, p99 ${p99} (wrk -c 32), non-2xx ${non2xx:-0}"
  echo "  ratio to in-database ${hratio} (target >= 0.6; p99 target <= 5 ms)"
  rss() { awk '/VmRSS/ { print $2 }' "/proc/$server_pid/status"; }
  wrk -t 2 -c 32 -d 30s -H "X-API-Key: $key" "$url" >/dev/null 2>&1
  r30=$(rss)
  wrk -t 2 -c 32 -d 30s -H "X-API-Key: $key" "$url" >/dev/null 2>&1
  r60=$(rss)
  echo "server RSS: ${r30} kB after 30 s of load, ${r60} kB after 60 s (target <= 32768 kB, not growing)"
fi

if [ "${BENCH_SCALE:-1}" != 0 ]; then
  createdb scale
  psql -Xq -d scale -c "CREATE EXTENSION sdr_creds CASCADE" >/dev/null 2>&1
  # orgs [from, to), 10 providers each, in one transaction per 10k orgs
  load() {
    for ((lo = $1; lo < $2; lo += 10000)); do
      hi=$((lo + 10000 < $2 ? lo + 10000 : $2))
      psql -Xq -d scale -v ON_ERROR_STOP=1 >/dev/null <<SQL
DO \$\$
BEGIN
  FOR i IN $lo..$((hi - 1)) LOOP
    PERFORM sdr_creds.act_as(('00000000-0000-4000-8000-' || lpad(to_hex(i + 1), 12, '0'))::uuid);
    FOR p IN 1..10 LOOP
      PERFORM sdr_creds.store('crm' || p, NULL, 'made-up-token-' || i || '-' || p, '{"refresh_token": "made-up", "portal_id": 1}');
    END LOOP;
  END LOOP;
END
\$\$;
SQL
    done
    # measure lookups, not the load's aftermath: hint bits set, dirty pages flushed
    psql -Xq -d scale -c "VACUUM ANALYZE sdr_creds.credentials" -c "CHECKPOINT" >/dev/null
  }
  scale_tps() {
    pgbench -n -M prepared -c 8 -j 2 -T "$secs" -D norgs="$1" -f test/bench/scale_get.pgbench scale 2>&1 |
      sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
  }
  t0=$(date +%s); load 0 1000; small=$(scale_tps 1000)
  load 1000 100000; t1=$(date +%s); large=$(scale_tps 100000)
  rows=$(psql -XAtq -d scale -c "SELECT count(*) FROM sdr_creds.credentials")
  sratio=$(awk -v a="$small" -v b="$large" 'BEGIN { printf "%.2f", a / b }')
  echo "scale: get_by_provider ${small} tps at 10k credentials (1k orgs), ${large} tps at ${rows} (100k orgs); loaded in $((t1 - t0)) s"
  echo "  time per lookup at 1M / at 10k: ${sratio} (target <= 1.2)"
fi
