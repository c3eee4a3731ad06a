#!/usr/bin/env bash
# make bench: the performance targets, measured as ratios in one run, on a throwaway cluster.
#   1. in-database get_by_provider (API-key auth + decryption), pgbench -M prepared -c 8,
#      against a plaintext point select of the same row as JSON; the same with every
#      call audited; the same authenticated by an identity provider's JWT (ES256 and
#      RS256, one token reused, against the API-key figure; and a random one of
#      BENCH_TOKENS, default 20,000, per call);
#   2. the realistic load: 10,000 orgs x 3 providers, a random org's API key on every
#      call, in the database (pgbench) and over HTTP (wrk with random_key.lua);
#   3. HTTP get by provider with wrk -c 32, one key and random keys, each against its
#      in-database figure, with p50 and p99; and one key on a second server with
#      --no-prepare (statements sent with their text, for PgBouncer's transaction
#      mode) against the first; the same rounds interleave all of them;
#   4. connections: 256 and 2,000 kept-alive connections (errors, non-2xx, p99), the
#      server's RSS at 32, 256 and 2,000 connections and over 60 s at 2,000, and the
#      database connections it holds (bounded by --pool);
#   5. reads from a hot standby: a pg_basebackup -R standby and a server with
#      --db-read, against the primary alone;
#   6. churn: the random-key runs (in the database and over HTTP) again while
#      another client creates and revokes 20 API keys a second (of an org no reader
#      uses), in the same rounds: read throughput with churn against without; and
#      the same in the database over the first 2,000 keys (a working set each
#      backend's key cache holds, so a change that emptied it would cost re-reads);
#   7. CPU per request over the random-key HTTP runs: the HTTP server's and all the
#      cluster's PostgreSQL processes' utime + stime (/proc/PID/stat) divided by
#      the requests wrk counted; the server's split between its HTTP workers and its
#      database threads (/proc/PID/task/*/stat by thread name), and the server's CPU
#      per GET /healthz in the same rounds (libmicrohttpd alone: no database);
#   8. scale (test/bench/scale.sh): get_by_provider with 1M credentials over 100k
#      orgs and 100k API keys (BENCH_SCALE=1M, the default; a minute or two of
#      loading) or 10M credentials over 1M orgs and 1M API keys (BENCH_SCALE=10M;
#      12 to 25 min on 2 cores, 25 GB free disk) against 10k over 1k orgs, and a
#      plaintext copy of the same rows point-selected likewise (the control);
#      authenticate() among 1k, 6k and all the keys against among 1k of 1k (the
#      per-backend key cache); the load time, table and index sizes, the key
#      cache's memory, and the largest backend RSS. BENCH_SCALE=0 skips it,
#      BENCH_SCALE_JOBS (default: the CPUs) sets the loading clients, and
#      BENCH_ONLY=scale runs this step alone.
# Every load is bounded in time. BENCH_SECONDS (default 10) sets each run,
# BENCH_ROUNDS (default 3) the interleaved rounds, BENCH_PORT and BENCH_HTTP_PORT
# the first ports tried for the cluster and the server.
#
# Besides the report on stdout, the figures go to BENCH_OUT/figures.tsv (one
# "name<TAB>value" line each; BENCH_OUT defaults to bench-results/ in the
# checkout, which git ignores) and test/bench/chart.sh draws them as
# BENCH_OUT/bench.png: throughput, and latency percentiles by connections.
set -uo pipefail
cd "$(dirname "$0")/../.."
secs=${BENCH_SECONDS:-10}
out=${BENCH_OUT:-bench-results}
mkdir -p "$out" || exit 1
figures="$out/figures.tsv"
# fig NAME VALUE: one figure for the file (an empty value, a figure the run did not get, is left out)
fig() { [ -n "$2" ] && printf '%s\t%s\n' "$1" "$2" >> "$figures"; return 0; }
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
sum() { awk '{ t += $1 } END { print t + 0 }' "$1"; }
{ printf '# sdr_creds make bench figures: name<TAB>value; tps and req/s, latencies in ms, memory in kB\n'
  printf 'date\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf 'commit\t%s\n' "$(git describe --always --dirty 2>/dev/null || echo unknown)"
  printf 'cpus\t%s\nseconds\t%s\nrounds\t%s\n' "$(nproc)" "$secs" "${BENCH_ROUNDS:-3}"
} > "$figures"
work=$(mktemp -d /tmp/sdr_creds_bench.XXXXXX); chmod 755 "$work"
port=${BENCH_PORT:-54349}
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
server_pid=; noprep_pid=
server2_pid=; standby_up=
as_owner() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
cleanup() {
  for pid in $server_pid $noprep_pid $server2_pid; do kill "$pid" 2>/dev/null; done
  [ -n "$standby_up" ] && as_owner "${SDR_PG_ROOT:-}$(pg_config --bindir)/pg_ctl" -D "$work/standby" -m immediate -w stop >/dev/null 2>&1
  test/cluster.sh stop "$work/cluster"; rm -rf "$work"
}
trap cleanup EXIT
eval "$(test/cluster.sh start "$work/cluster" "$port")"
# as a DBA would run it: the library preloaded, and shared_buffers sized to hold
# the 1M-credential working set (the default 128 MB does not), and the usage
# statistics sized for 10,000 orgs reading with one key each (2 rows an org)
psql -Xq -c "ALTER SYSTEM SET shared_preload_libraries = 'sdr_creds'" -c "ALTER SYSTEM SET shared_buffers = '1GB'" \
  -c "ALTER SYSTEM SET sdr_creds.usage_max = 30000" >/dev/null
