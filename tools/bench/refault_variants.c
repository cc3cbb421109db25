/*
 * refault_variants.c - one round of refaults under pagekeeperd or under
 * the floor, for one page kind.
 *
 * What/how/why: see refault_variants.h.
 */
#include "refault_variants.h"
#include "bench_mem.h"
#include "engine/client/pagekeeper-client.h"
#include "swap_touch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VM_GONE_TIMEOUT_S 30

const char *rf_variant_name(int v)
{
	static const char *const n[RV_COUNT] = { "pagekeeperd", "floor" };

	return v >= 0 && v < RV_COUNT ? n[v] : "?";
}

/* Watchdog phase names (they must outlive the phase). */
static const char *phase_name(enum rf_variant v, enum page_kind k)
{
	static const char *const n[RV_COUNT][KIND_COUNT] = {
		{ "pagekeeperd zero-page refaults", "pagekeeperd shared-page refaults" },
		{ "floor zero-page faults", "floor copy faults" },
	};
	return n[v][k];
}

static int attach(struct refault_env *env, struct bench_mem *mem, char *vm, size_t vm_len,
		  struct pk_client **client, char *err, size_t err_len)
{
	char domain[64], why[256] = "";

	++env->vm_seq;
	snprintf(vm, vm_len, "pk-bench-refault-%d-%u", (int)getpid(), env->vm_seq);
	snprintf(domain, sizeof(domain), "pk-bench-refault-%d-%u-dom", (int)getpid(),
		 env->vm_seq);
	struct pk_client_region reg = { .addr = mem->addr, .length = mem->len,
					.file_offset = 0 };
	struct pk_client_opts o = {
		.socket_path = env->daemon->sock,
		.vm_name = vm,
		.ram_fd = mem->fd,
		.regions = &reg,
		.n_regions = 1,
		.share_domain = domain,
		.reconnect = 0,
	};
	watchdog_enter(env->wd, "pk_client_attach", env->daemon->pid);
	int r = pk_client_attach(&o, client, why, sizeof(why));
	watchdog_leave(env->wd);
	if (r < 0) {
		*client = NULL;
		snprintf(err, err_len, "pk_client_attach(%zu MiB memfd): %s%s%s", mem->len >> 20,
			 strerror(-r), why[0] ? ": " : "", why);
	}
	return r;
}

/* Detach, then wait until the daemon has torn the VM down. */
static int detach(struct refault_env *env, struct pk_client *c, const char *vm, char *err,
		  size_t err_len)
{
	watchdog_enter(env->wd, "pk_client_detach", env->daemon->pid);
	pk_client_detach(c);
	watchdog_leave(env->wd);
	return wait_vm_gone(env->daemon, vm, VM_GONE_TIMEOUT_S, err, err_len);
}

/* The touch list of pages that are out; all n of them must be. */
static int make_list(const struct bench_mem *mem, const uint32_t *perm, size_t npages,
		     uint32_t *list, size_t n, char *err, size_t err_len)
{
	long got = touch_list_out(mem->addr, perm, npages, list, n);

	if (got < 0) {
		snprintf(err, err_len, "mincore: %s", strerror((int)-got));
		return (int)got;
	}
	if ((size_t)got < n) {
		snprintf(err, err_len, "only %ld of the region's %zu pages are out of RAM, "
			 "%zu needed (lower --pages or raise --size)", got, npages, n);
		return -ENOSPC;
	}
	return 0;
}

/* Shared kind: touches that refault the second page of a merged pair. */
static int count_seconds(enum page_kind k, const uint32_t *list, size_t n, size_t npages,
			 struct round_out *out, char *err, size_t err_len)
{
	long s = k == KIND_SHARED ? touch_list_seconds(list, n, npages) : 0;

	if (s < 0) {
		snprintf(err, err_len, "out of memory");
		return (int)s;
	}
	out->seconds = (size_t)s;
	return 0;
}

/* Timed touches and the content check, under the watchdog. */
static int touch_and_check(struct refault_env *env, enum rf_variant v, enum page_kind k,
			   pid_t server, struct bench_mem *mem, size_t npages,
			   const uint32_t *list, size_t n, uint64_t seed,
			   uint64_t *lat[ACC_COUNT], struct round_out *out,
			   const char *vm, char *err, size_t err_len)
{
	struct vm_pages before, after;
	char first[320] = "";
	int r = 0;

	if (vm && (r = vm_pages_read(env->daemon, vm, &before, err, err_len)) < 0)
		return r;
	watchdog_enter(env->wd, phase_name(v, k), server);
	r = refault_touch(mem->addr, list, n, lat, out->resident, &env->wd->prog);
	watchdog_leave(env->wd);
	if (r < 0) {
		snprintf(err, err_len, "mincore: %s", strerror(-r));
		return r;
	}
	if (vm) {
		if ((r = vm_pages_read(env->daemon, vm, &after, err, err_len)) < 0)
			return r;
		out->faults = after.faults_total - before.faults_total;
	}
	watchdog_enter(env->wd, "content check", server);
	size_t bad = refault_verify(mem->addr, list, n, npages, k, seed, first, sizeof(first));
	watchdog_leave(env->wd);
	if (bad) {
		snprintf(err, err_len, "content check: %zu of %zu touched pages wrong; "
			 "first: %s", bad, n, first);
		return -EIO;
	}
	return 0;
}

