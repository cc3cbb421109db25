/*
 * share_footprint.c - the memory our guests and daemon hold, from /proc.
 *
 * What/how/why: see share_footprint.h.
 */
#include "share_footprint.h"
#include "proc_mem.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MEMFD_NAME "pk-guestsim" /* memfd_create's name in tools/guestsim/ram.c */

int share_guest_ram(const struct guest *g, unsigned n, enum share_kind kind, double *mib,
		    char *err, size_t err_len)
{
	double sum = 0;

	for (unsigned i = 0; i < n; i++) {
		struct proc_pss p;
		uint64_t bytes;
		int e;
		if (kind == SHARE_MEMFD) {
			if ((e = proc_memfd_bytes(g[i].pid, MEMFD_NAME, &bytes)) < 0) {
				snprintf(err, err_len, "guest %s: its memfd in /proc/%d/fd: %s",
					 g[i].name, (int)g[i].pid, strerror(-e));
				return e;
			}
			sum += (double)bytes / (1024.0 * 1024.0);
			continue;
		}
		if ((e = proc_pss_read(g[i].pid, &p)) < 0) {
			snprintf(err, err_len, "guest %s: /proc/%d/smaps_rollup: %s", g[i].name,
				 (int)g[i].pid, strerror(-e));
			return e;
		}
		sum += (double)p.pss_anon_kib / 1024.0;
	}
	*mib = sum;
	return 0;
}

int share_daemon_anon(const struct pk_daemon *d, double *mib, char *err, size_t err_len)
{
	int64_t kib;
	int e;

	*mib = 0;
	if (!d)
		return 0;
	if ((e = proc_rss_anon(d->pid, &kib)) < 0) {
		snprintf(err, err_len, "pagekeeperd: /proc/%d/status: %s", (int)d->pid,
			 strerror(-e));
		return e;
	}
	*mib = (double)kib / 1024.0;
	return 0;
}
