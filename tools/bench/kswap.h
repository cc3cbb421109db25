/*
 * kswap.h - the anchor: the kernel's own swap-in on the same disk.
 *
 * What: a swap file on the benchmark's file system (fallocate, mode 0600,
 * mkswap), enabled (swapon, highest priority) only while a kernel round
 * runs, so the rest of the host has swap space only then; per round a
 * child process in a fresh child memory cgroup that maps private anonymous
 * memory, fills
 * it with the round's content, calls MADV_PAGEOUT, has its swap cache
 * dropped, then reads one word of each page in the random order, timing
 * each (or, in sequential mode, of every page in address order, timed as
 * a whole), and checks the touched pages' content.
 * How: the parent writes the order into a shared mapping it has touched
 * itself (so it is charged to the parent's cgroup and the drop cannot
 * swap it out); the child writes its latencies there.  Pipes sequence the
 * steps: filled and paged out -> parent drops the cgroup's cache -> go.
 * Before touching, the child counts with mincore() how many pages are
 * really out (neither mapped nor in the swap cache) and reads VmSwap.
 * Every swap file, cgroup and changed setting is registered with the
 * guardian (sys_guard.h) before it exists, so it is undone on any exit.
 * Why: FACTS.md "Kernel swap: the anchor for swap-in": pagekeeperd's p99
 * swap-in is judged against the kernel's on the same device.
 */
#ifndef PK_BENCH_KSWAP_H
#define PK_BENCH_KSWAP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memcg.h"

struct kswap {
	char swapfile[PATH_MAX];
	size_t swap_bytes;
	struct memcg cg;
	unsigned other_swaps; /* active swap areas besides ours */
};

struct kswap_round_info {
	size_t region_pages;
	size_t out_after_drop;	   /* region pages neither mapped nor cached */
	size_t resident_before;	   /* touched pages already resident */
	long vmswap_kib;	   /* child's VmSwap before touching */
	struct memcg_stat st;	   /* the child cgroup after the drop */
	double pageout_ms, drop_ms;
	uint64_t seq_ns;	   /* sequential mode: the whole sweep */
};

/* Root, mkswap, swapon, a memory cgroup: 0 or -errno with the reason. */
int kswap_check(struct kswap *k, char *err, size_t err_len);

/* Create and format the swap file dir/kswap.swap of bytes.  0 or -errno. */
int kswap_setup(struct kswap *k, const char *dir, size_t bytes, char *err,
		size_t err_len);

/*
 * swapon the file at the highest priority, for a caller that runs its own
 * workload against it (pagekeeper lab's kernel anchor); guard_swapoff()
 * turns it off again.  0 or -errno with the reason.
 */
int kswap_on(struct kswap *k, char *err, size_t err_len);

/* swapoff and remove it (through the guardian).  0 or -errno. */
int kswap_teardown(struct kswap *k);

/*
 * One round: region of region_pages, touches perm[0..n), content seed.
 * Fails (-errno, err) when fewer than min_out_pct % of the region is out
 * after the drop, or when a touched page reads wrong.  perm NULL:
 * sequential mode, every page read in address order, the elapsed time in
 * info->seq_ns; n and lat_ns are then unused (resident_before stays 0).
 */
int kswap_round(struct kswap *k, unsigned round, size_t region_pages,
		const uint32_t *perm, size_t n, uint64_t seed,
		double min_out_pct, uint64_t *lat_ns,
		struct kswap_round_info *info, char *err, size_t err_len);

#endif