static int pk_round(struct refault_env *env, enum page_kind k, size_t npages,
		    struct bench_mem *mem, const uint32_t *perm, uint32_t *list, size_t n,
		    uint64_t seed, uint64_t *lat[ACC_COUNT], struct round_out *out,
		    char *err, size_t err_len)
{
	struct pk_client *c = NULL;
	char vm[64];
	int r = attach(env, mem, vm, sizeof(vm), &c, err, err_len);

	if (r < 0)
		return r;
	r = wait_reclaimed(env->daemon, vm, k, (double)mem->len / (1 << 20), env->min_pct,
			   env->wait_timeout_s, &out->reclaimed, &out->wait_s, err, err_len);
	if (r == 0)
		r = make_list(mem, perm, npages, list, n, err, err_len);
	if (r == 0)
		r = count_seconds(k, list, n, npages, out, err, err_len);
	if (r == 0)
		r = touch_and_check(env, RV_DAEMON, k, env->daemon->pid, mem, npages, list, n,
				    seed, lat, out, vm, err, err_len);
	if (r == 0)
		return detach(env, c, vm, err, err_len);
	char ignore[256];
	detach(env, c, vm, ignore, sizeof(ignore));
	return r;
}

static int floor_round(struct refault_env *env, enum page_kind k, size_t npages,
		       struct bench_mem *mem, const uint32_t *perm, uint32_t *list,
		       size_t n, uint64_t seed, uint64_t *lat[ACC_COUNT],
		       struct round_out *out, char *err, size_t err_len)
{
	struct floor_handler *f = env->floor;
	size_t contents = kind_contents(npages);
	int r;

	/* Empty the region as the daemon's reclaim does: a hole punch. */
	if (fallocate(mem->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
		      (off_t)mem->len) < 0) {
		r = -errno;
		snprintf(err, err_len, "punching the floor's region: %s", strerror(errno));
		return r;
	}
	if (k == KIND_ZERO) {
		r = floor_register(f, mem->addr, mem->len, err, err_len);
	} else {
		content_fill(f->src, 0, contents, seed);
		r = floor_register_copy(f, mem->addr, mem->len, contents, err, err_len);
	}
	if (r < 0)
		return r;
	r = make_list(mem, perm, npages, list, n, err, err_len);
	if (r == 0)
		r = count_seconds(k, list, n, npages, out, err, err_len);
	if (r == 0)
		r = touch_and_check(env, RV_FLOOR, k, f->pid, mem, npages, list, n, seed, lat,
				    out, NULL, err, err_len);
	floor_unregister(f, mem->addr, mem->len);
	return r;
}

int refault_round(struct refault_env *env, enum rf_variant v, enum page_kind k,
		  size_t npages, const uint32_t *perm, size_t n, uint64_t seed,
		  uint64_t *lat[ACC_COUNT], struct round_out *out, char *err,
		  size_t err_len)
{
	struct bench_mem mem;
	uint32_t *list = malloc(n * sizeof(*list));
	int r;

	memset(out, 0, sizeof(*out));
	if (!list) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	if ((r = bench_mem_alloc(&mem, npages * BENCH_PAGE, false)) < 0) {
		snprintf(err, err_len, "memfd region of %zu MiB: %s",
			 npages * BENCH_PAGE >> 20, strerror(-r));
		free(list);
		return r;
	}
	if ((r = kind_fill(mem.addr, npages, k, seed)) < 0) {
		snprintf(err, err_len, "filling %zu MiB with %s pages: %s",
			 npages * BENCH_PAGE >> 20, kind_name(k), strerror(-r));
	} else if (v == RV_DAEMON) {
		r = pk_round(env, k, npages, &mem, perm, list, n, seed, lat, out, err, err_len);
	} else {
		r = floor_round(env, k, npages, &mem, perm, list, n, seed, lat, out, err,
				err_len);
	}
	bench_mem_free(&mem);
	free(list);
	return r;
}
