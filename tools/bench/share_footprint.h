/*
 * share_footprint.h - the memory our guests and daemon hold, from /proc.
 *
 * What: the guests' RAM in memory, summed: for memfd guests the bytes
 * their memfds hold (st_blocks: exact and cheap), for anonymous guests
 * their anonymous PSS (smaps_rollup, which splits a KSM page between
 * the guests mapping it; a page-table walk, ~18 ms per 2 GiB); and the
 * daemon's anonymous RSS (its page tables, canonical store and index).
 * How: proc_mem.c's readers, summed over the guests.
 * Why: unlike MemAvailable, this is not moved by other tenants of a
 * shared machine, and unlike the mechanisms' counters it is the
 * kernel's own account of memory, the same way for KSM and pagekeeperd.
 */
#ifndef PK_BENCH_SHARE_FOOTPRINT_H
#define PK_BENCH_SHARE_FOOTPRINT_H

#include <stddef.h>

#include "daemon_proc.h"
#include "guest_proc.h"
#include "share_opts.h"

/* MiB; 0, or -errno with the reason in err. */
int share_guest_ram(const struct guest *g, unsigned n, enum share_kind kind, double *mib,
		    char *err, size_t err_len);

/* MiB; 0 without a daemon; 0 or -errno with the reason in err. */
int share_daemon_anon(const struct pk_daemon *d, double *mib, char *err, size_t err_len);

#endif
