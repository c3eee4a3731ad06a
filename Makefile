# sdr_creds: PostgreSQL extension (PGXS) and its HTTP server.
#
#   make demo    throwaway cluster + server + demo data (installs what is missing)
#   make test    every test against a throwaway cluster; ends "N passed, N failed"
#   make bench   performance ratios (pgbench, wrk) against plaintext ceilings, on a throwaway cluster;
#                figures and a PNG chart in bench-results/ (or BENCH_OUT)
#   make fuzz    run each libFuzzer harness for FUZZ_SECONDS (default 60)
#   make install build and install the extension into the server found by pg_config
#   make refresher  the token refresher, src/refresher/sdr_creds_refresher
#   make install-services  the server and the refresher as systemd services
#                (PREFIX, default /usr/local; DESTDIR): binaries, units, the
#                sdr-creds user, /etc/sdr_creds/*.env if absent (contrib/systemd/)

EXTENSION  = sdr_creds
MODULE_big = sdr_creds
OBJS       = src/json.o src/metadata.o src/results.o src/statements.o src/redact.o src/settings.o \
             src/keyring.o src/crypto.o src/jwt.o src/jwk.o src/org_context.o src/usage.o src/monitor.o \
             src/rows.o src/api_keys.o src/issuers.o src/auth.o src/oauth_clients.o src/refresh.o \
             src/credentials.o src/sdr_creds.o
DATA       = sql/sdr_creds--1.0.sql sql/sdr_creds--1.0--1.1.sql sql/sdr_creds--1.1--1.2.sql
REGRESS    = setup crypto auth credentials isolation context privileges keyring usage refresh
REGRESS_OPTS = --dbname=sdr_creds_regress
ISOLATION  = revoke_uncached revoke_cached key_expiry key_delete revoke_rollback revoke_replica key_churn store_upsert refresh_claim issuer_rotate
ISOLATION_OPTS = --load-extension=pgcrypto --load-extension=sdr_creds
SHLIB_LINK = -lsodium -lcrypto
PG_CPPFLAGS = -Isrc
PG_CFLAGS  = -Wall -Wextra -Werror -Wno-unused-parameter
# SANITIZE=1: UBSan in the extension (ASan cannot run inside a backend that
# longjmps out of errors unless its runtime is preloaded, and preloading it
# deadlocks postgres at start-up); ASan and UBSan in the HTTP server. The
# extension's parsers run under ASan in the fuzz harnesses.
ifdef SANITIZE
PG_CFLAGS += -fsanitize=undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SHLIB_LINK += -fsanitize=undefined
SERVER_CFLAGS_EXTRA = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
endif
EXTRA_CLEAN = $(SERVER) $(REFRESHER) $(OPENAPI_H) src/server/*.o results regression.diffs regression.out

SERVER      = src/server/sdr_creds_server
SERVER_SRCS = $(wildcard src/server/*.c)
SERVER_CFLAGS = -O2 -g -Wall -Wextra -Werror -std=gnu11 -I$(shell $(PG_CONFIG) --includedir 2>/dev/null)
# the extension's version, from the control file (the server reports it in
# /metrics and as info.version of /openapi.json)
SDR_VERSION := $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" sdr_creds.control)
SERVER_CFLAGS += -DSDR_CREDS_VERSION='"$(SDR_VERSION)"'
# GET /openapi.json: src/server/openapi.json as a C string literal, one line of
# the document per line, with the version put in
OPENAPI_H = src/server/openapi_json.h


PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
endif

$(OPENAPI_H): src/server/openapi.json sdr_creds.control
	sed -e 's/@SDR_CREDS_VERSION@/$(SDR_VERSION)/g' -e 's/\\/\\\\/g' -e 's/"/\\"/g' \
	    -e 's/^/"/' -e 's/$$/\\n"/' $< > $@.tmp && mv $@.tmp $@

$(SERVER): $(SERVER_SRCS) $(wildcard src/server/*.h) $(OPENAPI_H) sdr_creds.control
	$(CC) $(SERVER_CFLAGS) $(SERVER_CFLAGS_EXTRA) -o $@ $(SERVER_SRCS) -L$(shell $(PG_CONFIG) --libdir) -lpq -lmicrohttpd

server: $(SERVER)

# The token refresher (libpq + libcurl), a process beside the server.
REFRESHER      = src/refresher/sdr_creds_refresher
REFRESHER_SRCS = $(wildcard src/refresher/*.c)

$(REFRESHER): $(REFRESHER_SRCS) $(wildcard src/refresher/*.h)
	$(CC) $(SERVER_CFLAGS) $(SERVER_CFLAGS_EXTRA) -o $@ $(REFRESHER_SRCS) -L$(shell $(PG_CONFIG) --libdir) -lpq -lcurl -lsodium

refresher: $(REFRESHER)

install-services: $(SERVER) $(REFRESHER)
	@contrib/systemd/install.sh

deps:
	@test/deps.sh

test: deps
	@test/all.sh

# With SDR_PG_ROOT set (see test/all.sh), installs into that copy of the
# PostgreSQL tree, whose binaries the bench's cluster runs.
bench: deps
	@$(MAKE) --no-print-directory all server
	@$(MAKE) --no-print-directory install $(if $(SDR_PG_ROOT),DESTDIR=$(SDR_PG_ROOT)) >/dev/null
	@test/bench/run.sh

FUZZ_SECONDS ?= 60
fuzz: deps
	@test/fuzz/run.sh fuzz $(FUZZ_SECONDS)

demo: deps
	@echo "== Building the extension, the HTTP server and the refresher"
	@$(MAKE) --no-print-directory -s all server refresher >/dev/null
	@$(MAKE) --no-print-directory install >/dev/null
	@test/demo.sh

.PHONY: server refresher install-services deps test demo fuzz bench
