/*
 * share_status.h - pagekeeperd's sharing figures (PK_MSG_STATUS).
 *
 * What: from `pagekeeper status --json`'s object: per VM "zero_mib",
 * "shared_mib", "saved_mib", "share_merged", "scan_passes",
 * "scan_pages"; the top-level "sharing" object ("saved_mib",
 * "store_mib", "canonical_frames", ...) and "scan" ("mib_per_s",
 * "cpu_percent").  A key the daemon does not have (yet) reads as 0 and
 * its has_ flag stays false.
 * How: status_fetch() (status_json.h), then the keys above.
 * Why: the daemon's counters are printed next to the machine-memory
 * savings as a cross-check, and its scan passes tell when it settled.
 */
#ifndef PK_BENCH_SHARE_STATUS_H
#define PK_BENCH_SHARE_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHARE_STATUS_MAX_VMS 64

struct share_status {
	unsigned n_vms;
	char vm_name[SHARE_STATUS_MAX_VMS][64];
	uint64_t vm_passes[SHARE_STATUS_MAX_VMS];	/* "scan_passes" */
	double zero_mib, shared_mib, vm_saved_mib;	/* sums over the VMs */
	double share_merged;				/* pages, sum */
	uint64_t scan_pages;				/* sum of "scan_pages" */
	bool has_vm_saved, has_passes, has_scan_pages;
	/* "sharing" */
	double saved_mib, store_mib, sharing_zero_mib, sharing_shared_mib;
	double canonical_frames;
	bool has_sharing, has_saved, has_store;
	/* "scan" */
	double scan_mib_per_s, scan_cpu_percent;
	bool has_scan;
};

/* 0, or -errno with the reason in err. */
int share_status_read(const char *sock, int timeout_s, struct share_status *out,
		      char *err, size_t err_len);

/*
 * The daemon's own figure for the memory its sharing saves, in MiB, and
 * which keys it came from: sharing.saved_mib, else the VMs' saved_mib,
 * else zero_mib + shared_mib - sharing.store_mib.
 */
double share_status_saved(const struct share_status *s, const char **source);

/* Passes of the VM named name, or -1 when absent. */
int64_t share_status_passes(const struct share_status *s, const char *name);

#endif
