# shellcheck shell=bash disable=SC2154
# make bench's step 8, sourced by test/bench/run.sh (its cluster, $work, $secs,
# $rounds, fig, median, ratio and sum).
# 8. scale: two databases in this cluster, measured in the same interleaved rounds:
# scale_small (1k orgs x 10 providers, 1k API keys) and scale (BENCH_SCALE: 1M = 1M
# credentials over 100k orgs and 100k keys, the default; 10M = 10M credentials over
# 1M orgs and 1M keys; 0 skips). Rows are written by the extension's own store()
# and create_api_key() (sealed, decryptable), in server-side loops of 10k orgs (100k
# credentials) or 100k keys a transaction, BENCH_SCALE_JOBS (default: the CPUs) at once.
# A plaintext copy of each database's credentials (scale_plain, one unique index on
# org and provider), point-selected as JSON in the same rounds, is the control:
# PostgreSQL's own cost of the size, without the extension.
case ${BENCH_SCALE:-1M} in
  0) scale_orgs=0 ;;
  1 | 1M | 1m) scale_orgs=100000; scale_label=1m; scale_need_gb=4 ;;
  10M | 10m) scale_orgs=1000000; scale_label=10m; scale_need_gb=25 ;;
  *) echo "bench: BENCH_SCALE is 0, 1M or 10M, not '$BENCH_SCALE': scale step skipped"; scale_orgs=0 ;;
esac
scale_free_gb=$(df -Pk "$work" | awk 'NR == 2 { print int($4 / 1048576) }')
if [ "$scale_orgs" -gt 0 ] && [ "$scale_free_gb" -lt "$scale_need_gb" ]; then
  echo "scale: not run: $((scale_orgs * 10)) credentials need about ${scale_need_gb} GB free on $(df -P "$work" | awk 'NR == 2 { print $6 }'), there are ${scale_free_gb} GB"
  scale_orgs=0
