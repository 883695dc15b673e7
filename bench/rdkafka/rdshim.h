/*
 * rdshim.h: the few helpers librdkafka's examples/rdkafka_performance.c takes
 * from librdkafka's private headers (src/rd.h, src/rdtime.h), which Debian's
 * librdkafka-dev does not ship. build.sh compiles the example from Debian's
 * copy with its private includes replaced by this file. Written here; it
 * holds nothing of librdkafka's code.
 */
#ifndef STRATA_RDSHIM_H
#define STRATA_RDSHIM_H
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/time.h>
#include <getopt.h>

typedef int64_t rd_ts_t;

/* rd_clock: a monotonic clock in microseconds. */
static inline rd_ts_t rd_clock(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (rd_ts_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#define rd_snprintf snprintf
#define RD_MAX(a, b) ((a) > (b) ? (a) : (b))
#define RD_MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
