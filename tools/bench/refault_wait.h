/*
 * refault_wait.h - wait until pagekeeperd's scanner has reclaimed a VM's
 * zero pages or merged its duplicate pages.
 *
 * What: poll the daemon's STATUS until the VM's "zero_mib" (zero kind)
 * or "shared_mib" (shared kind) reaches the wanted share of the expected
 * MiB, with a progress line on stderr every second and a clear error on
 * timeout ("the daemon merged only X of Y MiB ..."), when the daemon dies
 * or when it stops answering.
 * How: one STATUS request (status_json.c) every 100 ms; the figures of
 * the last reply are kept: the VM's zero, shared and resident MiB, its
 * fault count and the top-level "sharing" object's canonical_frames
 * (absent in daemons without merging: 0).
 * Also: after a detach, wait until STATUS no longer lists the VM.
 * Why: the scanner needs two passes at least a second apart before it
 * reclaims a page; the refault measurement must start only once the
 * pages really are out, and must say so plainly when they never go.  A
 * detached VM's teardown (releasing thousands of canonical copies) runs
 * in the daemon after pk_client_detach returns; the next variant must not
 * share the CPUs with it.
 */
#ifndef PK_BENCH_REFAULT_WAIT_H
#define PK_BENCH_REFAULT_WAIT_H

#include <stddef.h>
#include <stdint.h>

#include "daemon_proc.h"
#include "refault_touch.h"

struct vm_pages {
	double zero_mib, shared_mib, resident_mib;
	double canonical_frames;	/* daemon-wide; 0 when not reported */
	uint64_t faults_total;
};

/* One STATUS reading of vm.  0 or -errno with the reason in err. */
int vm_pages_read(const struct pk_daemon *d, const char *vm, struct vm_pages *out,
		  char *err, size_t err_len);

/*
 * Wait until vm's figure for kind k reaches min_pct % of expect_mib, for
 * at most timeout_s; *waited_s is the time it took.  0, or -ETIMEDOUT /
 * -ECHILD / -errno with the reason in err.  *last holds the last reading.
 */
int wait_reclaimed(const struct pk_daemon *d, const char *vm, enum page_kind k,
		   double expect_mib, double min_pct, double timeout_s,
		   struct vm_pages *last, double *waited_s, char *err, size_t err_len);

/* Wait until STATUS no longer lists vm.  0 or -ETIMEDOUT / -errno + err. */
int wait_vm_gone(const struct pk_daemon *d, const char *vm, double timeout_s, char *err,
		 size_t err_len);

#endif
