/*
 * swap_results.h - every figure one pk-bench-swap run produces.
 *
 * What: configuration, per-variant swap-in latency (pooled over rounds),
 * the kernel variant's proof that its pages were really out, per-round
 * eviction and fio bandwidth, the goal figures computed from them, and
 * per-round sequential swap-in sweep times with pagekeeperd's swap-in
 * counters (part C, no goal), and part D's restart times.  Parts A and B
 * also hold a second pagekeeperd with --volatile-state: the anchor of
 * what the durable state costs.
 * How: filled by swap_parts.c, printed by swap_report.c as text or JSON.
 * Why: one struct, two printers: the text and the JSON never disagree.
 */
#ifndef PK_BENCH_SWAP_RESULTS_H
#define PK_BENCH_SWAP_RESULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "timing.h"

#define SWAP_MAX_ROUNDS LAT_MAX_ROUNDS
#define GOAL_P50_DIFF_US 2.0	/* pagekeeperd p50 - floor p50 <= */
#define GOAL_P99_RATIO 1.0	/* pagekeeperd p99 / kernel p99 <= */
#define GOAL_BW_RATIO 0.80	/* pagekeeperd MiB/s / fio 4k MiB/s >= */
#define GOAL_BW_1M_RATIO 0.80 /* pagekeeperd MiB/s / fio 1M MiB/s >= */

/* LV_VOLATILE, BV_VOLATILE: a second pagekeeperd with --volatile-state. */
enum lat_variant { LV_DAEMON, LV_VOLATILE, LV_FLOOR, LV_KERNEL, LV_COUNT };
enum bw_variant { BV_DAEMON, BV_VOLATILE, BV_FIO_4K, BV_FIO_1M, BV_COUNT };
enum seq_variant { SV_RA_OFF, SV_RA_ON, SV_KERNEL, SV_FLOOR, SV_COUNT };
/* Part D: the anchor (no restart), SIGKILL + start, SIGTERM + start. */
enum restart_variant { RV_NONE, RV_KILL, RV_TERM, RV_COUNT };

const char *lat_variant_name(int v);
const char *bw_variant_name(int v);
const char *seq_variant_name(int v);
const char *seq_variant_key(int v);	/* JSON key */
const char *restart_variant_name(int v);
const char *restart_variant_key(int v);	/* JSON key */

struct bw_result {
	bool ran;
	unsigned rounds;
	double mib_s[SWAP_MAX_ROUNDS];		/* daemon: by its elapsed_us; fio: bw */
	double wall_mib_s[SWAP_MAX_ROUNDS];	/* daemons only: by our clock */
	double cpu_s_gib[SWAP_MAX_ROUNDS];	/* daemons only: CPU s per GiB out */
	double median_mib_s, median_wall_mib_s, median_cpu_s_gib;
};

struct seq_result {
	bool ran;
	unsigned rounds;
	double ms[SWAP_MAX_ROUNDS];		/* the timed sweep */
	uint64_t swapins[SWAP_MAX_ROUNDS];	/* pagekeeperd variants only */
	uint64_t swapins_ra[SWAP_MAX_ROUNDS];	/* of those, read ahead */
	double reclaim_mib_s[SWAP_MAX_ROUNDS];	/* pagekeeperd: by its elapsed_us */
	double median_ms;
};

/* Part D, per round; times in ms (RV_NONE has no restart times). */
struct restart_result {
	unsigned rounds;
	double swapped_mib[SWAP_MAX_ROUNDS];	/* STATUS, just before the stop */
	double answer_ms[SWAP_MAX_ROUNDS];	/* exec -> first STATUS reply */
	double adopt_ms[SWAP_MAX_ROUNDS];	/* exec -> VM adopted, none waiting */
	double adopted_mib[SWAP_MAX_ROUNDS];	/* its swapped_mib once adopted */
	double first_swapin_ms[SWAP_MAX_ROUNDS]; /* SIGUSR1 -> swapins grew */
	double first_swapins[SWAP_MAX_ROUNDS];	/* by how many pages it grew */
	double verify_ms[SWAP_MAX_ROUNDS];	/* SIGUSR1 -> guest exited 0 */
};

struct swap_results {
	/* configuration */
	bool latency, bandwidth;
	size_t size_bytes, pages, evict_bytes;
	unsigned rounds;
	uint64_t seed;
	char dir[4096];
	char daemon_path[4096];
	size_t daemon_swap_bytes;
	char memcg[4200];
	unsigned other_swaps;
	long cpus;
	uint64_t timer_overhead_ns;
	double run_s;			/* the whole run, start to report */
	char fio_version[32];

	/* A: swap-in latency */
	struct lat_result lat[LV_COUNT];
	size_t region_pages;
	size_t kernel_out_min;		/* fewest pages out after a drop, over rounds */
	long kernel_vmswap_kib_min;
	long long kernel_swapcached_max; /* bytes, cgroup after the drop; -1 unknown */
	double kernel_pageout_ms_max, kernel_drop_ms_max;
	double daemon_reclaim_mib_s[SWAP_MAX_ROUNDS]; /* latency rounds' evictions */
	double volatile_reclaim_mib_s[SWAP_MAX_ROUNDS]; /* the same, --volatile-state */

	/* B: eviction bandwidth */
	struct bw_result bw[BV_COUNT];

	/* C: sequential swap-in */
	bool seq;
	size_t seq_bytes;
	struct seq_result sq[SV_COUNT];
	char seq_daemon_args[2][512];	/* [0] readahead off, [1] default */
	unsigned seq_readahead[2];	/* from the daemons' logs; 0 unknown */
	int seq_direct_io;		/* their swap files: 1, 0, -1 unknown */
	int page_cluster;		/* /proc/sys/vm/page-cluster, -1 unknown */
	int vma_ra;			/* /sys/kernel/mm/swap/vma_ra_enabled: 1, 0, -1 */
	size_t seq_kernel_out_min;	/* fewest pages out after a drop */

	/* D: daemon restart */
	bool restart;
	unsigned restart_rounds;
	char guestsim_path[4096];
	char restart_daemon_args[512];
	double cold_answer_ms;		/* its first start, empty dirs: exec -> STATUS */
	double status_poll_ms;		/* mean STATUS round trip while polling */
	struct restart_result rs[RV_COUNT];
};

void swap_report_text(const struct swap_results *r, FILE *out);
void swap_report_json(const struct swap_results *r, FILE *out);

/* Part C's text section and JSON object (seq_report.c). */
void seq_report_text(const struct swap_results *r, FILE *out);
struct json_object *seq_report_json(const struct swap_results *r);

/* Part D's (restart_report.c). */
void restart_report_text(const struct swap_results *r, FILE *out);
struct json_object *restart_report_json(const struct swap_results *r);

#endif
