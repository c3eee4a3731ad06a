#!/usr/bin/env bash
# make install-services: installs sdr_creds_server and sdr_creds_refresher as
# systemd services. Enables and starts nothing: it prints the systemctl lines.
#
#   PREFIX   where the binaries go, PREFIX/bin (default /usr/local)
#   DESTDIR  a staging root prepended to every path (packaging, tests); with
#            it the sdr-creds user is not created unless SDR_SERVICES_CREATE_USER=1
#
# Installs PREFIX/bin/sdr_creds_server and sdr_creds_refresher, the units in
# /etc/systemd/system (ExecStart pointing at PREFIX/bin), the system user
# sdr-creds (no home, no shell), and /etc/sdr_creds/server.env and
# refresher.env from the examples, mode 0600, only if absent: an existing
# environment file is never overwritten.
set -euo pipefail
cd "$(dirname "$0")/../.."
prefix=${PREFIX:-/usr/local}
dest=${DESTDIR:-}
bindir="$prefix/bin"
unitdir="$dest/etc/systemd/system"
confdir="$dest/etc/sdr_creds"
user=sdr-creds

for b in src/server/sdr_creds_server src/refresher/sdr_creds_refresher; do
  [ -x "$b" ] || { echo "install-services: $b is not built (make server refresher)" >&2; exit 1; }
done
install -d -m 755 "$dest$bindir" "$unitdir"
install -m 755 src/server/sdr_creds_server src/refresher/sdr_creds_refresher "$dest$bindir/"
for unit in sdr-creds-server sdr-creds-refresher; do
  sed "s|@BINDIR@|$bindir|g" "contrib/systemd/$unit.service" > "$unitdir/$unit.service.tmp"
  chmod 644 "$unitdir/$unit.service.tmp"
  mv "$unitdir/$unit.service.tmp" "$unitdir/$unit.service"
done

if [ -z "$dest" ] || [ "${SDR_SERVICES_CREATE_USER:-0}" = 1 ]; then
  if ! getent passwd "$user" >/dev/null; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin --comment "sdr_creds services" "$user"
    echo "install-services: created the system user $user"
  fi
else
  echo "install-services: DESTDIR set: create the user where the units run:"
  echo "  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin $user"
fi

install -d -m 755 "$confdir"
for f in server refresher; do
  if [ -e "$confdir/$f.env" ]; then
    echo "install-services: $confdir/$f.env exists: kept as it is"
  else
    install -m 600 "contrib/systemd/$f.env.example" "$confdir/$f.env"
    echo "install-services: wrote $confdir/$f.env from the example: edit its connection string"
  fi
done

cat <<MSG
install-services: installed $dest$bindir/sdr_creds_server, $dest$bindir/sdr_creds_refresher and
  $unitdir/sdr-creds-server.service, sdr-creds-refresher.service
Edit /etc/sdr_creds/server.env and refresher.env, then:
  systemctl daemon-reload
  systemctl enable --now sdr-creds-server.service
  systemctl enable --now sdr-creds-refresher.service
MSG
