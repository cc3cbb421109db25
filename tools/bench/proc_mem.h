/*
 * proc_mem.h - machine memory and CPU time as /proc shows them.
 *
 * What: MemAvailable and MemFree of the machine, and the free pages held
 * on per-CPU lists that MemFree leaves out; a process's CPU time (its
 * CPU clock, in ns, else /proc's utime + stime); its PSS (smaps_rollup, total and anonymous) and its
 * anonymous RSS (status); the PSS
 * of one mapping of a given length and whether KSM may merge it (VmFlags
 * "mg"); and the bytes a guest's memfd really holds in memory.
 * How: line parsing of /proc/meminfo, /proc/zoneinfo ("count:" of every
 * zone's per-CPU pageset), /proc/PID/stat (the fields after
 * the comm's closing parenthesis), /proc/PID/smaps_rollup and
 * /proc/PID/smaps; the memfd is found among /proc/PID/fd by its link
 * name ("/memfd:NAME (deleted)") and stat()ed: st_blocks is its resident
 * size (tmpfs has no other backing without swap).
 * Why: pk-bench-share's savings must be machine memory, not the
 * counters of the mechanism under test; these are the kernel's own
 * figures, read the same way for KSM and for pagekeeperd.
 */
#ifndef PK_BENCH_PROC_MEM_H
#define PK_BENCH_PROC_MEM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct meminfo {
	int64_t avail_kib;
	int64_t free_kib;
	int64_t total_kib;
	int64_t pcp_kib;	/* free pages on per-CPU lists (/proc/zoneinfo) */
};

/*
 * MemAvailable, MemFree and MemTotal, and the free pages the per-CPU
 * page lists hold: MemFree does not count those, and on this kernel
 * (pcp high auto-tuning) they are up to ~60 MiB per CPU, so a burst of
 * freed pages shows up in MemFree only when the lists drain.  0 or -errno.
 */
int meminfo_read(struct meminfo *m);

/* CPU time of pid (all its threads) in seconds: its CPU clock
 * (clock_getcpuclockid, ns), else utime + stime.  0 or -errno (-ESRCH). */
int proc_cpu_seconds(pid_t pid, double *out);

struct proc_pss {
	int64_t pss_kib;	/* all of it */
	int64_t pss_anon_kib;	/* private anonymous and KSM pages */
	int64_t pss_shmem_kib;	/* memfd / tmpfs pages */
};

/* From /proc/PID/smaps_rollup (a page-table walk: ~18 ms per 2 GiB).  0 or -errno. */
int proc_pss_read(pid_t pid, struct proc_pss *out);

/* RssAnon from /proc/PID/status (a counter: cheap).  0 or -errno. */
int proc_rss_anon(pid_t pid, int64_t *kib);

struct proc_mapping {
	int64_t pss_kib;
	int64_t rss_kib;
	bool mergeable;		/* VmFlags has "mg": KSM may scan it */
};

/*
 * The first mapping of pid exactly length bytes long (the guest's RAM;
 * no other mapping of a lab guest is as large).  0, -ENOENT, or -errno.
 */
int proc_mapping_read(pid_t pid, uint64_t length, struct proc_mapping *out);

/*
 * Bytes in memory of pid's memfd named name (memfd_create's name): the
 * first fd whose link reads "/memfd:NAME (deleted)".  0, -ENOENT, -errno.
 */
int proc_memfd_bytes(pid_t pid, const char *name, uint64_t *out);

#endif
