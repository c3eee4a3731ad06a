/* sdr_creds_server: the HTTP front of the sdr_creds extension. Reads flags
 * and environment, opens the database pool, starts the HTTP server, waits
 * for SIGTERM or SIGINT, then stops gracefully: no new connections, requests
 * in flight finish, database connections close, exit 0. */
#include "pool.h"
#include "http.h"
#include "log.h"
#include "refresh.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_TIMEOUT_MS	10000	/* then statements in flight are cancelled */
#define CANCEL_GRACE_MS		5000

static const char usage[] =
"Usage: sdr_creds_server [OPTION]...\n"
"HTTP API for the sdr_creds PostgreSQL extension (one database round trip per request).\n"
"\n"
"  --listen ADDR        numeric IPv4/IPv6 address to listen on (default 127.0.0.1)\n"
"                       env SDR_CREDS_LISTEN\n"
"  --port N             TCP port, 0 for any free port (default 8080)\n"
"                       env SDR_CREDS_PORT\n"
"  --db CONNINFO        libpq connection string or URI; default env SDR_CREDS_DB,\n"
"                       else libpq's PGHOST, PGPORT, PGDATABASE, PGUSER, ...\n"
"  --db-read CONNINFO   where GETs go: a standby's connection string, or a libpq\n"
"                       multi-host one (target_session_attrs=prefer-standby);\n"
"                       reads it cannot answer go to --db (default none)\n"
"                       env SDR_CREDS_DB_READ\n"
"  --db-listen CONNINFO where POST .../refresh LISTENs for refreshes: a session\n"
"                       on the primary, so PostgreSQL itself when --db is a\n"
"                       transaction-pooling PgBouncer (default --db)\n"
"                       env SDR_CREDS_DB_LISTEN\n"
"  --no-prepare         send each statement with its text, unnamed, instead of\n"
"                       preparing them once per connection: for PgBouncer in\n"
"                       transaction mode before 1.21  env SDR_CREDS_NO_PREPARE=1\n"
"  --pool N             database connections; each sends the requests waiting\n"
"                       in one pipeline (default CPUs / 2, from 2 to 8)\n"
"                       env SDR_CREDS_POOL\n"
"  --log-level LEVEL    error, info (adds one access line per request) or debug\n"
"                       (default info)  env SDR_CREDS_LOG_LEVEL\n"
"  --max-body BYTES     larger request bodies get 413 (default 65536)\n"
"                       env SDR_CREDS_MAX_BODY\n"
"  --max-header BYTES   larger header blocks get 431 (default 8192)\n"
"                       env SDR_CREDS_MAX_HEADER\n"
"  --max-connections N  HTTP connections open at once; more are closed as they\n"
"                       arrive (default 4096; lowered to fit the open-files\n"
"                       limit)  env SDR_CREDS_MAX_CONNECTIONS\n"
"  --max-per-addr N     connections one client address may hold at once, of\n"
"                       --max-connections; more are closed at once\n"
"                       (default 64, 0 = no limit)  env SDR_CREDS_MAX_PER_ADDR\n"
"  --request-deadline SECS\n"
"                       time a client has to send a whole request, head and\n"
"                       body, counted from connecting or from the previous\n"
"                       response on a kept-alive connection; then the\n"
"                       connection is closed (default 10)\n"
"                       env SDR_CREDS_REQUEST_DEADLINE\n"
"  --trust-forwarded-for\n"
"                       record the last X-Forwarded-For address as the client's\n"
"                       in the database's audit lines and statistics (only\n"
"                       behind a proxy that sets it)  env SDR_CREDS_TRUST_FORWARDED_FOR=1\n"
"  --refresh-wait SECS  how long POST /integration-credentials/{id}/refresh\n"
"                       waits for a refresher before answering 202 (default 10)\n"
"                       env SDR_CREDS_REFRESH_WAIT\n"
"  --help               show this help\n"
"\n"
"GET /metrics serves Prometheus metrics without authentication (no org ids or\n"
"key prefixes): keep the server on loopback or behind the proxy.\n"
"Logs go to stderr. SIGTERM or SIGINT stops accepting connections, lets requests\n"
"in flight finish (cancelling statements still running after 10 s) and exits 0.\n";

/* Parses a whole decimal number in [min, max]; -1 if invalid. */
static long
parse_num(const char *name, const char *s, long min, long max)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < min || v > max)
	{
		fprintf(stderr, "sdr_creds_server: %s must be a number from %ld to %ld\n", name, min, max);
		return -1;
	}
	return v;
}

static int
parse_level(const char *s)
{
	if (strcmp(s, "error") == 0)
		return LOG_ERROR;
	if (strcmp(s, "info") == 0)
		return LOG_INFO;
	if (strcmp(s, "debug") == 0)
		return LOG_DEBUG;
	fprintf(stderr, "sdr_creds_server: log level must be error, info or debug\n");
	return -1;
}

