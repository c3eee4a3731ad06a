#!/usr/bin/env bash
# make test: builds with -Wall -Wextra -Werror and runs every test twice, on a
# plain build and on a sanitizer build (UBSan in the extension, ASan and UBSan
# in the HTTP server), each against its own throwaway cluster; ends with
# "N passed, N failed".
#
# SDR_PG_ROOT=DIR installs into a copy of the PostgreSQL tree under DIR instead
# of the system's (PostgreSQL finds its files relative to its binary), so two
# checkouts on one machine do not overwrite each other's build:
#   mkdir -p DIR/usr/lib/postgresql DIR/usr/share/postgresql
#   cp -a /usr/lib/postgresql/15 DIR/usr/lib/postgresql/
#   cp -a /usr/share/postgresql/15 DIR/usr/share/postgresql/
set -uo pipefail
cd "$(dirname "$0")/.."
results=$(mktemp /tmp/sdr_creds_results.XXXXXX)
export SDR_RESULTS=$results

build() {
  make -s clean >/dev/null 2>&1
  make -s "$@" all server refresher >/dev/null && make -s "$@" install ${SDR_PG_ROOT:+DESTDIR=$SDR_PG_ROOT} >/dev/null
}

for pass in plain sanitizers; do
  echo "# ---- $pass build"
  flags=(); [ $pass = sanitizers ] && flags=(SANITIZE=1)
  if build "${flags[@]}"; then
    test/run.sh $pass
  else
    echo "not ok - $pass build (-Wall -Wextra -Werror)" | tee -a "$results"
  fi
done
build || echo "not ok - reinstalling the plain build" | tee -a "$results"

passed=$(grep -c '^ok ' "$results")
failed=$(grep -c '^not ok ' "$results")
rm -f "$results"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
