#!/usr/bin/env bash
# Failover tests: a primary and a synchronous standby of their own (under the
# suite's work directory, on ports of their own), the HTTP server with a
# multi-host --db under load while the primary is SIGKILLed and the standby
# promoted, then the old primary rewound (pg_rewind) as a standby of the new
# one. Called by test/run.sh with PGHOST, PGPORT (the shared cluster's: its
# port is only where this suite starts looking for free ones), SDR_SERVER and
# SDR_REFRESHER exported. Prints one "ok - ..." / "not ok - ..." line per test.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../suite.sh" failover "$here/test_failover.py" 300 PGPORT SDR_SERVER SDR_REFRESHER
