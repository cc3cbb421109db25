/*
 * status_req.h - one VM's swap-in counters from pagekeeperd (PK_MSG_STATUS).
 *
 * What: the `swapins` and `swapins_readahead` counters of one VM, and
 * whether the daemon's swap file uses O_DIRECT, as `pagekeeper status
 * --json` would show them.
 * How: status_fetch() (status_json.h); the VM is found by name.
 * Why: part C must say how many of pagekeeperd's swap-ins were read
 * ahead, not only how long the sweep took.
 */
#ifndef PK_BENCH_STATUS_REQ_H
#define PK_BENCH_STATUS_REQ_H

#include <stddef.h>
#include <stdint.h>

struct vm_swap_counters {
	uint64_t swapins;		/* pages read back from the swap file */
	uint64_t swapins_readahead;	/* of those, read ahead of the guest */
	int direct_io;			/* swap file O_DIRECT: 1, 0, -1 unknown */
};

/* 0, or -errno with the reason in err (no reply, no such VM, bad JSON). */
int vm_swap_counters(const char *sock, const char *vm, int timeout_s,
		     struct vm_swap_counters *out, char *err, size_t err_len);

#endif
