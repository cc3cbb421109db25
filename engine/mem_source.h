/*
 * mem_source.h - how much memory is free, for the memory states.
 *
 * The first that applies: a budget (--budget SIZE: the machine is SIZE
 * bytes and the daemon counts what is used), a memory cgroup the admin
 * names (v1 or v2: its limit and usage), or the host (/proc/meminfo
 * MemTotal and MemAvailable).  Memory PSI is read too: the cgroup's
 * memory.pressure when it has one, else /proc/pressure/memory.
 *
 * Usage in a cgroup does not count its inactive page cache
 * (inactive_file in memory.stat), as docker, kubelet and cAdvisor do
 * ("working set"): those pages are clean or nearly so and are the first
 * the kernel reclaims when the cgroup reaches its limit, so they are
 * free for all that matters here.  Counting them would put the host in
 * soft or hard as soon as a guest reads a big file, and the policy
 * would balloon and swap guests to protect page cache.  Active page
 * cache is counted: reclaiming it costs refaults.
 *
 * Every call reads a few small procfs or cgroupfs files and nothing
 * else, so it never blocks the daemon's loop longer than that.  No
 * globals; a struct pk_mem_source is the caller's.
 */
#ifndef PK_MEM_SOURCE_H
#define PK_MEM_SOURCE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

enum pk_mem_source_kind { PK_MEM_BUDGET, PK_MEM_CGROUP, PK_MEM_HOST };

struct pk_mem_source {
	enum pk_mem_source_kind kind;
	uint64_t budget_bytes;	   /* PK_MEM_BUDGET */
	char cgroup_dir[PATH_MAX]; /* PK_MEM_CGROUP: resolved directory */
	int cgroup_v2;
	char psi_path[PATH_MAX];   /* "" when no PSI is readable */
	char err[256];		   /* why open (or the last read) failed */
	uint64_t limit_bytes;	   /* PK_MEM_CGROUP: limit at the last read */
};

struct pk_mem_reading {
	uint64_t total_bytes, used_bytes, free_bytes;
	double free_pct;       /* 100 * free / total */
	double psi_some_avg10; /* %, -1 when unknown */
};

/* Where names are looked up, in this order. */
#define PK_CGROUP_V2_MOUNT "/sys/fs/cgroup"
#define PK_CGROUP_V2_HYBRID_MOUNT "/sys/fs/cgroup/unified"
#define PK_CGROUP_V1_MEMORY_MOUNT "/sys/fs/cgroup/memory"
#define PK_PSI_HOST_PATH "/proc/pressure/memory"

/*
 * budget_bytes > 0 wins; else cgroup, when not NULL nor "": a name like
 * "machine.slice", looked up under the v2 mount /sys/fs/cgroup or
 * /sys/fs/cgroup/unified (a directory there counts only if it has the
 * memory controller, memory.max) and then the v1 mount
 * /sys/fs/cgroup/memory, or an absolute directory on a cgroup file
 * system; else the host.  Reads once to check.  Negative errno with
 * s->err set: -ENOENT when the cgroup is nowhere (err names every path
 * tried), -ENODATA when it has no limit (v2 memory.max "max", v1 the
 * unlimited value), -ENOTDIR for a directory that is no memory cgroup,
 * -ENAMETOOLONG, or a read's error.
 */
int pk_mem_source_open(struct pk_mem_source *s, uint64_t budget_bytes,
		       const char *cgroup);

/*
 * engine_used_bytes: in budget mode, what the daemon counts as used
 * (guests' resident pages + its own memory); ignored otherwise.
 * Budget: total = budget, used = engine_used_bytes (free 0 beyond).
 * Cgroup v1: total = min(memory.limit_in_bytes, hierarchical_memory_limit),
 * used = memory.usage_in_bytes - total_inactive_file.  Cgroup v2:
 * total = memory.max, used = memory.current - inactive_file.  Host:
 * total = MemTotal, used = MemTotal - MemAvailable.  PSI "some avg10"
 * from psi_path, -1 when it cannot be read (not an error).  Negative
 * errno with s->err set when a file cannot be read or parsed, or the
 * cgroup's limit was removed (-ENODATA).
 */
int pk_mem_source_read(struct pk_mem_source *s, uint64_t engine_used_bytes,
		       struct pk_mem_reading *r);

/*
 * "budget 512 MiB", "cgroup v1 /sys/fs/cgroup/memory/x (limit 1024 MiB)",
 * "cgroup v2 /sys/fs/cgroup/x (limit 1024 MiB)", "host MemAvailable".
 * Returns buf.
 */
const char *pk_mem_source_describe(const struct pk_mem_source *s, char *buf,
				   size_t len);

#endif
