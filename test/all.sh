#!/usr/bin/env bash
# make test: builds with -Wall -Wextra -Werror and runs every test twice, on a
# plain build and on a sanitizer build (UBSan in the extension, ASan and UBSan
# in the HTTP server), each against its own throwaway cluster; ends with
# "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
results=$(mktemp /tmp/sdr_creds_results.XXXXXX)
export SDR_RESULTS=$results

build() {
  make -s clean >/dev/null 2>&1
  make -s "$@" all server >/dev/null && make -s "$@" install >/dev/null
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
