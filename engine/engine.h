/*
 * engine.h - the pagekeeper engine: one context that owns everything.
 *
 * Contract:
 *  - All daemon state hangs off struct pk_engine, passed explicitly; there
 *    are no hidden globals.
 *  - The engine runs one event loop on the calling thread.  It waits on
 *    the control socket, every VM's userfaultfd, connection and pidfd, a
 *    1 s statistics timer and a signalfd for SIGTERM/SIGINT (and SIGHUP:
 *    the reload hook).
 *  - pk_engine_run() returns after SIGTERM/SIGINT or pk_engine_stop().
 *    Stopping closes the daemon's copies of every uffd; clients keep
 *    theirs, so guest faults block until a daemon registers them again.
 *    The state stays (state.h): every VM's record, slots and copies are
 *    there for the next daemon, which replays them.
 *  - Functions return 0 or a negative errno.
 */
#ifndef PK_ENGINE_H
#define PK_ENGINE_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "engine/event_loop.h"
#include "engine/page_table.h"
#include "hashing/rate_limit.h"
#include "engine/log.h"
#include "engine/metrics.h" /* issue 18: struct pk_host_stats */
#include "swapper/swap_store.h"
#include "engine/victim.h"

struct pk_engine;
struct pk_vm;
struct pk_conn;
struct pk_swap_store;
struct pk_share_domain;
struct pk_content_index;
struct pk_sfile;
struct pk_policy;
struct pk_policy_config;
struct pk_metrics;

/* A VM whose sharing domain the configuration sets (--share-domain). */
struct pk_share_override {
	char vm[64];
	char domain[64];
};
#define PK_SHARE_OVERRIDES_MAX 64

struct pk_engine_config {
	const char *socket_path;
	const char *socket_group; /* the socket's group; NULL: pagekeeper,
				   * else root's (control.c) */
	const char *admin_group;  /* may act on every VM; NULL: root only */
	const char *share_domain_allow; /* "NAME:UID,...": domains users
					 * may join unprefixed (control.c) */
	const char *state_dir;	     /* swap file (disk) */
	const char *run_dir;	     /* VM records, copies (tmpfs): state.h */
	unsigned restart_grace_s;    /* a previous daemon's VMs wait this long */
	unsigned name_reserve_s;     /* a gone VM's name stays its owner's */
	int volatile_state;	     /* records in memory: a benchmark anchor */
	struct pk_swap_inject swap_inject; /* tests: swap I/O errors */
	int test_kill_on_remove;     /* tests: SIGKILL itself on a REMOVE read */
	uint64_t budget_bytes;	     /* machine memory for guests; 0: the
				      * cgroup or the host (policy.h) */
	const struct pk_policy_config *policy; /* NULL: the defaults */
	unsigned fault_around_max;   /* pages resolved per sequential fault */
	uint64_t swap_bytes;	     /* swap file size; 0: no swapping */
	unsigned swap_readahead_max; /* pages read per sequential swap-in; 1: off */
	uint64_t scan_bytes_per_s;   /* sharing scanner rate; 0: no scanning */
	uint64_t scan_bytes_per_s_max; /* while it finds new pages; 0: = rate */
	unsigned scan_cpu_percent;   /* its CPU share, on average */
	unsigned share_stable_scans; /* scans a page must keep its hash */
	const struct pk_share_override *share_overrides;
	unsigned n_share_overrides;
	int verbose;
	const char *metrics_listen; /* issue 18: "ADDR:PORT", "unix:PATH";
				     * NULL: no /metrics (metrics.h) */
	/*
	 * The daemon's hooks, called on the loop thread (NULL: none).  tick
	 * runs at the end of every 1 s tick, so a watchdog ping from it
	 * proves the loop turns; reload runs on SIGHUP.
	 */
	void (*tick_hook)(struct pk_engine *e, void *arg);
	void (*reload_hook)(struct pk_engine *e, void *arg);
	void *hook_arg;
};

#define PK_FAULT_AROUND_DEFAULT 256u
#define PK_FAULT_AROUND_LIMIT 1024u
#define PK_SWAP_DEFAULT_BYTES (2ULL << 30)
#define PK_SWAP_READAHEAD_DEFAULT 32u
#define PK_SWAP_READAHEAD_LIMIT 256u
#define PK_SWAP_QUEUE_DEPTH 256
/*
 * 8 GiB of guest RAM per pass in about 14 s (the sharing issue: <= 30 s);
 * scanning idle guests already merged at this rate takes about 10% of a
 * core here.  While passes find pages new to the scanner (just faulted
 * in, or just turned stable) the rate doubles each second up to the
 * maximum, which the CPU share bounds in practice (scan.c).
 */
