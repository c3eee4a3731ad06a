#!/usr/bin/env bash
# Arguments: every function and procedure of schema sdr_creds, read from
# pg_proc when the test runs (a function added later is covered without
# editing this file), is called with NULL and edge values in each argument
# position in turn (declared or type defaults elsewhere), and with every
# argument NULL; as the superuser, as an application role with EXECUTE on every
# routine, and as one with only the README's grants; each without an org
# context and after authenticating with a fresh API key. Every call runs in its
# own transaction (a procedure without org context: autocommit, so its COMMITs
# run) and must return or fail with a clean SQLSTATE: a lost connection (the
# backend died), a class XX error or a statement timeout (5 s) fails the test,
# and so does a backend "terminated by signal" in the postmaster log.
# An argument type the generator has no edge values for fails the test too:
# extend the `edge` table below.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
db=sdr_args
org=00000000-0000-4000-8000-0000000000e1
app=sdr_args_app        # EXECUTE on every routine: reaches every body
readme=sdr_args_readme  # only the README's application grants
work=$(mktemp -d "${TMPDIR:-/tmp}/sdr_args.XXXXXX")
log="$SDR_CLUSTER_DIR/postgres.log"
log_start=$(stat -c %s "$log" 2>/dev/null || echo 0)

drop_roles() {
  q -c "DROP ROLE IF EXISTS $app, $readme" >/dev/null 2>&1
}
cleanup() { dropdb --if-exists "$db" >/dev/null 2>&1; drop_roles; rm -rf "$work"; }
trap cleanup EXIT
dropdb --if-exists "$db" >/dev/null 2>&1; drop_roles
fresh_db "$db"
# CREATE CAST ... WITHOUT FUNCTION lets a bytea pass as text unchecked: the
# only way to hand a function a text that is not valid UTF-8 in a UTF8
# database (literals, convert_from(), client encodings all validate).
q -d "$db" >/dev/null 2>"$work/setup.err" <<SQL
CREATE CAST (bytea AS text) WITHOUT FUNCTION;
CREATE ROLE $app; CREATE ROLE $readme;
GRANT USAGE ON SCHEMA sdr_creds TO $app, $readme;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA sdr_creds TO $app;
GRANT EXECUTE ON FUNCTION
    sdr_creds.authenticate(text), sdr_creds.authenticate_headers(text, text),
    sdr_creds.authenticate_request(), sdr_creds.current_org_id(),
    sdr_creds.store(text, text, text, jsonb), sdr_creds.store_json(text),
    sdr_creds.get_by_provider(text), sdr_creds.get(uuid),
    sdr_creds.list(integer, integer), sdr_creds.delete(uuid)
  TO $readme;
-- a credential of the org and one of another org, for the uuid edge values
BEGIN; SELECT sdr_creds.act_as('$org');
SELECT sdr_creds.store('salesforce', 'https://x.example', 'made-up-token', '{"refresh_token": "made-up"}');
COMMIT;
BEGIN; SELECT sdr_creds.act_as('00000000-0000-4000-8000-0000000000e2');
SELECT sdr_creds.store('hubspot', NULL, 'made-up-token', '{}');
COMMIT;
SQL
if [ $? != 0 ]; then
  not_ok "arguments: set-up (database $db, roles $app and $readme, two credentials)"
  sed 's/^/# /' "$work/setup.err" | head -5; exit 1
fi

