#!/usr/bin/env bash
# Starts and stops a throwaway PostgreSQL cluster for the demo, the tests and the
# benchmarks. The cluster runs as an unprivileged user (postgres when invoked as
# root), lives entirely under DIR, listens on 127.0.0.1 and on a socket in DIR,
# and reads a freshly generated keyring from DIR/keys.
#
#   test/cluster.sh start DIR [PORT]   # prints the PG* variables to export
#   test/cluster.sh stop DIR
#   test/cluster.sh restart DIR
#   test/cluster.sh standby DATADIR SOCKDIR PORT LOG   # prints the port it started on
set -euo pipefail
cmd=${1:?usage: cluster.sh start|stop|restart DIR [PORT]}
dir=${2:?usage: cluster.sh start|stop|restart DIR [PORT]}
port=${3:-54329}
# SDR_PG_ROOT: a private copy of the PostgreSQL tree (see test/all.sh), so
# several checkouts can install and test their builds side by side.
bindir=${SDR_PG_ROOT:-}$(pg_config --bindir)

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# SDR_PG_ENV: extra environment for the server (e.g. LD_PRELOAD of a sanitizer runtime).
pg_ctl_env() { as_owner env ${SDR_PG_ENV:-} "$bindir/pg_ctl" "$@"; }

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

case "$cmd" in
start)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  chmod 700 "$dir"
  as_owner mkdir -p "$dir/keys"
  # main.keyring: versions 1 and 2 (2 encrypts); v1.keyring: only version 1;
  # wrong.keyring: the same versions with other bytes; open.keyring: mode 0644.
  k1=$(random_hex 32); k2=$(random_hex 32)
  as_owner sh -c "umask 077
    printf '# sdr_creds keyring: version key-hex\n1 %s\n2 %s\n' $k1 $k2 > '$dir/keys/main.keyring'
    printf '1 %s\n' $k1 > '$dir/keys/v1.keyring'
    printf '1 %s\n2 %s\n' $(random_hex 32) $(random_hex 32) > '$dir/keys/wrong.keyring'
    printf '1 %s\n' $k1 > '$dir/keys/open.keyring'; chmod 644 '$dir/keys/open.keyring'
    printf 'not a keyring\n' > '$dir/keys/malformed.keyring'"
  unset k1 k2
  jwt=$(random_hex 32)
  as_owner sh -c "umask 077; printf '%s' $jwt > '$dir/keys/jwt_secret'"
  as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
  as_owner sh -c "cat >> '$dir/data/postgresql.conf'" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 100
fsync = off
log_line_prefix = '%m [%p] %q%u@%d '
shared_preload_libraries = 'sdr_creds, pg_stat_statements'
sdr_creds.keyring_file = '$dir/keys/main.keyring'
sdr_creds.jwt_secret = '$jwt'
CONF
  pg_ctl_env -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null
  echo "export PGHOST='$dir' PGPORT=$port PGUSER=postgres PGDATABASE=postgres"
  ;;
stop)
  [ -f "$dir/data/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
  ;;
restart)
  pg_ctl_env -D "$dir/data" -l "$dir/postgres.log" -m fast -w -t 60 restart >/dev/null
  ;;
standby)
  # DIR is the data directory of a pg_basebackup -R copy: start it on a socket
  # in SOCKDIR and on 127.0.0.1 at the first free port from PORT. The port can
  # be taken between the check and the start (by a test run beside this one):
  # try the next ones.
  sockdir=${3:?usage: cluster.sh standby DATADIR SOCKDIR PORT LOG}
  port=${4:?usage: cluster.sh standby DATADIR SOCKDIR PORT LOG}
  log=${5:?usage: cluster.sh standby DATADIR SOCKDIR PORT LOG}
  for _ in 1 2 3 4 5; do
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
    printf "port = %s\nunix_socket_directories = '%s'\n" "$port" "$sockdir" | as_owner sh -c "cat >> '$dir/postgresql.conf'"
    if pg_ctl_env -D "$dir" -l "$log" -w -t 60 start >/dev/null; then echo "$port"; exit 0; fi
    tail -3 "$log" 2>/dev/null | sed 's/^/# standby: /' >&2
    port=$((port + 1))
  done
  exit 1
  ;;
*) echo "usage: cluster.sh start|stop|restart|standby DIR [PORT]" >&2; exit 2 ;;
esac
