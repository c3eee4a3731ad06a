#!/usr/bin/env bash
# Runs one Python test suite for test/run.sh: checks that the variables it
# needs are set, gives it a work directory of its own (SDR_REFRESH_WORK, mode
# 755: suites run processes as other users from it; removed afterwards), and
# bounds it in time. Prints the suite's "ok - ..." / "not ok - ..." lines;
# exits with its status.
#
#   test/suite.sh NAME SCRIPT.py CAP_SECONDS VAR...
set -uo pipefail
name=$1 script=$2 cap=$3
shift 3
for v in "$@"; do
  if [ -z "${!v:-}" ]; then echo "not ok - $name: $v is not set"; exit 1; fi
done
work=$(mktemp -d "/tmp/sdr_$name.XXXXXX")
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
export SDR_REFRESH_WORK="$work"
timeout --kill-after=10 "$cap" /usr/bin/python3 -B "$script"
rc=$?
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "not ok - $name: suite timed out"; fi
exit $rc
