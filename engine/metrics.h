/*
 * metrics.h - the daemon's Prometheus endpoint (GET /metrics) and the
 * host-wide counters only it reads.
 *
 * Contract:
 *  - struct pk_host_stats lives in struct pk_engine (e->host_stats): the
 *    fault path counts into it (fault.c, evict.c) with plain increments
 *    and pk_fault_hist_observe(), which costs one clock read and a short
 *    bucket search; nothing else is shared, and no figure is global.
 *  - pk_metrics_start() listens on "ADDR:PORT" (loopback only: 127.0.0.0/8,
 *    ::1 or localhost) or "unix:PATH" and serves from the engine's event
 *    loop: never a blocking call, never on the fault path.  A request is
 *    read up to PK_METRICS_REQ_MAX bytes, answered from one rendered
 *    buffer, written as the client takes it (EAGAIN: wait for EPOLLOUT);
 *    at most PK_METRICS_CONNS_MAX connections, each with a send buffer
 *    of PK_METRICS_SNDBUF, and one that makes no progress for
 *    PK_METRICS_IDLE_MS, or is still open after PK_METRICS_LIFETIME_MS,
 *    is closed.
 *  - Access: a UNIX socket is mode 0660 with the admin group (--admin-
 *    group) when there is one, else 0600: only who may see every VM may
 *    read the VM names.  Loopback TCP is readable by every local user;
 *    README "Metrics" says so.
 *  - Functions return 0 or a negative errno.
 */
#ifndef PK_METRICS_H
#define PK_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

struct pk_engine;

/*
 * Fault resolution latency: from the daemon reading a fault message to
 * the page being in place (a swap-in: to its UFFDIO_COPY), in
 * nanoseconds.  The bounds are the histogram's "le" values.
 */
#define PK_FAULT_HIST_N 14
#define PK_FAULT_HIST_LE_NS                                                  \
	{ 5000,	     10000,    25000,	 50000,	    100000,	 250000,    \
	  500000,    1000000,  2500000,	 5000000,   10000000,	 25000000,  \
	  100000000, 1000000000 }

struct pk_fault_hist {
	uint64_t bucket[PK_FAULT_HIST_N + 1]; /* not cumulative; last: +Inf */
	uint64_t count;
	uint64_t sum_ns;
	uint64_t max_ns;
};

/* Host totals that outlive the VMs they came from (Prometheus counters). */
struct pk_host_stats {
	struct pk_fault_hist fault_latency;
	uint64_t faults;	     /* page-fault messages read */
	uint64_t swapins;	     /* pages read back from swap */
	uint64_t swap_written_pages; /* pages written to the swap file */
};

static inline uint64_t pk_metrics_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Count one resolved fault that took ns. */
static inline void pk_fault_hist_observe(struct pk_fault_hist *h, uint64_t ns)
{
	static const uint64_t le[PK_FAULT_HIST_N] = PK_FAULT_HIST_LE_NS;
	unsigned i = 0;

	while (i < PK_FAULT_HIST_N && ns > le[i])
		i++;
	h->bucket[i]++;
	h->count++;
	h->sum_ns += ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

#define PK_METRICS_REQ_MAX 4096	  /* request head, bytes */
#define PK_METRICS_CONNS_MAX 16
#define PK_METRICS_IDLE_MS 5000
#define PK_METRICS_LIFETIME_MS 30000 /* a byte at a time cannot hold one */
#define PK_METRICS_SNDBUF 16384	  /* per connection (the kernel doubles it) */

/*
 * Parse a listen address: "unix:/abs/path" or loopback "ADDR:PORT"
 * ("127.0.0.1:9187", "[::1]:9187", "localhost:9187").  0, or -EINVAL
 * with why.
 */
int pk_metrics_parse_listen(const char *spec, struct sockaddr_storage *ss,
			    socklen_t *len, char *why, size_t whylen);

/* Listen on spec and serve from e's loop (e->metrics). */
int pk_metrics_start(struct pk_engine *e, const char *spec);
/* Close every connection and the listener (unlinks a UNIX path). */
void pk_metrics_stop(struct pk_engine *e);

/*
 * The exposition text (format 0.0.4) into a malloc'd buffer; *len its
 * length.  NULL when out of memory.
 */
char *pk_metrics_render(struct pk_engine *e, size_t *len);

#endif
