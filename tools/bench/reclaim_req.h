/*
 * reclaim_req.h - ask pagekeeperd to evict a VM's RAM (PK_MSG_RECLAIM).
 *
 * What: one RECLAIM request on a fresh control connection, waiting for
 * its RECLAIM_REPLY (or the ERROR_REPLY of a refused request).
 * How: a SOCK_SEQPACKET connection, pk_msg_header_init, a receive
 * timeout; the wall time from send to reply is measured here too.
 * Why: the benchmark needs the daemon's own counters (pages_swapped,
 * elapsed_us) and an independent clock, for the same request the
 * `pagekeeper reclaim` command sends.
 */
#ifndef PK_BENCH_RECLAIM_REQ_H
#define PK_BENCH_RECLAIM_REQ_H

#include <stddef.h>
#include <stdint.h>

struct reclaim_result {
	int status;		/* reply status: 0 or -errno */
	uint64_t pages_swapped, pages_zero, pages_aborted;
	uint64_t elapsed_us;	/* the daemon's figure */
	uint64_t wall_ns;	/* ours: send to reply */
	char reason[256];
};

/*
 * 0 when a RECLAIM_REPLY arrived (its status may still be an error);
 * -errno with a reason in err when the request failed or was refused.
 */
int reclaim_request(const char *sock, const char *vm, uint64_t bytes,
		    int timeout_s, struct reclaim_result *out, char *err,
		    size_t err_len);

#endif
