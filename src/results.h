/*
 * results.h: what the SQL-callable functions return (results.c).
 */
#ifndef SDR_RESULTS_H
#define SDR_RESULTS_H

#include "sdr_creds.h"

#include "lib/stringinfo.h"

/* The JSON text built in out, as a text datum's value. */
extern text *json_result(StringInfo out);

/* (created boolean, credential json) and similar two-column results. */
extern Datum pair_result(FunctionCallInfo fcinfo, Datum a, Datum b);

/* A text argument as a C string, or NULL. */
extern char *text_arg(FunctionCallInfo fcinfo, int n);

/* Starts a set-returning function's result as a tuplestore. */
extern void srf_begin(FunctionCallInfo fcinfo);

#endif
