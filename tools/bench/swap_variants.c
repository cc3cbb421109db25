/*
 * swap_variants.c - one round of pagekeeperd's and the floor's swap-in,
 * and one pagekeeperd eviction for bandwidth.
 *
 * What/how/why: see swap_variants.h.
 */
#include "swap_variants.h"
#include "bench_mem.h"
#include "engine/client/pagekeeper-client.h"
#include "file_floor.h"
#include "proc_mem.h"
#include "swap_touch.h"
#include "timing.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Generous: 60 s plus 5 s per 100 MiB (the disk writes ~400 MB/s). */
static int reclaim_timeout_s(size_t bytes)
{
	return 60 + (int)(bytes / (100ul << 20)) * 5;
}

/* Fresh memfd region with the round's content, attached to the daemon. */
static int attach_filled(struct swap_env *env, size_t pages, uint64_t seed,
			 struct bench_mem *mem, struct pk_client **client,
			 char *name, size_t name_len, char *err, size_t err_len)
{
	size_t len = pages * BENCH_PAGE;
	int r = bench_mem_alloc(mem, len, false);

	*client = NULL;
	if (r < 0) {
		snprintf(err, err_len, "memfd region of %zu MiB: %s", len >> 20, strerror(-r));
		return r;
	}
	content_fill(mem->addr, 0, pages, seed);
	snprintf(name, name_len, "pk-bench-swap-%d-%u", (int)getpid(), ++env->vm_seq);
	struct pk_client_region reg = { .addr = mem->addr, .length = len, .file_offset = 0 };
	struct pk_client_opts o = {
		.socket_path = env->daemon->sock,
		.vm_name = name,
		.ram_fd = mem->fd,
		.regions = &reg,
		.n_regions = 1,
		.reconnect = 0,
	};
	char why[256] = "";
	watchdog_enter(env->wd, "pk_client_attach", env->daemon->pid);
	r = pk_client_attach(&o, client, why, sizeof(why));
	watchdog_leave(env->wd);
	if (r < 0) {
		snprintf(err, err_len, "pk_client_attach(%zu MiB memfd): %s%s%s", len >> 20,
			 strerror(-r), why[0] ? ": " : "", why);
		*client = NULL;
		bench_mem_free(mem);
	}
	return r;
}

static void detach_free(struct swap_env *env, struct bench_mem *mem, struct pk_client *c)
{
	if (c) {
		watchdog_enter(env->wd, "pk_client_detach", env->daemon->pid);
		pk_client_detach(c);
		watchdog_leave(env->wd);
	}
	bench_mem_free(mem);
}

/* RECLAIM the whole region; every page must go to swap. */
static int evict_all(struct swap_env *env, const char *vm, size_t pages,
		     struct reclaim_result *rr, char *err, size_t err_len)
{
	size_t bytes = pages * BENCH_PAGE;
	int r = reclaim_request(env->daemon->sock, vm, bytes, reclaim_timeout_s(bytes),
				rr, err, err_len);

	if (r < 0)
		return r;
	if (rr->status) {
		snprintf(err, err_len, "RECLAIM of %zu pages: status %s: %s (swapped %llu, "
			 "zero %llu, aborted %llu)", pages, strerror(-rr->status), rr->reason,
			 (unsigned long long)rr->pages_swapped,
			 (unsigned long long)rr->pages_zero,
			 (unsigned long long)rr->pages_aborted);
		return rr->status;
	}
	if (rr->pages_swapped != pages) {
		snprintf(err, err_len, "RECLAIM of %zu unique non-zero pages reported "
			 "pages_swapped %llu (zero %llu, aborted %llu): expected all of them",
			 pages, (unsigned long long)rr->pages_swapped,
			 (unsigned long long)rr->pages_zero,
			 (unsigned long long)rr->pages_aborted);
		return -EIO;
	}
	return 0;
}

/* Timed touches plus the content check, under the watchdog. */
static int touch_and_check(struct swap_env *env, const char *phase, pid_t server,
			   const char *base, const uint32_t *perm, size_t n,
			   uint64_t seed, uint64_t *lat_ns, size_t *resident_before,
			   char *err, size_t err_len)
{
	char first[320] = "";

	watchdog_enter(env->wd, phase, server);
	int r = touch_read_random(base, perm, n, lat_ns, resident_before, &env->wd->prog);
	size_t bad = r < 0 ? 0 : content_verify(base, perm, n, seed, first, sizeof(first));
	watchdog_leave(env->wd);
	if (r < 0) {
		snprintf(err, err_len, "mincore: %s", strerror(-r));
		return r;
	}
	if (bad) {
		snprintf(err, err_len, "content check: %zu of %zu touched pages wrong; "
			 "first: %s", bad, n, first);
		return -EIO;
	}
	return 0;
}

/* The timed address-order sweep plus the content check of every page. */
static int sweep_and_check(struct swap_env *env, const char *phase, pid_t server,
			   const char *base, size_t pages, uint64_t seed, uint64_t *ns,
			   char *err, size_t err_len)
{
	char first[320] = "";

	watchdog_enter(env->wd, phase, server);
	*ns = touch_read_seq(base, pages, &env->wd->prog);
	size_t bad = content_verify(base, NULL, pages, seed, first, sizeof(first));
	watchdog_leave(env->wd);
	if (bad) {
		snprintf(err, err_len, "content check: %zu of %zu pages wrong; first: %s",
			 bad, pages, first);
		return -EIO;
	}
	return 0;
}

