/*
 * memcg.h - a fresh child memory cgroup for the kernel swap-in variant.
 *
 * What: find the memory cgroup this process is in (cgroup v2 when its
 * hierarchy has the memory controller, else the v1 memory hierarchy),
 * create a child cgroup under it, move a pid in, drop the child's swap
 * cache, read its swap figures, remove it.
 * How: /proc/self/mountinfo and /proc/self/cgroup locate the directory.
 * v2: when the parent's cgroup.subtree_control lacks "memory" we enable it
 * (and the guardian restores it).  Dropping the swap cache: v1 writes
 * memory.force_empty (FACTS.md), v2 writes memory.reclaim (force_empty does
 * not exist there; EAGAIN, "could not reclaim all of it", is expected).
 * Every created directory is handed to the guardian (sys_guard.h) first.
 * Why: after MADV_PAGEOUT the pages sit in the swap cache, and a touch
 * would be a minor fault; only reclaim inside a memory cgroup drops them
 * so that the touches measure real device reads.
 */
#ifndef PK_BENCH_MEMCG_H
#define PK_BENCH_MEMCG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct memcg {
	int version;		  /* 1 or 2 */
	char parent[PATH_MAX];	  /* our memory cgroup's directory */
	char dir[PATH_MAX];	  /* the child we created, "" if none */
	bool enabled_subtree;	  /* v2: we wrote +memory */
};

struct memcg_stat {
	long long anon_bytes;	   /* mapped anonymous memory (v1 rss, v2 anon) */
	long long swapcached_bytes;
	long long swap_bytes;	   /* v1 swap (needs memsw), v2 memory.swap.current */
};

/* Locate our memory cgroup; 0 or -errno with a reason. */
int memcg_find(struct memcg *m, char *err, size_t err_len);

/* "v1 /sys/fs/cgroup/memory/..." for the report. */
const char *memcg_describe(const struct memcg *m, char *buf, size_t len);

int memcg_create(struct memcg *m, const char *name, char *err, size_t err_len);
int memcg_add_pid(struct memcg *m, pid_t pid, char *err, size_t err_len);
/* The child's memory limit: v1 memory.limit_in_bytes, v2 memory.max. */
int memcg_set_limit(struct memcg *m, uint64_t bytes, char *err, size_t err_len);
/* Its memory in use (v1 memory.usage_in_bytes, v2 memory.current), -1. */
long long memcg_usage(const struct memcg *m);
int memcg_drop_cache(struct memcg *m, size_t bytes, char *err, size_t err_len);
void memcg_read_stat(const struct memcg *m, struct memcg_stat *st);

/* Remove the child (through the guardian, which retries while busy). */
int memcg_remove(struct memcg *m);

#endif