static long
cpu_count(void)
{
	long		cpus = sysconf(_SC_NPROCESSORS_ONLN);

	return cpus < 1 ? 1 : cpus;
}

/* One connection per two CPUs: a connection's pipeline keeps a backend busy,
 * and fewer connections make bigger batches (cheaper per request). At least
 * two, so a batch held up by a lock does not hold up everything. */
static long
default_pool(void)
{
	long		n = cpu_count() / 2;

	return n < 2 ? 2 : n > 8 ? 8 : n;
}

static const char *
env_or(const char *name, const char *fallback)
{
	const char *v = getenv(name);

	return v && *v ? v : fallback;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Waits up to ms for the requests in flight to finish; true if they did. */
static bool
wait_idle(int ms)
{
	double		deadline = now_ms() + ms;

	while (http_in_flight() > 0)
	{
		if (now_ms() >= deadline)
			return false;
		sleep_ms(10);
	}
	return true;
}

/* The settings: each a flag, an environment variable and a default. */
enum setting
{
	S_LISTEN, S_PORT, S_DB, S_DB_READ, S_DB_LISTEN, S_NO_PREPARE, S_POOL, S_LOG_LEVEL, S_MAX_BODY, S_MAX_HEADER, S_MAX_CONNECTIONS,
	S_MAX_PER_ADDR,
	S_REQUEST_DEADLINE, S_TRUST_FORWARDED_FOR, S_REFRESH_WAIT, S_COUNT
};

static struct
{
	const char *flag;
	const char *env;
	const char *value;			/* NULL: computed (the pool size, --db-listen) */
	bool		is_switch;		/* takes no argument: "1" when given */
}			settings[S_COUNT] = {
	[S_LISTEN] = {"listen", "SDR_CREDS_LISTEN", "127.0.0.1"},
	[S_PORT] = {"port", "SDR_CREDS_PORT", "8080"},
	[S_DB] = {"db", "SDR_CREDS_DB", ""},
	[S_DB_READ] = {"db-read", "SDR_CREDS_DB_READ", ""},
	[S_DB_LISTEN] = {"db-listen", "SDR_CREDS_DB_LISTEN", NULL},	/* NULL: --db */
	[S_NO_PREPARE] = {"no-prepare", "SDR_CREDS_NO_PREPARE", "0", true},
	[S_POOL] = {"pool", "SDR_CREDS_POOL", NULL},
	[S_LOG_LEVEL] = {"log-level", "SDR_CREDS_LOG_LEVEL", "info"},
	[S_MAX_BODY] = {"max-body", "SDR_CREDS_MAX_BODY", "65536"},
	[S_MAX_HEADER] = {"max-header", "SDR_CREDS_MAX_HEADER", "8192"},
	[S_MAX_CONNECTIONS] = {"max-connections", "SDR_CREDS_MAX_CONNECTIONS", "4096"},
	[S_MAX_PER_ADDR] = {"max-per-addr", "SDR_CREDS_MAX_PER_ADDR", "64"},
	[S_REQUEST_DEADLINE] = {"request-deadline", "SDR_CREDS_REQUEST_DEADLINE", "10"},
	[S_TRUST_FORWARDED_FOR] = {"trust-forwarded-for", "SDR_CREDS_TRUST_FORWARDED_FOR", "0", true},
	[S_REFRESH_WAIT] = {"refresh-wait", "SDR_CREDS_REFRESH_WAIT", "10", false},
};

/* Reads the environment, then the flags; 0, 1 after --help, or 2 (usage error). */
static int
read_settings(int argc, char **argv)
{
	struct option options[S_COUNT + 2];
	int			opt;

	for (int i = 0; i < S_COUNT; i++)
	{
		settings[i].value = env_or(settings[i].env, settings[i].value);
		options[i] = (struct option) {settings[i].flag,
			settings[i].is_switch ? no_argument : required_argument, NULL, i};
	}
	options[S_COUNT] = (struct option) {"help", no_argument, NULL, 'h'};
	options[S_COUNT + 1] = (struct option) {NULL, 0, NULL, 0};
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1)
	{
		if (opt >= 0 && opt < S_COUNT)
			settings[opt].value = settings[opt].is_switch ? "1" : optarg;
		else
		{
			fputs(usage, opt == 'h' ? stdout : stderr);
			return opt == 'h' ? 1 : 2;
		}
	}
	if (optind < argc)
	{
		fputs(usage, stderr);
		return 2;
	}
	return 0;
}

static long
setting_num(enum setting s, long min, long max)
{
	char		name[32];

	snprintf(name, sizeof name, "--%s", settings[s].flag);
	return parse_num(name, settings[s].value, min, max);
}

