/* The server's Prometheus metrics. Every counter is a C11 atomic bumped with
 * memory_order_relaxed: a scrape may see one request's counter and not yet
 * its histogram observation, which Prometheus tolerates. A histogram keeps
 * one count per bucket (not cumulative) and its sum in nanoseconds; the
 * scrape adds the buckets up, so +Inf always equals _count. */
#define _GNU_SOURCE				/* open_memstream */
#include "metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SDR_CREDS_VERSION
#define SDR_CREDS_VERSION "1.1"
#endif

static const double bounds[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5
};

#define NBOUNDS (sizeof bounds / sizeof bounds[0])

struct histogram
{
	atomic_ullong bucket[NBOUNDS + 1];	/* the last one is +Inf */
	atomic_ullong sum_ns;
};

static const char *const methods[] = {"GET", "HEAD", "POST", "DELETE", "other"};

#define NMETHODS (sizeof methods / sizeof methods[0])

/* The statuses the server answers get their own label; any other one counts
 * under its class ("4xx"), a request closed before its response under "-". */
static const char *const statuses[] = {
	"200", "201", "400", "401", "403", "404", "405", "409", "413", "422",
	"429", "431", "500", "503", "1xx", "2xx", "3xx", "4xx", "5xx", "-"
};

#define NSTATUSES (sizeof statuses / sizeof statuses[0])
#define NCODES (NSTATUSES - 6)	/* entries before the classes */

static const char *const reasons[REJECT_COUNT] = {
	[REJECT_BODY] = "body_too_large",
	[REJECT_HEADERS] = "headers_too_large",
	[REJECT_PER_ADDR] = "per_address_limit",
	[REJECT_DEADLINE] = "deadline",
};

static atomic_ullong requests[R_COUNT][NMETHODS][NSTATUSES];
static struct histogram http_seconds[R_COUNT];
static struct histogram db_seconds;
static atomic_ullong reconnects;
static atomic_ullong read_fallbacks;
static atomic_ullong pipelines;
static atomic_ullong unavailable;
static atomic_ullong rejected[REJECT_COUNT];
static atomic_llong connections;

