# Shared by the security tests: TAP-style result lines and a scratch database.
# Expects PGHOST/PGPORT/PGUSER and SDR_CLUSTER_DIR from test/run.sh.
failures=0
ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; failures=$((failures + 1)); }
not() { ! "$@"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 "$@"; }
fresh_db() {
  dropdb --if-exists "$1" >/dev/null 2>&1
  createdb "$1" && q -d "$1" -c "CREATE EXTENSION sdr_creds CASCADE" >/dev/null 2>&1
}
# as root, the data directory belongs to postgres; grep it as that user or root alike
data_has() { grep -r -a -l -F -- "$1" "$SDR_CLUSTER_DIR/data" >/dev/null 2>&1; }
log_has() { grep -a -q -F -- "$1" "$SDR_CLUSTER_DIR/postgres.log"; }