#define PK_SCAN_DEFAULT_BYTES_PER_S (600ULL << 20)
#define PK_SCAN_DEFAULT_MAX_BYTES_PER_S (4ULL << 30)
/* The limit: half a core on average. */
#define PK_SCAN_CPU_DEFAULT 50u
/* Merged or zero-reclaimed only after one scan (>= 1 s) unchanged. */
#define PK_SHARE_STABLE_DEFAULT 1u
#define PK_SHARE_STABLE_LIMIT 15u

struct pk_engine {
	struct pk_engine_config cfg;
	struct pk_event_loop *loop;
	int listen_fd;
	struct pk_watch *listen_watch; /* NULL while accepting is paused */
	int accept_pause_fd; /* timerfd: resume accepting (EMFILE) */
	uint64_t accept_pauses; /* accept() out of fds, this episode */
	long admin_gid;		/* cfg.admin_group's gid; -1: none */
	int signal_fd;
	int timer_fd;
	int retry_timer_fd; /* fault-path back-off retries (fault.c) */
	uint64_t retry_due_ms; /* when it is armed for; 0: disarmed */
	int stop;
	struct pk_vm *vms; /* registry: singly linked, newest first */
	unsigned n_vms;
	struct pk_conn *conns; /* connections without a VM */
	uint32_t next_vm_id;
	void *zero_buf; /* fault_around_max zero pages, source for COPY */
	void *rx_buf;	/* one received control message (aligned) */
	struct pk_swap_store *swap; /* NULL without a swap file */
	struct pk_content_index *swap_index; /* swap dedup (swap_dedup.h) */
	pk_victim_policy_fn *victim_policy;
	uint64_t rng;	   /* victim sampling state */
	int evict_pending; /* a reclaim waits for a retry (EAGAIN) */
	uint64_t swap_write_errors; /* failed evictions writes (ENOSPC, EIO) */

	/* Sharing scanner (scan.c). */
	int scan_timer_fd;
	struct pk_rate_limit scan_rate;
	void *scan_scratch;	 /* a reclaim batch's copies (PK_SHARE_QUEUE) */
	void *share_tmp;	 /* one page: a candidate's bytes */
	void *scan_junk;	 /* one page: gap pages a copy-out reads */
	struct pk_share_domain *domains;
	uint32_t next_domain_id;
	uint32_t scan_last_vm_id;
	uint64_t scan_bytes, scan_bytes_last;
	uint64_t scan_cpu_ns, scan_cpu_ns_last;
	uint64_t scan_rate_now;		/* bytes/s, between the two limits */
	uint64_t scan_found, scan_found_last; /* pages new to the scanner */
	int64_t scan_cpu_credit_ns;	/* CPU the scanner may still use */
	uint64_t scan_last_tick_ns;
	double scan_mib_per_s, scan_cpu_percent;

	/* Durable state (state.c). */
	int state_dirfd, run_dirfd;
	int state_lock_fd, run_lock_fd;
	struct pk_sfile *swap_sums; /* the swap file's identity and checksums */
	struct pk_vm *waiting;	    /* a previous daemon's VMs, guests not back */
	unsigned n_waiting;
	int swap_lost;	/* the previous daemon's swap file is gone */
	int keep_state; /* stopping: VMs close, their state stays */
	struct pk_policy *policy; /* the memory-state policy (policy.h) */
	struct pk_log log; /* log.h */
	/* Issue 18, metrics.h: host totals (the fault path counts into
	 * them) and the /metrics endpoint (NULL: not serving). */
	struct pk_host_stats host_stats;
	struct pk_metrics *metrics;
};

int pk_engine_init(struct pk_engine *e, const struct pk_engine_config *cfg);
int pk_engine_run(struct pk_engine *e);
void pk_engine_stop(struct pk_engine *e);
void pk_engine_fini(struct pk_engine *e);

/*
 * Wake the loop at due_ms (CLOCK_MONOTONIC) for the fault path's back-off
 * retries, unless the retry timer is armed for earlier already.
 */
void pk_engine_retry_at(struct pk_engine *e, uint64_t due_ms);
uint64_t pk_monotonic_ms(void);
/* Reap the swap store's completions (its eventfd is readable). */
void pk_engine_reap_swap(struct pk_engine *e);

/* Sharing scanner (scan.c). */
int pk_scan_init(struct pk_engine *e);
void pk_scan_fini(struct pk_engine *e);
void pk_scan_tick(struct pk_engine *e, uint64_t seconds);


/* Status of every VM as a JSON document; caller frees. */
char *pk_engine_status_json(struct pk_engine *e);

/* Control socket (control.c). */
int pk_control_listen(struct pk_engine *e);
void pk_control_close(struct pk_engine *e);

#endif
