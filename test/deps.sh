#!/usr/bin/env bash
# Installs the Debian 12 packages that building, testing and the demo need,
# running apt-get only when something is missing.
set -euo pipefail
pkgs=(gcc make pkg-config postgresql-15 postgresql-contrib postgresql-server-dev-15
      libpq-dev libsodium-dev libmicrohttpd-dev libcurl4-openssl-dev python3 python3-requests curl
      python3-prometheus-client python3-jsonschema clang libclang-rt-14-dev wrk gnuplot-nox
      libssl-dev python3-jwt python3-cryptography pgbouncer systemd
      openssl)   # openssl: the refresher tests' throwaway CA and keys
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