/* After a full RECLAIM no page of the region may be mapped. */
static int check_all_out(const char *base, size_t pages, char *err, size_t err_len)
{
	long res = resident_pages(base, pages);

	if (res == 0)
		return 0;
	snprintf(err, err_len, "after RECLAIM, mincore says %ld pages of the region are "
		 "still resident%s", res, res < 0 ? " (error)" : "");
	return -EIO;
}

int pk_swapin_round(struct swap_env *env, size_t region_pages,
		    const uint32_t *perm, size_t n, uint64_t seed,
		    uint64_t *lat_ns, size_t *resident_before,
		    struct reclaim_result *rr, char *err, size_t err_len)
{
	struct bench_mem mem;
	struct pk_client *c;
	char vm[64];
	int r = attach_filled(env, region_pages, seed, &mem, &c, vm, sizeof(vm), err, err_len);

	if (r < 0)
		return r;
	r = evict_all(env, vm, region_pages, rr, err, err_len);
	if (r == 0)
		r = check_all_out(mem.addr, region_pages, err, err_len);
	if (r == 0)
		r = touch_and_check(env, "pagekeeperd swap-in touch", env->daemon->pid,
				    mem.addr, perm, n, seed, lat_ns, resident_before, err,
				    err_len);
	detach_free(env, &mem, c);
	return r;
}

/*
 * Both floor rounds: write the source file, map a fresh memfd region and
 * start the floor handler on it.  On success the caller owns mem and f.
 */
static int floor_setup(struct swap_env *env, size_t pages, uint64_t seed,
		       struct bench_mem *mem, struct file_floor *f, char *err,
		       size_t err_len)
{
	int r = file_floor_write_source(env->floor_src, pages, seed, err, err_len);

	if (r < 0)
		return r;
	if ((r = bench_mem_alloc(mem, pages * BENCH_PAGE, false)) < 0) {
		snprintf(err, err_len, "memfd region: %s", strerror(-r));
		return r;
	}
	r = file_floor_start(f, mem->addr, mem->len, env->floor_src, err, err_len);
	if (r < 0)
		bench_mem_free(mem);
	return r;
}

int floor_swapin_round(struct swap_env *env, size_t region_pages,
		       const uint32_t *perm, size_t n, uint64_t seed,
		       uint64_t *lat_ns, size_t *resident_before,
		       char *err, size_t err_len)
{
	struct bench_mem mem;
	struct file_floor f;
	int r = floor_setup(env, region_pages, seed, &mem, &f, err, err_len);

	if (r < 0)
		return r;
	r = touch_and_check(env, "floor swap-in touch", f.pid, mem.addr, perm, n,
			    seed, lat_ns, resident_before, err, err_len);
	file_floor_stop(&f);
	bench_mem_free(&mem);
	return r;
}

int pk_evict_round(struct swap_env *env, size_t pages, uint64_t seed,
		   struct reclaim_result *rr, double *cpu_s, char *err,
		   size_t err_len)
{
	struct bench_mem mem;
	struct pk_client *c;
	char vm[64];
	double cpu0, cpu1;
	int r = attach_filled(env, pages, seed, &mem, &c, vm, sizeof(vm), err, err_len);

	if (r < 0)
		return r;
	r = proc_cpu_seconds(env->daemon->pid, &cpu0);
	if (r == 0)
		r = evict_all(env, vm, pages, rr, err, err_len);
	else
		snprintf(err, err_len, "reading the daemon's CPU time: %s",
			 strerror(-r));
	if (r == 0 && (r = proc_cpu_seconds(env->daemon->pid, &cpu1)) < 0)
		snprintf(err, err_len, "reading the daemon's CPU time: %s",
			 strerror(-r));
	if (r == 0)
		*cpu_s = cpu1 - cpu0;
	detach_free(env, &mem, c);
	return r;
}

int pk_seq_round(struct swap_env *env, size_t pages, uint64_t seed, uint64_t *ns,
		 struct reclaim_result *rr, struct vm_swap_counters *cnt,
		 char *err, size_t err_len)
{
	struct bench_mem mem;
	struct pk_client *c;
	char vm[64];
	int r = attach_filled(env, pages, seed, &mem, &c, vm, sizeof(vm), err, err_len);

	if (r < 0)
		return r;
	r = evict_all(env, vm, pages, rr, err, err_len);
	if (r == 0)
		r = check_all_out(mem.addr, pages, err, err_len);
	if (r == 0)
		r = sweep_and_check(env, "pagekeeperd sequential swap-in", env->daemon->pid,
				    mem.addr, pages, seed, ns, err, err_len);
	if (r == 0)
		r = vm_swap_counters(env->daemon->sock, vm, 30, cnt, err, err_len);
	detach_free(env, &mem, c);
	return r;
}

int floor_seq_round(struct swap_env *env, size_t pages, uint64_t seed, uint64_t *ns,
		    char *err, size_t err_len)
{
	struct bench_mem mem;
	struct file_floor f;
	int r = floor_setup(env, pages, seed, &mem, &f, err, err_len);

	if (r < 0)
		return r;
	r = sweep_and_check(env, "floor sequential swap-in", f.pid, mem.addr, pages,
			    seed, ns, err, err_len);
	file_floor_stop(&f);
	bench_mem_free(&mem);
	return r;
}