static void
bump(atomic_ullong *counter, unsigned long long n)
{
	atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

static unsigned long long
get(atomic_ullong *counter)
{
	return atomic_load_explicit(counter, memory_order_relaxed);
}

static void
observe(struct histogram *h, double ms)
{
	double		s = ms > 0 ? ms / 1000 : 0;
	size_t		i = 0;

	while (i < NBOUNDS && s > bounds[i])
		i++;
	bump(&h->bucket[i], 1);
	bump(&h->sum_ns, (unsigned long long) (s * 1e9));
}

static size_t
method_index(const char *method)
{
	for (size_t i = 0; i + 1 < NMETHODS; i++)
		if (strcmp(method, methods[i]) == 0)
			return i;
	return NMETHODS - 1;
}

static size_t
status_index(int status)
{
	char		code[4];

	if (status < 100 || status > 599)
		return NSTATUSES - 1;
	snprintf(code, sizeof code, "%d", status);
	for (size_t i = 0; i < NCODES; i++)
		if (memcmp(code, statuses[i], 4) == 0)
			return i;
	return NCODES + (size_t) (status / 100 - 1);
}

void
metrics_request(enum route_id route, const char *method, int status, double ms)
{
	if ((unsigned) route >= R_COUNT)
		route = R_NONE;
	observe(&http_seconds[route], ms);
	if (status == 503)
		bump(&unavailable, 1);
	else if (status == 413)
		bump(&rejected[REJECT_BODY], 1);
	else if (status == 431)
		bump(&rejected[REJECT_HEADERS], 1);
	/* last: a scrape that counts the request sees the rest of it */
	bump(&requests[route][method_index(method)][status_index(status)], 1);
}

void
metrics_db_roundtrip(double ms)
{
	observe(&db_seconds, ms);
}

void
metrics_db_pipeline(void)
{
	bump(&pipelines, 1);
}

void
metrics_reconnect(void)
{
	bump(&reconnects, 1);
}

void
metrics_read_fallback(void)
{
	bump(&read_fallbacks, 1);
}

void
metrics_rejected(enum reject_reason reason)
{
	bump(&rejected[reason], 1);
}

void
metrics_connection(int delta)
{
	atomic_fetch_add_explicit(&connections, delta, memory_order_relaxed);
}

static void
family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One histogram's series; labels is "" or 'name="value"'. */
static void
render_histogram(FILE *f, const char *name, const char *labels, struct histogram *h)
{
	const char *sep = *labels ? "," : "",
			   *lb = *labels ? "{" : "",
			   *rb = *labels ? "}" : "";
	unsigned long long total = 0;
	char		le[16];

	for (size_t i = 0; i <= NBOUNDS; i++)
	{
		total += get(&h->bucket[i]);
		if (i < NBOUNDS)
			snprintf(le, sizeof le, "%g", bounds[i]);
		else
			snprintf(le, sizeof le, "+Inf");
		fprintf(f, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, sep, le, total);
	}
	fprintf(f, "%s_sum%s%s%s %.9f\n", name, lb, labels, rb, get(&h->sum_ns) / 1e9);
	fprintf(f, "%s_count%s%s%s %llu\n", name, lb, labels, rb, total);
}

static void
render_http(FILE *f)
{
	static const char req[] = "sdr_creds_http_requests_total";
	static const char dur[] = "sdr_creds_http_request_duration_seconds";
	char		labels[96];

	family(f, req, "counter", "HTTP requests by route pattern, method and status.");
	for (int r = 0; r < R_COUNT; r++)
		for (size_t m = 0; m < NMETHODS; m++)
			for (size_t s = 0; s < NSTATUSES; s++)
			{
				unsigned long long n = get(&requests[r][m][s]);

				if (n)
					fprintf(f, "%s{route=\"%s\",method=\"%s\",status=\"%s\"} %llu\n",
							req, routes_pattern(r), methods[m], statuses[s], n);
			}
	family(f, dur, "histogram", "Time from a request's headers to its completion, by route.");
	for (int r = 0; r < R_COUNT; r++)
	{
		snprintf(labels, sizeof labels, "route=\"%s\"", routes_pattern(r));
		render_histogram(f, dur, labels, &http_seconds[r]);
	}
}

/* Resident set size from /proc/self/statm; 0 if unknown. */
static unsigned long long
resident_bytes(void)
{
	unsigned long long size = 0,
				resident = 0;
	FILE	   *f = fopen("/proc/self/statm", "r");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%llu %llu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return resident * (unsigned long long) sysconf(_SC_PAGESIZE);
}

static void
render_db(FILE *f, const struct metrics_pool *pool)
{
	family(f, "sdr_creds_db_roundtrip_seconds", "histogram",
		   "Time of one database call (authentication and the call, one statement), "
		   "from the sending of its pipeline to its result.");
	render_histogram(f, "sdr_creds_db_roundtrip_seconds", "", &db_seconds);
	family(f, "sdr_creds_db_pipelines_total", "counter",
		   "Pipelines sent, each the statements waiting when a connection took them; "
		   "sdr_creds_db_roundtrip_seconds_count / this = statements per round trip.");
	fprintf(f, "sdr_creds_db_pipelines_total %llu\n", get(&pipelines));
	family(f, "sdr_creds_db_pool_connections", "gauge",
		   "Pool connections: busy (running a pipeline), idle (open), broken (closed, to reopen).");
	fprintf(f, "sdr_creds_db_pool_connections{state=\"busy\"} %d\n", pool->busy);
	fprintf(f, "sdr_creds_db_pool_connections{state=\"idle\"} %d\n", pool->idle);
	fprintf(f, "sdr_creds_db_pool_connections{state=\"broken\"} %d\n", pool->broken);
	family(f, "sdr_creds_db_reconnects_total", "counter",
		   "Pool connections opened again after being lost.");
	fprintf(f, "sdr_creds_db_reconnects_total %llu\n", get(&reconnects));
	family(f, "sdr_creds_db_read_fallbacks_total", "counter",
		   "Reads the standbys (--db-read) could not answer, sent to the primary.");
	fprintf(f, "sdr_creds_db_read_fallbacks_total %llu\n", get(&read_fallbacks));
}

static void
render_server(FILE *f)
{
	family(f, "sdr_creds_http_unavailable_total", "counter", "Requests answered 503.");
	fprintf(f, "sdr_creds_http_unavailable_total %llu\n", get(&unavailable));
	family(f, "sdr_creds_http_rejected_total", "counter",
		   "Requests and connections rejected for a limit.");
	for (int i = 0; i < REJECT_COUNT; i++)
		fprintf(f, "sdr_creds_http_rejected_total{reason=\"%s\"} %llu\n", reasons[i],
				get(&rejected[i]));
	family(f, "sdr_creds_http_connections", "gauge", "Open HTTP connections.");
	fprintf(f, "sdr_creds_http_connections %lld\n",
			atomic_load_explicit(&connections, memory_order_relaxed));
	family(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
	fprintf(f, "process_resident_memory_bytes %llu\n", resident_bytes());
	family(f, "sdr_creds_build_info", "gauge", "The server's version.");
	fprintf(f, "sdr_creds_build_info{version=\"%s\"} 1\n", SDR_CREDS_VERSION);
}

char *
metrics_render(const struct metrics_pool *pool, size_t *len)
{
	char	   *buf = NULL;
	FILE	   *f = open_memstream(&buf, len);

	if (f == NULL)
		return NULL;
	render_http(f);
	render_db(f, pool);
	render_server(f);
	if (ferror(f))
	{
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	return buf;
}