/* The HTTP configuration and pool size from the settings; false if one is invalid (said). */
static bool
configure(struct http_config *config, long *pool_size)
{
	long		port = setting_num(S_PORT, 0, 65535);
	long		body = setting_num(S_MAX_BODY, 1, 64L << 20);
	long		header = setting_num(S_MAX_HEADER, 1024, 1L << 20);
	long		conns = setting_num(S_MAX_CONNECTIONS, 1, 1000000);
	long		per_addr = setting_num(S_MAX_PER_ADDR, 0, 65535);
	long		deadline = setting_num(S_REQUEST_DEADLINE, 1, 3600);
	long		forwarded = setting_num(S_TRUST_FORWARDED_FOR, 0, 1);

	log_level = parse_level(settings[S_LOG_LEVEL].value);
	*pool_size = settings[S_POOL].value ? setting_num(S_POOL, 1, 1000) : default_pool();
	if (log_level < 0 || port < 0 || *pool_size < 0 || body < 0 || header < 0 ||
		conns < 0 || per_addr < 0 || deadline < 0 || forwarded < 0)
		return false;
	config->listen = settings[S_LISTEN].value;
	config->port = (int) port;
	config->max_body = (size_t) body;
	config->max_header = (size_t) header;
	/* a worker never waits for the database: one per CPU, up to 16 */
	config->threads = (int) cpu_count();
	if (config->threads > 16)
		config->threads = 16;
	config->max_connections = (int) conns;
	config->max_per_addr = (int) per_addr;
	config->request_deadline = (int) deadline;
	config->trust_forwarded_for = forwarded == 1;
	return true;
}

/* Raises the open-files limit to what max_connections needs (one descriptor
 * each, plus the pool's and a few of the server's own), as far as the hard
 * limit allows; lowers max_connections to fit if it cannot. */
static void
fit_descriptors(struct http_config *config, long pool_size)
{
	struct rlimit lim;
	rlim_t		spare = (rlim_t) pool_size + 64;
	rlim_t		want = (rlim_t) config->max_connections + spare;

	if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
		return;
	if (lim.rlim_cur < want)
	{
		lim.rlim_cur = lim.rlim_max == RLIM_INFINITY || lim.rlim_max > want ? want : lim.rlim_max;
		setrlimit(RLIMIT_NOFILE, &lim);
		getrlimit(RLIMIT_NOFILE, &lim);
	}
	if (lim.rlim_cur < want)
	{
		config->max_connections = lim.rlim_cur > spare + 16 ? (int) (lim.rlim_cur - spare) : 16;
		log_msg(LOG_ERROR, "open-files limit %llu: --max-connections lowered to %d",
				(unsigned long long) lim.rlim_cur, config->max_connections);
	}
}

/* After SIGTERM or SIGINT: no new connections, requests in flight finish. */
static void
stop_gracefully(int sig)
{
	log_msg(LOG_INFO, "%s: stopping; %d request(s) in flight",
			sig == SIGINT ? "SIGINT" : "SIGTERM", http_in_flight());
	http_stop_accepting();
	refresh_stop_waiting();		/* waiting refreshes answer 202 now */
	if (!wait_idle(DRAIN_TIMEOUT_MS))
	{
		log_msg(LOG_ERROR, "requests still running after %d ms; cancelling their statements",
				DRAIN_TIMEOUT_MS);
		db_cancel_busy();
		wait_idle(CANCEL_GRACE_MS);
	}
	refresh_stop_waiting();
	db_close();					/* requests still coming get 503 */
	http_stop();
	refresh_stop();
	log_msg(LOG_INFO, "stopped");
	log_stop();
}

int
main(int argc, char **argv)
{
	struct http_config config;
	long		pool_size;
	long		refresh_wait;
	long		no_prepare;
	int			rc = read_settings(argc, argv);
	int			sig;
	int			bound;
	sigset_t	signals;

	if (rc != 0)
		return rc == 1 ? 0 : 2;
	if (!configure(&config, &pool_size) || (refresh_wait = setting_num(S_REFRESH_WAIT, 0, 300)) < 0 ||
		(no_prepare = setting_num(S_NO_PREPARE, 0, 1)) < 0)
		return 2;

	/* signals are taken by sigwait() below; every thread started from here
	 * on inherits the mask */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
	log_start();
	fit_descriptors(&config, pool_size);

	if (db_init(settings[S_DB].value, settings[S_DB_READ].value, (int) pool_size, no_prepare == 0) != 0)
	{
		log_msg(LOG_ERROR, "out of memory");
		log_stop();
		return 1;
	}
	if (refresh_start(settings[S_DB_LISTEN].value ?: settings[S_DB].value, (int) refresh_wait * 1000) != 0 ||
		(bound = http_start(&config)) < 0)
	{
		refresh_stop();
		db_close();
		log_stop();
		return 1;
	}
	log_msg(LOG_INFO, "listening on %s port %d (pool %ld)", config.listen, bound, pool_size);
	if (sigwait(&signals, &sig) != 0)
		sig = SIGTERM;
	stop_gracefully(sig);
	return 0;
}