fi
if [ "$scale_orgs" -gt 0 ]; then
  if [ "$scale_label" = 10m ]; then
    # sized as a DBA would for ~5 GB of credentials and keys (and ~3 GB of the
    # plaintext control): the working set in shared_buffers, and checkpoints
    # spaced for a bulk load
    psql -Xq -c "ALTER SYSTEM SET shared_buffers = '${BENCH_SCALE_SHARED_BUFFERS:-8GB}'" -c "ALTER SYSTEM SET max_wal_size = '4GB'" >/dev/null
    test/cluster.sh restart "$work/cluster"
  fi
  scale_jobs=${BENCH_SCALE_JOBS:-$(nproc)}
  org_uuid="('00000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid"
  # the largest VmHWM, VmRSS and RssAnon (private memory) of the scale databases'
  # backends, sampled every 0.5 s until $work/scale_mem.stop exists
  scale_mem_sampler() {
    local pm p c hwm=0 rss=0 anon=0 k v
    pm=$(head -1 "$work/cluster/data/postmaster.pid")
    until [ -e "$work/scale_mem.stop" ] || ! kill -0 "$$" 2>/dev/null; do
      for p in $(pgrep -P "$pm"); do
        c=$(tr '\0' ' ' 2>/dev/null < "/proc/$p/cmdline")
        case $c in "postgres: "*" scale"*) ;; *) continue ;; esac
        while read -r k v _; do
          case $k in
            VmHWM:) [ "$v" -gt "$hwm" ] && hwm=$v ;;
            VmRSS:) [ "$v" -gt "$rss" ] && rss=$v ;;
            RssAnon:) [ "$v" -gt "$anon" ] && anon=$v ;;
          esac
        done < <(cat "/proc/$p/status" 2>/dev/null)
      done
      echo "$hwm $rss $anon" > "$work/scale_mem"
      sleep 0.5
    done
  }
  scale_mem_sampler & scale_mem_pid=$!
  # scale_load DB FROM TO: orgs n in [FROM, TO) with 10 credentials each, then
  # API keys n in [FROM, TO) (one an org, in scale_keys for pgbench)
  scale_load() {
    local db=$1 from=$2 to=$3 j lo hi pids=()
    for ((j = 0; j < scale_jobs; j++)); do
      for ((lo = from + j * 10000; lo < to; lo += scale_jobs * 10000)); do
        hi=$((lo + 10000 < to ? lo + 10000 : to))
        psql -Xq -d "$db" -v ON_ERROR_STOP=1 >/dev/null <<SQL || echo "scale: loading orgs $lo..$hi failed" >&2
DO \$\$
BEGIN
  FOR n IN $lo..$((hi - 1)) LOOP
    PERFORM sdr_creds.act_as($org_uuid);
    FOR p IN 1..10 LOOP
      PERFORM sdr_creds.store('crm' || p, NULL, 'made-up-token-' || n || '-' || p, '{"refresh_token": "made-up", "portal_id": 1}');
    END LOOP;
  END LOOP;
END
\$\$;
SQL
      done &
      pids+=($!)
    done
    wait "${pids[@]}"; pids=()
    for ((j = 0; j < scale_jobs; j++)); do
      for ((lo = from + j * 100000; lo < to; lo += scale_jobs * 100000)); do
        hi=$((lo + 100000 < to ? lo + 100000 : to))
        psql -Xq -d "$db" -v ON_ERROR_STOP=1 -c "INSERT INTO scale_keys SELECT n, sdr_creds.create_api_key($org_uuid, 'scale') ->> 'key'
          FROM generate_series($lo, $((hi - 1))) n" >/dev/null || echo "scale: creating keys $lo..$hi failed" >&2
      done &
      pids+=($!)
    done
    wait "${pids[@]}"
    # measure lookups, not the load's aftermath: hint bits set, dirty pages flushed
    psql -Xq -d "$db" -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null
  }
  for db in scale_small scale; do
    createdb "$db"
    psql -Xq -d "$db" -v ON_ERROR_STOP=1 -c "CREATE EXTENSION sdr_creds CASCADE" \
      -c "CREATE TABLE scale_keys (id integer PRIMARY KEY, key text NOT NULL)" >/dev/null 2>&1
  done
  scale_load scale_small 1 1001
  t0=$(date +%s); scale_load scale 1 $((scale_orgs + 1)); t1=$(date +%s)
  for db in scale_small scale; do  # the control, made after the timed load
    psql -Xq -d "$db" -v ON_ERROR_STOP=1 -c "CREATE TABLE scale_plain AS SELECT * FROM sdr_creds.credentials" \
      -c "ALTER TABLE scale_plain ADD UNIQUE (org_id, provider)" -c "VACUUM ANALYZE scale_plain" >/dev/null
  done
  psql -Xq -c "CHECKPOINT" >/dev/null
  scale_rows=$(psql -XAtq -d scale -c "SELECT count(*) FROM sdr_creds.credentials")
  scale_keys=$(psql -XAtq -d scale -c "SELECT count(*) FROM sdr_creds.api_keys")
  # every credential of a sample decrypts (real sealed rows)
  scale_sample=$(psql -XAtq -d scale -c "SELECT count(*) FROM generate_series(1, $scale_orgs, $((scale_orgs / 100))) n, generate_series(1, 10) p
    WHERE (SELECT sdr_creds.get_by_provider('crm' || p) FROM sdr_creds.act_as($org_uuid)) ->> 'access_token' = 'made-up-token-' || n || '-' || p")
  # The per-backend API-key cache (KEY_CACHE_MAX entries): its memory context and
  # the backend's private memory, empty and with 1,000 and 4,095 keys cached.
  key_cache_mem() {
    psql -XAtq -d scale -F ' ' <<SQL
SELECT coalesce((SELECT total_bytes FROM pg_backend_memory_contexts WHERE name = 'sdr_creds API keys'), 0),
  (regexp_match(pg_read_file('/proc/self/status'), 'RssAnon:\s+(\d+)'))[1];
SELECT count(sdr_creds.authenticate(key)) FROM scale_keys WHERE id <= 1000 \g /dev/null
SELECT (SELECT total_bytes FROM pg_backend_memory_contexts WHERE name = 'sdr_creds API keys'),
  (regexp_match(pg_read_file('/proc/self/status'), 'RssAnon:\s+(\d+)'))[1];
SELECT count(sdr_creds.authenticate(key)) FROM scale_keys WHERE id <= 4095 \g /dev/null
SELECT (SELECT total_bytes FROM pg_backend_memory_contexts WHERE name = 'sdr_creds API keys'),
  (regexp_match(pg_read_file('/proc/self/status'), 'RssAnon:\s+(\d+)'))[1];
SQL
  }
  read -r kc0 ra0 kc1k ra1k kc4k ra4k < <(key_cache_mem | tr '\n' ' ')
  # the machine's page faults so far (/proc/vmstat): a backend's first touch of a
  # shared-buffer page is a fault, so a lookup over a large working set pays them
  page_faults() { awk '$1 == "pgfault" { print $2 }' /proc/vmstat; }
  scale_pgbench() {  # NAME DB FILE NORGS NKEYS: tps into $work/scale_NAME.tps, faults a call into .faults
    local f0 tps
    f0=$(page_faults)
    tps=$(pgbench -n -M prepared -c 8 -j 2 -T "$secs" -D norgs="$4" -D nkeys="$5" -f "test/bench/$3.pgbench" "$2" 2>&1 |
      sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
    echo "$tps" >> "$work/scale_$1.tps"
    awk -v f="$(($(page_faults) - f0))" -v t="$tps" -v s="$secs" 'BEGIN { if (t > 0) printf "%.2f\n", f / (t * s) }' >> "$work/scale_$1.faults"
  }
  scale_key_reads() {  # API-key rows read in DB so far (index scans of the key-hash index)
    sleep 1; psql -XAtq -d "$1" -c "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'api_keys_key_hash_key'"
  }
  : > "$work/scale_calls"
  for _ in $(seq "$rounds"); do
    scale_pgbench small scale_small scale_get 1000 1000; scale_pgbench large scale scale_get "$scale_orgs" 1000
    scale_pgbench plain_small scale_small scale_plain 1000 1000; scale_pgbench plain scale scale_plain "$scale_orgs" 1000
    scale_pgbench auth_1k scale_small scale_auth 1000 1000
    for w in 1000 6000 "$scale_orgs"; do
      r0=$(scale_key_reads scale); scale_pgbench "auth_$w" scale scale_auth "$scale_orgs" "$w"
      echo "$w $(($(scale_key_reads scale) - r0))" >> "$work/scale_calls"
    done
  done
  touch "$work/scale_mem.stop"; wait "$scale_mem_pid"
  read -r mem_hwm mem_rss mem_anon < "$work/scale_mem"
  small=$(median "$work/scale_small.tps"); large=$(median "$work/scale_large.tps")
  sratio=$(ratio "$small" "$large")
  sizes=$(psql -XAtq -d scale -F ' ' -c "SELECT pg_relation_size('sdr_creds.credentials') / 1048576, pg_indexes_size('sdr_creds.credentials') / 1048576,
    pg_relation_size('sdr_creds.api_keys') / 1048576, pg_indexes_size('sdr_creds.api_keys') / 1048576, pg_database_size('scale') / 1048576")
  read -r cred_mb cred_idx_mb keys_mb keys_idx_mb db_mb <<<"$sizes"
  echo "scale (median of $rounds interleaved ${secs} s rounds; scale_small and scale in one cluster):"
  echo "  loaded ${scale_rows} credentials over ${scale_orgs} orgs and ${scale_keys} API keys in $((t1 - t0)) s (${scale_jobs} jobs); a sample's credentials decrypted: ${scale_sample} of 1000 (100 orgs x 10)"
  echo "  sizes: credentials ${cred_mb} MB + indexes ${cred_idx_mb} MB; api_keys ${keys_mb} MB + indexes ${keys_idx_mb} MB; database ${db_mb} MB"
  echo "  get_by_provider, a random org and provider: ${small} tps at 10k credentials (1k orgs), ${large} tps at ${scale_rows}"
  echo "    time per lookup at ${scale_label^^} / at 10k: ${sratio} (target <= 1.2)"
  fault_small=$(median "$work/scale_small.faults"); fault_large=$(median "$work/scale_large.faults")
  echo "    page faults a lookup (the machine's, /proc/vmstat): ${fault_small} at 10k, ${fault_large} at ${scale_label^^} (pgbench's new backends touching shared-buffer pages for the first time)"
  plain_small=$(median "$work/scale_plain_small.tps"); plain=$(median "$work/scale_plain.tps"); pratio=$(ratio "$plain_small" "$plain")
  fault_plain_small=$(median "$work/scale_plain_small.faults"); fault_plain=$(median "$work/scale_plain.faults")
  echo "  the control, a plaintext point select of the same rows as JSON (scale_plain): ${plain_small} tps at 10k, ${plain} tps at ${scale_label^^}"
  echo "    time per lookup at ${scale_label^^} / at 10k: ${pratio} (PostgreSQL's own cost of the size); page faults a lookup ${fault_plain_small} / ${fault_plain}"
  auth1k=$(median "$work/scale_auth_1k.tps")
  echo "  authenticate(), a random one of N API keys (key cache: 4096 a backend, one evicted at a time when full):"
  echo "    N = 1000 of 1000 (scale_small): ${auth1k} tps"
  for w in 1000 6000 "$scale_orgs"; do
    tps=$(median "$work/scale_auth_$w.tps")
    calls=$(awk -v w="$w" -v t="$(sum "$work/scale_auth_$w.tps")" -v s="$secs" '$1 == w { r += $2 } END { if (t > 0) printf "%.2f", r / (t * s) }' "$work/scale_calls")
    echo "    N = ${w} of ${scale_keys}: ${tps} tps, time per call against N = 1000 of 1000: $(ratio "$auth1k" "$tps"); key rows read per call ${calls} (1 - the cache's hit rate)"
    fig "scale_${scale_label}_auth_${w}_tps" "$tps"; fig "scale_${scale_label}_auth_${w}_reads_per_call" "$calls"
  done
  echo "  API-key cache of one backend: $((kc1k - kc0)) bytes with 1000 keys, $((kc4k - kc0)) with 4095 ($(((kc4k - kc0) / 4095)) bytes a key); private memory (RssAnon) ${ra0} kB empty, ${ra1k} kB, ${ra4k} kB"
  echo "  largest backend of the scale databases during the step: VmHWM ${mem_hwm} kB, VmRSS ${mem_rss} kB (shared buffers it touched included), RssAnon ${mem_anon} kB"
  # huge_pages = try (the default) puts shared memory in them when the kernel has them
  huge=$(awk '$1 == "HugePages_Total:" { print $2 }' /proc/meminfo)
  echo "  huge pages on this machine: ${huge:-0} (0: shared buffers in 4 kB pages, a page fault for each one a backend touches first; see docs/operations.md)"
  [ "$scale_label" = 1m ] && { fig scale_10k_tps "$small"; fig scale_rows "$scale_rows"; fig scale_ratio "$sratio"; }
  fig "scale_${scale_label}_small_tps" "$small"; fig "scale_${scale_label}_tps" "$large"; fig "scale_${scale_label}_ratio" "$sratio"
  fig "scale_${scale_label}_rows" "$scale_rows"; fig "scale_${scale_label}_api_keys" "$scale_keys"
  fig "scale_${scale_label}_load_s" "$((t1 - t0))"; fig "scale_${scale_label}_decrypted_sample" "$scale_sample"
  fig "scale_${scale_label}_credentials_mb" "$cred_mb"; fig "scale_${scale_label}_credentials_indexes_mb" "$cred_idx_mb"
  fig "scale_${scale_label}_api_keys_mb" "$keys_mb"; fig "scale_${scale_label}_api_keys_indexes_mb" "$keys_idx_mb"
  fig "scale_${scale_label}_database_mb" "$db_mb"; fig "scale_${scale_label}_auth_small_tps" "$auth1k"
  fig key_cache_bytes_1000 "$((kc1k - kc0))"; fig key_cache_bytes_4095 "$((kc4k - kc0))"
  fig key_cache_rss_anon_kb_0 "$ra0"; fig key_cache_rss_anon_kb_4095 "$ra4k"
  fig "scale_${scale_label}_backend_hwm_kb" "$mem_hwm"; fig "scale_${scale_label}_backend_rss_kb" "$mem_rss"
  fig "scale_${scale_label}_backend_anon_kb" "$mem_anon"
  fig "scale_${scale_label}_small_faults_per_call" "$fault_small"; fig "scale_${scale_label}_faults_per_call" "$fault_large"
  fig "scale_${scale_label}_plain_small_tps" "$plain_small"; fig "scale_${scale_label}_plain_tps" "$plain"; fig "scale_${scale_label}_plain_ratio" "$pratio"
  fig "scale_${scale_label}_plain_faults_per_call" "$fault_plain"
  fig "scale_${scale_label}_huge_pages" "${huge:-0}"
  for db in scale scale_small; do dropdb "$db"; done
fi