# The generator: one row per call, "signature <tab> prokind <tab> label <tab> statement".
q -d "$db" -F $'\t' > "$work/calls" <<'SQL'
WITH edge(typ, label, expr) AS (VALUES
  ('text', 'NULL', 'NULL'), ('text', 'empty', $$''$$),
  ('text', '100 KB', $$repeat('x', 102400)$$),
  ('text', 'SQL metacharacters', $q$'''; DROP TABLE sdr_creds.credentials; -- \ % _ " $1 */ $$'$q$),
  ('text', 'control characters', $$E'a\nb\tc\rd\x01\x1b[0m\x7f'$$),
  ('text', 'multibyte', $$'ünïcødé 🔑 ☃'$$),
  ('text', 'invalid UTF-8', $$'\xc328ff80'::bytea::text$$),
  ('text', 'key-shaped', $$'sk_live_' || repeat('A', 43)$$),
  ('text', 'JWT-shaped alg none', $$'Bearer eyJhbGciOiJub25lIn0.eyJvcmdfaWQiOiIwMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwZTEifQ.'$$),
  ('text', 'JSON body', $$'{"provider": "hubspot", "access_token": "made-up", "metadata": {"a": [1, null]}}'$$),
  ('uuid', 'NULL', 'NULL'), ('uuid', 'nil', $$'00000000-0000-0000-0000-000000000000'$$),
  ('uuid', 'random', 'gen_random_uuid()'), ('uuid', 'max', $$'ffffffff-ffff-ffff-ffff-ffffffffffff'$$),
  ('uuid', 'the org''s credential', (SELECT quote_literal(id) FROM sdr_creds.credentials
                                      WHERE org_id = '00000000-0000-4000-8000-0000000000e1')),
  ('uuid', 'another org''s credential', (SELECT quote_literal(id) FROM sdr_creds.credentials
                                          WHERE org_id = '00000000-0000-4000-8000-0000000000e2')),
  ('smallint', 'NULL', 'NULL'), ('smallint', '0', '0'), ('smallint', '-1', '-1'),
  ('smallint', 'min', '-32768'), ('smallint', 'max', '32767'),
  ('integer', 'NULL', 'NULL'), ('integer', '0', '0'), ('integer', '-1', '-1'),
  ('integer', 'INT_MIN', '-2147483648'), ('integer', 'INT_MAX', '2147483647'),
  ('bigint', 'NULL', 'NULL'), ('bigint', '0', '0'), ('bigint', '-1', '-1'),
  ('bigint', 'min', '-9223372036854775808'), ('bigint', 'max', '9223372036854775807'),
  ('timestamp with time zone', 'NULL', 'NULL'), ('timestamp with time zone', '-infinity', $$'-infinity'$$),
  ('timestamp with time zone', 'infinity', $$'infinity'$$),
  ('timestamp with time zone', 'past', $$'2000-01-01 00:00:00+00'$$),
  ('boolean', 'NULL', 'NULL'), ('boolean', 'true', 'true'), ('boolean', 'false', 'false'),
  ('bytea', 'NULL', 'NULL'), ('bytea', 'empty', $$''::bytea$$),
  ('bytea', 'invalid UTF-8', $$'\xc328ff80'::bytea$$), ('bytea', 'NUL inside', $$'\x7b00227d'::bytea$$),
  ('bytea', '2 MB', $$convert_to(repeat('x', 2097152), 'UTF8')$$),
  ('bytea', 'token answer', $$convert_to('{"access_token": "made-up", "expires_in": 1e300, "refresh_token": ""}', 'UTF8')$$),
  ('bytea', 'nested 5000 arrays', $$convert_to(repeat('[', 5000) || repeat(']', 5000), 'UTF8')$$)
), json_edge(label, expr) AS (VALUES
  ('NULL', 'NULL'), ('{}', $$'{}'$$), ('[]', $$'[]'$$), ('null', $$'null'$$), ('"x"', $$'"x"'$$),
  ('nested 1000 objects', $$repeat('{"a":', 1000) || '1' || repeat('}', 1000)$$),
  ('nested 5000 objects', $$repeat('{"a":', 5000) || '1' || repeat('}', 5000)$$),
  ('nested 5000 arrays', $$repeat('[', 5000) || repeat(']', 5000)$$),
  ('100 KB', $$'{"refresh_token": "' || repeat('x', 102400) || '"}'$$),
  ('5000 keys', $$(SELECT json_object_agg('k' || i, i)::text FROM generate_series(1, 5000) i)$$),
  ('wrong-typed fields', $$'{"refresh_token": null, "client_secret": 1, "instance_url": [], "api_key": {}}'$$)
), edges AS (
  SELECT * FROM edge
  UNION ALL SELECT t, j.label, j.expr FROM json_edge j, (VALUES ('jsonb'), ('json')) v(t)
), dflt(typ, expr) AS (VALUES
  ('text', $$'salesforce'$$), ('uuid', $$'00000000-0000-4000-8000-0000000000e1'$$),
  ('smallint', '10'), ('integer', '10'), ('bigint', '10'),
  ('timestamp with time zone', $$'2100-01-01 00:00:00+00'$$),
  ('boolean', 'true'), ('jsonb', $$'{}'$$), ('json', $$'{}'$$),
  ('bytea', $$convert_to('{"access_token": "made-up"}', 'UTF8')$$)
), fn AS (
  SELECT p.oid, p.oid::regprocedure::text AS sig, p.prokind, p.proname,
         format('%I.%I', n.nspname, p.proname) AS qname
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname = 'sdr_creds' AND p.prokind IN ('f', 'p')
), arg AS (            -- input arguments: k (1-based among inputs), pos (among all)
  SELECT fn.oid, a.k, format_type(a.t, NULL) AS typ,
         coalesce(nullif(p.proargnames[x.pos], ''), '$' || a.k) AS name,
         coalesce(pg_get_function_arg_default(fn.oid, x.pos::integer), d.expr, 'NULL') AS def
    FROM fn JOIN pg_proc p ON p.oid = fn.oid
   CROSS JOIN LATERAL unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, k)
   CROSS JOIN LATERAL (
         SELECT CASE WHEN p.proargmodes IS NULL THEN a.k ELSE
                  (SELECT m.i FROM (SELECT i, row_number() OVER (ORDER BY i) AS r
                                      FROM generate_subscripts(p.proargmodes, 1) i
                                     WHERE p.proargmodes[i] IN ('i', 'b', 'v')) m
                    WHERE m.r = a.k) END AS pos) x
    LEFT JOIN dflt d ON d.typ = format_type(a.t, NULL)
), variation AS (      -- (function, varied position or 0 for all-NULL, label, value)
  SELECT a.oid, a.k, a.name || '=' || coalesce(e.label, 'NULL, unknown type ' || a.typ) AS label,
         coalesce(e.expr, 'NULL') AS expr
    FROM arg a LEFT JOIN edges e ON e.typ = a.typ
  UNION ALL SELECT oid, 0, 'all NULL', NULL FROM fn
), calls AS (
  SELECT fn.sig, fn.prokind, v.k = 0 AS all_null,
         fn.proname || '(' || CASE WHEN EXISTS (SELECT FROM arg a WHERE a.oid = fn.oid)
                                   THEN v.label ELSE '' END || ')' AS label,
         CASE fn.prokind WHEN 'p' THEN 'CALL ' ELSE 'SELECT ' END || fn.qname || '(' ||
         coalesce((SELECT string_agg(format('(%s)::%s',
                            CASE WHEN v.k = 0 THEN 'NULL' WHEN a.k = v.k THEN v.expr ELSE a.def END,
                            a.typ), ', ' ORDER BY a.k)
                     FROM arg a WHERE a.oid = fn.oid), '') || ')' AS stmt
    FROM fn JOIN variation v ON v.oid = fn.oid
)
SELECT DISTINCT ON (stmt) sig, prokind, label, stmt
  FROM calls ORDER BY stmt, all_null, label;
SQL
# Argument types without edge values (reported once, calls still made with NULL).
unknown=$(q -d "$db" -c "
  SELECT string_agg(DISTINCT p.oid::regprocedure::text || ': ' || format_type(t, NULL), '; ')
    FROM pg_proc p, unnest(p.proargtypes::oid[]) t
   WHERE p.pronamespace = 'sdr_creds'::regnamespace AND p.prokind IN ('f', 'p')
     AND format_type(t, NULL) NOT IN ('text', 'uuid', 'smallint', 'integer', 'bigint',
         'timestamp with time zone', 'boolean', 'jsonb', 'json', 'bytea')")
sort -t $'\t' -k1,1 -k3,3 -o "$work/calls" "$work/calls"
ncalls=$(wc -l < "$work/calls")
nfuncs=$(cut -f1 "$work/calls" | sort -u | wc -l)

# The script: every call under every (role, org context) variant, each preceded
# by a "-- call N" marker so a run cut short by a dead backend resumes after N.
variants=("superuser:" "superuser:org" "$app:" "$app:org" "$readme:" "$readme:org")
: > "$work/manifest"
{
  id=0
  for v in "${variants[@]}"; do
    role=${v%%:*}; ctx=${v#*:}
    while IFS=$'\t' read -r sig kind label stmt; do
      id=$((id + 1))
      printf '%s\t%s\t%s\t%s\t%s\n' "$id" "$sig" "$role" "${ctx:-no org}" "$label" >> "$work/manifest"
      echo "-- call $id"
      setrole=""; [ "$role" != superuser ] && setrole="SET LOCAL ROLE $role;"
      if [ -z "$ctx" ] && [ "$kind" = p ]; then
        # a procedure may COMMIT: call it outside a transaction block
        [ "$role" != superuser ] && echo "SET ROLE $role;"
        echo "$stmt;"
        echo "\\echo R $id :SQLSTATE :LAST_ERROR_MESSAGE"
        echo "RESET ROLE;"
        echo "\\echo E $id"
        continue
      fi
      echo "BEGIN;"
      if [ -n "$ctx" ]; then
        echo "SELECT sdr_creds.create_api_key('$org', 'arguments') ->> 'key' AS k \\gset"
        echo "$setrole"
        echo "SELECT sdr_creds.authenticate(:'k');"
        echo "\\echo A $id :SQLSTATE"
        echo "\\unset k"
      else
        echo "$setrole"
      fi
      echo "$stmt;"
      echo "\\echo R $id :SQLSTATE :LAST_ERROR_MESSAGE"
      echo "ROLLBACK;"
      echo "\\echo E $id"
    done < "$work/calls"
  done
} > "$work/script.sql"
total=$(wc -l < "$work/manifest")
header='\o /dev/null
SET client_min_messages = warning;
SET statement_timeout = '"'5s'"';'

# Run; when the backend dies psql exits. The culprit is the last call that
# answered (R) if its clean-up did not end (E), else the one after it: record
# it, wait for the server to be back, resume after it.
start=1; runs=0
: > "$work/out"; : > "$work/crashed"
while [ "$start" -le "$total" ] && [ "$runs" -lt 50 ]; do
  runs=$((runs + 1))
  { echo "$header"; sed -n "/^-- call $start\$/,\$p" "$work/script.sql"; } |
    psql -X -q -d "$db" -f - >> "$work/out" 2>> "$work/err"
  last_r=$(awk '$1 == "R" { n = $2 } END { print n + 0 }' "$work/out")
  last_e=$(awk '$1 == "E" { n = $2 } END { print n + 0 }' "$work/out")
  [ "$last_e" -ge "$total" ] && break
  if [ "$last_r" -lt "$start" ]; then culprit=$start
  elif [ "$last_e" -lt "$last_r" ]; then culprit=$last_r
  else culprit=$((last_r + 1)); fi
  echo "$culprit" >> "$work/crashed"
  start=$((culprit + 1))
  up=0
  for _ in $(seq 300); do
    if psql -X -q -d "$db" -c 'SELECT 1' >/dev/null 2>&1; then up=1; break; fi
    sleep 0.1
  done
  [ "$up" = 1 ] || break
done

# Verdicts: per call "crash", "XX...", "timeout" or "" (clean); per function.
LC_ALL=C awk -F'\t' -v out="$work/out" -v crashed="$work/crashed" '
  BEGIN {
    while ((getline line < out) > 0) {
      split(line, w, " ")
      if (w[1] == "R") { state[w[2]] = w[3]; msg = line; sub(/^R [0-9]+ [^ ]* ?/, "", msg); text[w[2]] = msg }
      if (w[1] == "A") auth[w[2]] = w[3]
    }
    while ((getline line < crashed) > 0) crash[line] = 1
  }
  {
    id = $1; sig = $2; bad = ""
    if (id in crash) bad = "the backend died"
    else if (!(id in state)) bad = "no result (not run)"
    else if (state[id] ~ /^XX/) bad = "internal error " state[id] ": " substr(text[id], 1, 160)
    else if (state[id] == "57014") bad = "did not return within 5 s (57014)"
    else if ((id in auth) && auth[id] != "00000") bad = "authenticating first failed with " auth[id]
    n[sig]++
    if (bad != "") { nbad[sig]++; detail[sig] = detail[sig] "# " $5 " as " $3 ", " $4 ": " bad "\n" }
    if (!(sig in order)) { order[sig] = ++nsig; name[nsig] = sig }
  }
  END {
    for (i = 1; i <= nsig; i++) {
      s = name[i]
      if (nbad[s] == 0) printf "ok - arguments: %s, %d calls, each returned or failed cleanly\n", s, n[s]
      else { printf "not ok - arguments: %s, %d of %d calls crashed, failed internally or hung\n", s, nbad[s], n[s]; printf "%s", detail[s] }
    }
  }' "$work/manifest" > "$work/verdicts"
cat "$work/verdicts"
failures=$((failures + $(grep -c '^not ok' "$work/verdicts")))

crashes=$(wc -l < "$work/crashed")
answered=$(grep -c '^R ' "$work/out")
check "arguments: $nfuncs routines of schema sdr_creds from pg_proc, $ncalls argument tuples x ${#variants[@]} role/org variants = $total calls, $answered answered, $crashes lost the backend" \
  [ "$nfuncs" -gt 0 -a "$answered" = "$total" -a "$crashes" = 0 ]
check "arguments: the generator has edge values for every argument type${unknown:+ (unknown: $unknown)}" [ -z "$unknown" ]
alive() { [ "$(q -d "$db" -c 'SELECT 1' 2>/dev/null)" = 1 ]; }
check "arguments: the server accepts connections after all calls" alive
tail -c +"$((log_start + 1))" "$log" > "$work/log"
check "arguments: no backend terminated by a signal (postmaster log)" \
  not grep -a -q -E "terminated by signal|server process .* was terminated" "$work/log"
grep -a -E "terminated by signal" "$work/log" | head -5 | sed 's/^/# /'
exit $((failures > 0))