test/cluster.sh restart "$work/cluster"
rounds=${BENCH_ROUNDS:-3}
# BENCH_ONLY=scale: step 8 alone
if [ "${BENCH_ONLY:-}" = scale ]; then . test/bench/scale.sh; echo "figures: $figures"; exit 0; fi
createdb bench
org=123e4567-e89b-12d3-a456-426614174000
psql -Xq -d bench -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE EXTENSION sdr_creds CASCADE;
CREATE ROLE bench_app LOGIN;
GRANT USAGE ON SCHEMA sdr_creds TO bench_app;
GRANT EXECUTE ON FUNCTION sdr_creds.authenticate(text), sdr_creds.authenticate_headers(text, text),
  sdr_creds.authenticate_headers(text, text, text),
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

# Bearer JWTs of an identity provider (python3-jwt, throwaway keys): an issuer with an
# RS256 and an ES256 key, one token of each reused, and BENCH_TOKENS of each in bench_tokens.
ntokens=${BENCH_TOKENS:-20000}
bearer=
if /usr/bin/python3 test/bench/bearer_tokens.py "$org" "$ntokens" "$work" 2>"$work/bearer.err"; then
  bearer=1
  psql -Xq -d bench -v ON_ERROR_STOP=1 >/dev/null <<SQL
