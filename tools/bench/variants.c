/*
 * variants.c - who serves the first-touch faults: kernel, floor, daemon.
 *
 * What/how/why: see variants.h.
 */
#include "variants.h"
#include "bench_mem.h"
#include "engine/client/pagekeeper-client.h"
#include "timing.h"
#include "touch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *variant_name(enum variant v)
{
	static const char *const names[V_COUNT] = { "kernel", "floor", "pagekeeperd" };

	return (unsigned)v < V_COUNT ? names[v] : "?";
}

struct served {
	struct bench_mem mem;
	struct pk_client *client;
};

static pid_t server_pid(const struct bench_env *env, enum variant v)
{
	if (v == V_FLOOR)
		return env->floor->pid;
	if (v == V_DAEMON)
		return env->daemon->pid;
	return 0;
}

static int setup(struct bench_env *env, enum variant v, size_t len,
		 struct served *s, char *err, size_t err_len)
{
	memset(s, 0, sizeof(*s));
	int r = bench_mem_alloc(&s->mem, len, env->anon);
	if (r < 0) {
		snprintf(err, err_len, "allocate %zu KiB of %s memory: %s",
			 len >> 10, env->anon ? "anon" : "memfd", strerror(-r));
		return r;
	}
	if (v == V_FLOOR) {
		r = floor_register(env->floor, s->mem.addr, len, err, err_len);
	} else if (v == V_DAEMON) {
		if (!env->daemon) {
			snprintf(err, err_len, "no daemon");
			r = -ENOENT;
			goto fail;
		}
		char name[64];
		struct pk_client_region reg = { .addr = s->mem.addr, .length = len,
						.file_offset = 0 };
		snprintf(name, sizeof(name), "pk-bench-%d-%u", (int)getpid(),
			 ++env->attach_seq);
		struct pk_client_opts o = {
			.socket_path = env->daemon->sock,
			.vm_name = name,
			.ram_fd = s->mem.fd,
			.regions = &reg,
			.n_regions = 1,
			.reconnect = 0,
		};
		char why[256] = "";
		watchdog_enter(env->wd, "pk_client_attach", env->daemon->pid);
		uint64_t t0 = now_ns();
		r = pk_client_attach(&o, &s->client, why, sizeof(why));
		uint64_t dt = now_ns() - t0;
		watchdog_leave(env->wd);
		if (r < 0) {
			snprintf(err, err_len, "pk_client_attach(%zu KiB %s): %s%s%s",
				 len >> 10, env->anon ? "anon" : "memfd", strerror(-r),
				 why[0] ? ": " : "", why);
			s->client = NULL;
			goto fail;
		}
		env->attaches++;
		env->attach_ns_total += dt;
		if (dt > env->attach_ns_max)
			env->attach_ns_max = dt;
	}
	if (r < 0)
		goto fail;
	return 0;
fail:
	bench_mem_free(&s->mem);
	return r;
}

static void teardown(struct bench_env *env, enum variant v, struct served *s)
{
	if (v == V_FLOOR) {
		floor_unregister(env->floor, s->mem.addr, s->mem.len);
	} else if (v == V_DAEMON && s->client) {
		watchdog_enter(env->wd, "pk_client_detach", env->daemon->pid);
		uint64_t t0 = now_ns();
		pk_client_detach(s->client);
		uint64_t dt = now_ns() - t0;
		watchdog_leave(env->wd);
		env->detach_ns_total += dt;
		if (dt > env->detach_ns_max)
			env->detach_ns_max = dt;
		s->client = NULL;
	}
	bench_mem_free(&s->mem);
}

int run_random(struct bench_env *env, enum variant v, const uint32_t *perm,
	       size_t n, uint64_t *lat_ns, size_t *present, char *err,
	       size_t err_len)
{
	struct served s;
	int r = setup(env, v, n * BENCH_PAGE, &s, err, err_len);

	if (r < 0)
		return r;
	watchdog_enter(env->wd, v == V_KERNEL ? "kernel random touch" :
			v == V_FLOOR ? "floor random touch" : "pagekeeperd random touch",
		       server_pid(env, v));
	r = touch_random(s.mem.addr, perm, n, lat_ns, present, &env->wd->prog);
	if (r < 0) {
		snprintf(err, err_len, "mincore: %s", strerror(-r));
	} else {
		size_t bad = touch_verify(s.mem.addr, perm, n, &env->wd->prog);
		if (bad) {
			snprintf(err, err_len, "content check: %zu of %zu touched pages "
				 "do not read as a zero page with our one write", bad, n);
			r = -EIO;
		}
	}
	watchdog_leave(env->wd);
	teardown(env, v, &s);
	return r;
}

int run_sequential(struct bench_env *env, enum variant v, size_t npages,
		   uint64_t *ns, char *err, size_t err_len)
{
	struct served s;
	int r = setup(env, v, npages * BENCH_PAGE, &s, err, err_len);

	if (r < 0)
		return r;
	watchdog_enter(env->wd, v == V_KERNEL ? "kernel sequential touch" :
			v == V_FLOOR ? "floor sequential touch" :
			"pagekeeperd sequential touch", server_pid(env, v));
	*ns = touch_sequential(s.mem.addr, npages, &env->wd->prog);
	size_t bad = touch_verify(s.mem.addr, NULL, npages, &env->wd->prog);
	watchdog_leave(env->wd);
	teardown(env, v, &s);
	if (bad) {
		snprintf(err, err_len, "content check: %zu of %zu touched pages do not "
			 "read as a zero page with our one write", bad, npages);
		return -EIO;
	}
	return 0;
}