\set jwks \`cat '$work/jwks.json'\`
SELECT sdr_creds.set_issuer('https://bench.example.auth0.com/', :'jwks'::jsonb);
CREATE TABLE bench_tokens (id integer PRIMARY KEY, token text NOT NULL);
\copy bench_tokens FROM '$work/tokens.tsv'
VACUUM ANALYZE bench_tokens;
GRANT SELECT ON bench_tokens TO bench_app;
SQL
else
  echo "bench: no Bearer figures (test/bench/bearer_tokens.py failed; python3-jwt missing?)"
fi

# The realistic load: 10,000 orgs x 3 providers (crm1..crm3), an API key per org,
# kept in bench_keys (for pgbench) and in a key file (for wrk).
nkeys=10000
psql -Xq -d bench -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE TABLE bench_keys (id integer PRIMARY KEY, key text NOT NULL);
DO \$\$
DECLARE
  o uuid;
BEGIN
  FOR i IN 1..$nkeys LOOP
    o := ('00000000-0000-4000-9000-' || lpad(to_hex(i), 12, '0'))::uuid;
    PERFORM sdr_creds.act_as(o);
    FOR p IN 1..3 LOOP
      PERFORM sdr_creds.store('crm' || p, 'https://org' || i || '.example.test', 'made-up-token-' || i || '-' || p,
        '{"instance_url": "https://bench.my.salesforce.com", "api_version": "v58.0", "refresh_token": "5Aep861.made-up", "token_type": "Bearer"}');
    END LOOP;
    INSERT INTO bench_keys VALUES (i, sdr_creds.create_api_key(o, 'bench') ->> 'key');
  END LOOP;
END
\$\$;
GRANT SELECT ON bench_keys TO bench_app;
VACUUM ANALYZE;
CHECKPOINT;
SQL
(umask 077; psql -XAtq -d bench -c "SELECT key FROM bench_keys ORDER BY id" > "$work/keys")
export BENCH_KEYS="$work/keys"

server=src/server/sdr_creds_server
http=
if [ -x "$server" ] && command -v wrk >/dev/null; then
  http=1
  # wrk's 2,000 connections and the server's need as many descriptors
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  http_port=${BENCH_HTTP_PORT:-18080}
  while (exec 3<>"/dev/tcp/127.0.0.1/$http_port") 2>/dev/null; do http_port=$((http_port + 1)); done
  # every wrk connection comes from 127.0.0.1: no per-address cap
  "$server" --listen 127.0.0.1 --port $http_port --log-level error --max-per-addr 0 --max-connections 4096 \
    --db "host=$PGHOST port=$PGPORT dbname=bench user=bench_app application_name=sdr_creds_bench" 2>"$work/server.log" &
  server_pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null && break; sleep 0.1; done
  url="http://127.0.0.1:$http_port/integration-credentials/provider/salesforce"
  base="http://127.0.0.1:$http_port"
  # the same server with --no-prepare (each statement parsed with each request)
  np_port=$((http_port + 1))
  while (exec 3<>"/dev/tcp/127.0.0.1/$np_port") 2>/dev/null; do np_port=$((np_port + 1)); done
  "$server" --listen 127.0.0.1 --port $np_port --log-level error --max-per-addr 0 --no-prepare \
    --db "host=$PGHOST port=$PGPORT dbname=bench user=bench_app application_name=sdr_creds_bench_noprep" \
    2>"$work/server_noprep.log" &
  noprep_pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$np_port/healthz" >/dev/null && break; sleep 0.1; done
  url_np="http://127.0.0.1:$np_port/integration-credentials/provider/salesforce"
fi

rss() { awk '/VmRSS/ { print $2 }' "/proc/$server_pid/status"; }
# wrk_run NAME CONNECTIONS SECONDS [wrk args]: wrk --latency into $work/NAME.wrk,
# the server's highest RSS meanwhile (sampled every 0.5 s) into $work/NAME.rss
wrk_run() {
  local name=$1 c=$2 d=$3 max=0 r; shift 3
  wrk -t 2 -c "$c" -d "${d}s" --timeout 5s --latency "$@" > "$work/$name.wrk" 2>&1 &
  local w=$!
  while kill -0 "$w" 2>/dev/null; do
    r=$(rss); [ "${r:-0}" -gt "$max" ] && max=$r
    sleep 0.5
  done
  wait "$w"
  echo "$max" > "$work/$name.rss"
}
wrk_one() { wrk_run "$1" "$2" "$3" -H "X-API-Key: $key" "$url"; }
wrk_random() { wrk_run "$1" "$2" "$3" -s test/bench/random_key.lua "$base"; }
# wrk_field NAME rps|p50|p99|errors|non2xx
wrk_field() {
  local f="$work/$1.wrk"
  case $2 in
    rps) sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' "$f" ;;
    p50) awk '$1 == "50%" { print $2 }' "$f" ;;
    p99) awk '$1 == "99%" { print $2 }' "$f" ;;
    errors) awk -F'[ ,]+' '/Socket errors/ { print $5 + $7 + $9 + $11 }' "$f" ;;
    non2xx) sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\)/\1/p' "$f" ;;
  esac
}
# the median of wrk's figure over the rounds' files NAME.1.wrk, NAME.2.wrk, ...
to_ms() { awk '{ v = $1; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else if (v ~ /s$/) v = v * 1000; printf "%.2f\n", v }'; }
wrk_median() {
  for i in $(seq "$rounds"); do
    if [ "$2" = rps ]; then wrk_field "$1.$i" rps; else wrk_field "$1.$i" "$2" | to_ms; fi
  done > "$work/$1.$2"
  median "$work/$1.$2"
}

# Interleaved rounds, median of each: the machine's noise hits all alike.
run_pgbench() {  # NAME[_audited|_churn]: test/bench/NAME.pgbench, results in $work/NAME[_...].tps
  local file=${1%_audited}; file=${file%_churn}; file=${file%_hot}
  pgbench -n -M prepared -c 8 -j 2 -T "$secs" -U bench_app -D key="$key" -D nkeys="${pgbench_keys:-$nkeys}" \
    -f "test/bench/$file.pgbench" bench 2>&1 |
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p' >> "$work/$1.tps"
}
# sdr_creds.audit for new sessions (pgbench connects anew for each run)
set_audit() {
  psql -Xq -c "ALTER SYSTEM SET sdr_creds.audit = '$1'" -c "SELECT pg_reload_conf()" >/dev/null
  until [ "$(psql -XAtq -d bench -c "SHOW sdr_creds.audit")" = "$1" ]; do sleep 0.05; done
}
run_bearer() {  # NAME FILE [pgbench -D ...]: results in $work/NAME.tps
  local name=$1 file=$2; shift 2
  pgbench -n -M prepared -c 8 -j 2 -T "$secs" -U bench_app "$@" -f "test/bench/$file.pgbench" bench 2>&1 |
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p' >> "$work/$name.tps"
}
# churn "COMMAND...": runs COMMAND while another client creates an API key and
# revokes it every 50 ms (20 keys a second of each, of an org no reader uses),
# for at most $secs + 2 s, cancelled when COMMAND ends
churn_org=00000000-0000-4000-a000-00000000c4c4
churn() {
  PGAPPNAME=sdr_creds_churn psql -Xq -d bench -v ON_ERROR_STOP=1 >/dev/null 2>>"$work/churn.err" <<SQL &
DO \$\$
DECLARE
  t0 timestamptz := clock_timestamp();
  stop timestamptz := clock_timestamp() + interval '$((secs + 2)) seconds';
  k json;
  n integer := 0;
BEGIN
  WHILE clock_timestamp() < stop LOOP
    k := sdr_creds.create_api_key('$churn_org', 'churn');
    COMMIT;
    PERFORM sdr_creds.revoke_api_key((k ->> 'id')::uuid);
    COMMIT;
    n := n + 1;
    PERFORM pg_sleep(greatest(0, n * 0.05 - extract(epoch FROM clock_timestamp() - t0)));
  END LOOP;
END
\$\$;
SQL
  local c=$!
  "$@"
  psql -XAtq -d bench -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'sdr_creds_churn'" >/dev/null
  wait "$c" 2>/dev/null
  return 0
}
# CPU ticks (utime + stime) of the HTTP server, and of the cluster's postmaster and its children
ticks() { cat "$@" 2>/dev/null | awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'; }
server_ticks() { ticks "/proc/$server_pid/stat"; }
pg_ticks() {
  local pm f line rest files=()
  pm=$(head -1 "$work/cluster/data/postmaster.pid")
  for f in /proc/[0-9]*/stat; do
    { read -r line < "$f"; } 2>/dev/null || continue
    rest=${line##*) }; rest=${rest#* }
    [ "${rest%% *}" = "$pm" ] && files+=("$f")
  done
  ticks "/proc/$pm/stat" "${files[@]}"
}
# the server's threads named $1 (MHD-worker: libmicrohttpd's HTTP workers; sdr-db: the
# database connections' threads)
thread_ticks() {
  local t files=()
  for t in /proc/"$server_pid"/task/*; do [ "$(cat "$t/comm" 2>/dev/null)" = "$1" ] && files+=("$t/stat"); done
  if [ ${#files[@]} -gt 0 ]; then ticks "${files[@]}"; else echo 0; fi
}
# wrk_random_cpu NAME: wrk_random NAME, adding the CPU it cost to $work/cpu_{server,http,db,pg,requests}
wrk_random_cpu() {
  local s0 h0 d0 p0 n
  s0=$(server_ticks); h0=$(thread_ticks MHD-worker); d0=$(thread_ticks sdr-db); p0=$(pg_ticks)
  wrk_random "$1" 32 "$secs"
  echo $(( $(server_ticks) - s0 )) >> "$work/cpu_server"; echo $(( $(pg_ticks) - p0 )) >> "$work/cpu_pg"
  echo $(( $(thread_ticks MHD-worker) - h0 )) >> "$work/cpu_http"; echo $(( $(thread_ticks sdr-db) - d0 )) >> "$work/cpu_db"
  n=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$work/$1.wrk"); echo "${n:-0}" >> "$work/cpu_requests"
}
# wrk_healthz_cpu NAME: GET /healthz (answered by the HTTP worker, no database, no
# suspend), its server CPU into $work/cpu_healthz{,_requests}: libmicrohttpd's own cost
wrk_healthz_cpu() {
  local s0 n
  s0=$(server_ticks)
  wrk_run "$1" 32 "$secs" "$base/healthz"
  echo $(( $(server_ticks) - s0 )) >> "$work/cpu_healthz"
  n=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$work/$1.wrk"); echo "${n:-0}" >> "$work/cpu_healthz_requests"
}
# API-key rows read so far (index scans of api_keys' key_hash index), once the
# backends of the last run have exited and flushed their statistics
key_reads() {
  sleep 1
  psql -XAtq -d bench -c "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'api_keys_key_hash_key'"
}
for i in $(seq "$rounds"); do
  run_pgbench plain_select; run_pgbench get_by_provider
  if [ -n "$bearer" ]; then
    run_bearer bearer_es256 bearer_one -D token="$(cat "$work/es256")"
    run_bearer bearer_rs256 bearer_one -D token="$(cat "$work/rs256")"
    run_bearer bearer_es256_new bearer_random -D first=1 -D ntokens="$ntokens"
    run_bearer bearer_rs256_new bearer_random -D first=$((ntokens + 1)) -D ntokens="$ntokens"
  fi
  # every call audited (one log line per request) with the usage statistics on
  set_audit all; run_pgbench get_by_provider_audited; set_audit writes
  run_pgbench get_random_key; churn run_pgbench get_random_key_churn
  pgbench_keys=2000; r0=$(key_reads); run_pgbench get_random_key_hot; r1=$(key_reads)
  churn run_pgbench get_random_key_hot_churn; r2=$(key_reads); pgbench_keys=
  echo $((r1 - r0)) >> "$work/key_reads_hot"; echo $((r2 - r1)) >> "$work/key_reads_hot_churn"
  if [ -n "$http" ]; then
    wrk_one one.$i 32 "$secs"; wrk_random_cpu random.$i; wrk_healthz_cpu healthz.$i
    churn wrk_random random_churn.$i 32 "$secs"
    wrk_run noprep.$i 32 "$secs" -H "X-API-Key: $key" "$url_np"
  fi
done
plain=$(median "$work/plain_select.tps"); creds=$(median "$work/get_by_provider.tps")
creds10k=$(median "$work/get_random_key.tps")
echo "in-database (median of $rounds interleaved ${secs} s rounds): get_by_provider with API-key auth + decryption ${creds} tps; plaintext JSON point select ${plain} tps"
echo "  ratio $(ratio "$creds" "$plain") (target >= 0.85)"
audited=$(median "$work/get_by_provider_audited.tps")
echo "  with sdr_creds.audit = all (one log line per call), in the same rounds: ${audited} tps, ratio $(ratio "$audited" "$plain") (target >= 0.85)"
echo "in-database, a random key of ${nkeys} orgs x 3 providers per call: ${creds10k} tps"
fig plain_select_tps "$plain"; fig get_by_provider_tps "$creds"
if [ -n "$bearer" ]; then
  for alg in es256 rs256; do
    one=$(median "$work/bearer_$alg.tps"); new=$(median "$work/bearer_${alg}_new.tps")
    echo "in-database, Bearer JWT ${alg^^} (an identity provider's key), one token reused: ${one} tps, ratio to the API key $(ratio "$one" "$creds") (target >= 0.9)"
    echo "  a random one of ${ntokens} tokens per call (each checked once per backend, then cached): ${new} tps, ratio to a random API key $(ratio "$new" "$(median "$work/get_random_key.tps")")"
    fig bearer_${alg}_tps "$one"; fig bearer_${alg}_new_tps "$new"
  done
fi
fig get_by_provider_audited_tps "$audited"; fig get_random_key_tps "$creds10k"
churned=$(psql -XAtq -d bench -c "SELECT count(*) FROM sdr_creds.api_keys WHERE org_id = '$churn_org' AND revoked_at IS NOT NULL")
churn_db=$(median "$work/get_random_key_churn.tps")
echo "churn: API keys created and revoked meanwhile, 20 a second of each: ${churned} over $((rounds * (http ? 3 : 2))) runs$(churn_errors=$(grep ERROR "$work/churn.err" 2>/dev/null | grep -v 'canceling statement due to user request' | head -c 200)
  [ -n "$churn_errors" ] && echo " (errors: $churn_errors)")"
echo "  in-database, a random key per call, with churn: ${churn_db} tps, ratio to without (the same rounds) $(ratio "$churn_db" "$creds10k") (target >= 0.9)"
hot=$(median "$work/get_random_key_hot.tps"); hot_churn=$(median "$work/get_random_key_hot_churn.tps")
echo "  in-database, a random one of the first 2000 keys per call (cached in every backend): ${hot_churn} tps with churn, ${hot} without: ratio $(ratio "$hot_churn" "$hot") (target >= 0.9)"
echo "    API-key rows read over those runs (index scans; the rest were key-cache hits): $(sum "$work/key_reads_hot") without churn, $(sum "$work/key_reads_hot_churn") with"
fig key_reads_hot "$(sum "$work/key_reads_hot")"; fig key_reads_hot_churn "$(sum "$work/key_reads_hot_churn")"
fig get_random_key_hot_tps "$hot"; fig get_random_key_hot_churn_tps "$hot_churn"; fig churn_db_hot_ratio "$(ratio "$hot_churn" "$hot")"
fig churn_keys "$churned"; fig get_random_key_churn_tps "$churn_db"; fig churn_db_ratio "$(ratio "$churn_db" "$creds10k")"

if [ -n "$http" ]; then
  for load in one random; do
    rps=$(wrk_median $load rps); p50=$(wrk_median $load p50); p99=$(wrk_median $load p99)
    non2xx=0; errors=0
    for i in $(seq "$rounds"); do
      non2xx=$((non2xx + $(wrk_field $load.$i non2xx | grep . || echo 0)))
      errors=$((errors + $(wrk_field $load.$i errors | grep . || echo 0)))
    done
    if [ $load = one ]; then what="one key"; against=$creds; else what="a random key of ${nkeys} orgs"; against=$creds10k; fi
    echo "HTTP get by provider, ${what} (wrk -c 32, median of $rounds rounds): ${rps} req/s, p50 ${p50} ms, p99 ${p99} ms; errors ${errors}, non-2xx ${non2xx}"
    echo "  ratio to in-database ($against tps) $(ratio "$rps" "$against") (target >= 0.6; p99 target <= 5 ms)"
    fig http_${load}_rps "$rps"; fig http_${load}_p50_ms "$p50"; fig http_${load}_p99_ms "$p99"
    fig http_${load}_errors "$errors"; fig http_${load}_non2xx "$non2xx"
  done
  churn_rps=$(wrk_median random_churn rps)
  echo "  churn: HTTP, a random key per request, with churn: ${churn_rps} req/s, p99 $(wrk_median random_churn p99) ms; ratio to without (the same rounds) $(ratio "$churn_rps" "$(wrk_median random rps)") (target >= 0.9)"
  fig http_random_churn_rps "$churn_rps"; fig churn_http_ratio "$(ratio "$churn_rps" "$(wrk_median random rps)")"
  hz=$(getconf CLK_TCK); nreq=$(sum "$work/cpu_requests")
  # per_request FILE [REQUESTS]: the ticks summed in FILE, in us per request
  per_request() { awk -v t="$(sum "$1")" -v hz="$hz" -v n="${2:-$nreq}" 'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n }'; }
  cpu_server=$(per_request "$work/cpu_server"); cpu_pg=$(per_request "$work/cpu_pg")
  cpu_http=$(per_request "$work/cpu_http"); cpu_db=$(per_request "$work/cpu_db")
  cpu_healthz=$(per_request "$work/cpu_healthz" "$(sum "$work/cpu_healthz_requests")")
  echo "CPU per request, HTTP random keys (${nreq} requests over $rounds rounds, /proc utime + stime): server ${cpu_server} us (target <= 10), PostgreSQL ${cpu_pg} us (all the cluster's processes)"
  echo "  the server's: HTTP workers ${cpu_http} us, database threads ${cpu_db} us; GET /healthz (no database, the same rounds) ${cpu_healthz} us"
  fig cpu_us_server "$cpu_server"; fig cpu_us_postgres "$cpu_pg"
  fig cpu_us_server_http "$cpu_http"; fig cpu_us_server_db "$cpu_db"; fig cpu_us_server_healthz "$cpu_healthz"
  np=$(wrk_median noprep rps); np99=$(wrk_median noprep p99); np_non2xx=0
  for i in $(seq "$rounds"); do np_non2xx=$((np_non2xx + $(wrk_field noprep.$i non2xx | grep . || echo 0))); done
  echo "HTTP get by provider, one key, --no-prepare (wrk -c 32, median of $rounds rounds): ${np} req/s, p99 ${np99} ms; non-2xx ${np_non2xx}"
  echo "  ratio to prepared statements (one key, the same rounds) $(ratio "$np" "$(wrk_median one rps)")"
  fig http_noprepare_rps "$np"; fig http_noprepare_p99_ms "$np99"; fig http_noprepare_non2xx "$np_non2xx"
  fig http_noprepare_ratio "$(ratio "$np" "$(wrk_median one rps)")"
  kill "$noprep_pid" 2>/dev/null; wait "$noprep_pid" 2>/dev/null; noprep_pid=
fi


if [ -n "$http" ]; then
  # Many kept-alive connections, random keys: all from 127.0.0.1 (no per-address cap).
  for c in 256 2000; do
    wrk_random conn$c "$c" "$secs"
    echo "HTTP, ${c} connections (random keys, ${secs} s): $(wrk_field conn$c rps) req/s, p50 $(wrk_field conn$c p50), p99 $(wrk_field conn$c p99); errors $(wrk_field conn$c errors | grep . || echo 0), non-2xx $(wrk_field conn$c non2xx | grep . || echo 0)"
    fig conn${c}_rps "$(wrk_field conn$c rps)"
    fig conn${c}_p50_ms "$(wrk_field conn$c p50 | to_ms)"; fig conn${c}_p99_ms "$(wrk_field conn$c p99 | to_ms)"
    fig conn${c}_errors "$(wrk_field conn$c errors | grep . || echo 0)"
    fig conn${c}_non2xx "$(wrk_field conn$c non2xx | grep . || echo 0)"
  done
  echo "  p99 target at 256 connections <= 20 ms; no errors, no non-2xx"
  r32=$(sort -n "$work"/one.*.rss "$work"/random.*.rss | tail -1)
  echo "server RSS: ${r32} kB at 32 connections, $(cat "$work/conn256.rss") kB at 256, $(cat "$work/conn2000.rss") kB at 2000 (target < 65536 kB at 2000)"
  fig rss_kb_32 "$r32"; fig rss_kb_256 "$(cat "$work/conn256.rss")"; fig rss_kb_2000 "$(cat "$work/conn2000.rss")"
  # 60 s at 2,000 connections: the RSS after 10 s and near the end
  wrk -t 2 -c 2000 -d 60s --timeout 5s -s test/bench/random_key.lua "$base" > "$work/long.wrk" 2>&1 &
  w=$!
  sleep 10; r10=$(rss); sleep 30; r40=$(rss)
  dbconns=$(psql -XAtq -d bench -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sdr_creds_bench'")
  curl -s "$base/metrics" > "$work/metrics"
  sleep 18; r58=$(rss)
  wait "$w"
  echo "server RSS over 60 s at 2000 connections: ${r10} kB at 10 s, ${r40} kB at 40 s, ${r58} kB at 58 s (target: not growing); $(sed -n 's/^Requests\/sec: *//p' "$work/long.wrk") req/s"
  echo "  at 40 s: $(awk '$1 == "sdr_creds_http_connections" { print $2 }' "$work/metrics") HTTP connections open, ${dbconns} database connections (pool of $(awk '/^sdr_creds_db_pool_connections/ { n += $2 } END { print n }' "$work/metrics"))"
  fig rss_kb_2000_at_10s "$r10"; fig rss_kb_2000_at_40s "$r40"; fig rss_kb_2000_at_58s "$r58"
  fig conn2000_60s_rps "$(sed -n 's/^Requests\/sec: *//p' "$work/long.wrk")"
  fig http_connections_at_40s "$(awk '$1 == "sdr_creds_http_connections" { print $2 }' "$work/metrics")"
  fig db_connections_at_40s "$dbconns"
  fig pool "$(awk '/^sdr_creds_db_pool_connections/ { n += $2 } END { print n }' "$work/metrics")"
fi

if [ -n "$http" ]; then
  # Reads from a hot standby: a pg_basebackup -R standby of this cluster, and a
  # second server sending GETs there (--db-read), against the primary alone.
  bindir=${SDR_PG_ROOT:-}$(pg_config --bindir)
  mkdir -m 700 "$work/standby"; [ "$(id -u)" -eq 0 ] && chown postgres: "$work/standby"
  as_owner "$bindir/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres -D "$work/standby" -R -X stream -c fast >"$work/basebackup.log" 2>&1
  # from the next port up, retried if taken meanwhile (as test/security/standby.sh does)
  sport=$(test/cluster.sh standby "$work/standby" "$work/cluster" $((port + 1)) "$work/cluster/standby.log")
  standby_up=1
  http_port2=$((http_port + 1))
  while (exec 3<>"/dev/tcp/127.0.0.1/$http_port2") 2>/dev/null; do http_port2=$((http_port2 + 1)); done
  "$server" --listen 127.0.0.1 --port $http_port2 --log-level error --max-per-addr 0 \
    --db "host=$PGHOST port=$PGPORT dbname=bench user=bench_app" \
    --db-read "host=$PGHOST port=$sport dbname=bench user=bench_app" 2>"$work/server2.log" &
  server2_pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$http_port2/healthz" >/dev/null && break; sleep 0.1; done
  psql -Xq -p "$sport" -d bench -c "SELECT sdr_creds.usage_reset()" >/dev/null
  wrk_run routed 32 "$secs" -s test/bench/random_key.lua "http://127.0.0.1:$http_port2"
  wrk_random primary_only 32 "$secs"
  served=$(psql -XAtq -p "$sport" -d bench -c "SELECT coalesce(sum(calls), 0) FROM sdr_creds.usage WHERE action = 'get_by_provider'")
  fallbacks=$(curl -s "http://127.0.0.1:$http_port2/metrics" | awk '$1 == "sdr_creds_db_read_fallbacks_total" { print $2 }')
  echo "HTTP reads with --db-read (random keys, wrk -c 32): $(wrk_field routed rps) req/s, p99 $(wrk_field routed p99), non-2xx $(wrk_field routed non2xx | grep . || echo 0); primary alone: $(wrk_field primary_only rps) req/s"
  echo "  served by the standby: ${served} get_by_provider calls; sent to the primary instead: ${fallbacks:-?} (on 2 cores primary and standby share the CPUs: this shows the routing, not a speed-up)"
  fig db_read_rps "$(wrk_field routed rps)"; fig db_read_p99_ms "$(wrk_field routed p99 | to_ms)"
  fig primary_only_rps "$(wrk_field primary_only rps)"
  fig standby_served "$served"; fig read_fallbacks "$fallbacks"
  kill "$server2_pid" 2>/dev/null; wait "$server2_pid" 2>/dev/null
  as_owner "$bindir/pg_ctl" -D "$work/standby" -m fast -w stop >/dev/null; standby_up=
fi

# 8. scale (test/bench/scale.sh)
. test/bench/scale.sh

echo "figures: $figures"
if test/bench/chart.sh "$figures" "$out/bench.png"; then
  echo "chart: $out/bench.png"
else
  echo "chart: not drawn (test/bench/chart.sh needs gnuplot: make deps)"
fi
