/*
 * restart_part.c - part D of pk-bench-swap: what a pagekeeperd restart
 * costs a guest whose RAM is swapped out.
 *
 * What: each round, three variants, each on a fresh lab guest (pk-guestsim
 * --idle-before, unique content, --verify) of --evict-size RAM, filled,
 * then RECLAIMed whole (pages_swapped must equal its page count):
 *   no restart (the anchor): the guest is woken at once;
 *   SIGKILL + start, SIGTERM + start: the daemon is stopped by that signal
 *     (SIGKILL: it died of it; SIGTERM: it exited 0) and a new one started
 *     on the same --state-dir and --run-dir with the same arguments
 *     (daemon_restart), then the guest is woken.
 * Measured: from the new daemon's fork/exec until it answers a STATUS
 * request, and until the VM is adopted (in "vms", "waiting_vms" empty).
 * The guest's client library reconnects by itself every 100 ms
 * (PK_RECONNECT_INTERVAL_MS, engine/client/client.c), so adoption comes up
 * to that long after the socket answers; both times are reported.  Then
 * from SIGUSR1 (the end of the guest's idle) until STATUS shows the VM's
 * first swap-in (and how many pages had come in by then), and until the
 * guest exits after checking every page (exit 0: the restart lost
 * nothing).  The daemon's own first start, on empty dirs, is timed the
 * same way: the anchor of the restart times.
 * How: one private pagekeeperd for the part, restarted in place by the
 * kill variants and stopped at the end on every path; STATUS polled every
 * POLL_US, its mean round trip reported (it bounds the resolution of the
 * first swap-in).  The variant order rotates every round.
 * Why: the durable state is worth its cost only if a restarted daemon
 * gives the guests back everything, fast; that takes the same guest and
 * the same swapped GiB with and without the restart, in one run.
 */
#include "bench_mem.h"
#include "guest_proc.h"
#include "reclaim_req.h"
#include "status_json.h"
#include "swap_parts.h"
#include "timing.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define RESTART_SWAP_MARGIN (256ul << 20)
#define POLL_US 200
#define ANSWER_TIMEOUT_S 10.0
#define ADOPT_TIMEOUT_S 10.0
#define STOP_TIMEOUT_MS 10000

struct rctx {
	const struct swap_opts *o;
	struct pk_daemon d;
	const char *guestsim;
	unsigned seq;
	double poll_sum_ms;
	unsigned polls;
};

static double ms_since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e6;
}

/* Generous: the fill, the RECLAIM or the verify of --evict-size at 20 MiB/s. */
static double work_timeout_s(size_t bytes)
{
	return 60.0 + (double)(bytes >> 20) / 20.0;
}

/* One STATUS, its round trip counted. */
static int status_get(struct rctx *c, json_object **root, char *err, size_t err_len)
{
	uint64_t t = now_ns();
	int r = status_fetch(c->d.sock, 5, root, err, err_len);

	if (r == 0) {
		c->poll_sum_ms += ms_since(t);
		c->polls++;
	}
	return r;
}

/* ms from the daemon's fork/exec to its first STATUS reply. */
static int wait_answer(struct rctx *c, double *ms, char *err, size_t err_len)
{
	for (;;) {
		json_object *root;
		if (status_get(c, &root, err, err_len) == 0) {
			*ms = ms_since(c->d.spawn_ns);
			json_object_put(root);
			return 0;
		}
		if (!daemon_alive(&c->d)) {
			snprintf(err, err_len, "pagekeeperd died before answering STATUS");
			return -ECHILD;
		}
		if (ms_since(c->d.spawn_ns) > ANSWER_TIMEOUT_S * 1e3) {
			snprintf(err, err_len, "no STATUS reply within %.0f s of the start",
				 ANSWER_TIMEOUT_S);
			return -ETIMEDOUT;
		}
		usleep(POLL_US);
	}
}

/* Until the VM is in "vms" and no VM waits: ms from exec, its swapped MiB. */
static int wait_adopted(struct rctx *c, const struct guest *g, double *ms, double *mib,
			char *err, size_t err_len)
{
	for (;;) {
		json_object *root, *w;
		int r = status_get(c, &root, err, err_len);
		if (r < 0)
			return r;
		json_object *vm = status_find_vm(root, g->name);
		bool none_waiting = json_object_object_get_ex(root, "waiting_vms", &w) &&
				    json_object_array_length(w) == 0;
		if (vm && none_waiting) {
			*ms = ms_since(c->d.spawn_ns);
			*mib = status_num(vm, "swapped_mib", -1);
			json_object_put(root);
			return 0;
		}
		json_object_put(root);
		if (!guest_alive(g)) {
			snprintf(err, err_len, "guest %s died before it was adopted", g->name);
			return -ECHILD;
		}
		if (ms_since(c->d.spawn_ns) > ADOPT_TIMEOUT_S * 1e3) {
			snprintf(err, err_len, "VM %s not adopted within %.0f s of the start "
				 "(its client retries every 100 ms)", g->name, ADOPT_TIMEOUT_S);
			return -ETIMEDOUT;
		}
		usleep(POLL_US);
	}
}

/* The VM's figure key from STATUS, -1 when absent. */
static int vm_figure(struct rctx *c, const char *vm, const char *key, double *v,
		     char *err, size_t err_len)
{
	json_object *root;
	int r = status_get(c, &root, err, err_len);

	if (r < 0)
		return r;
	*v = status_num(status_find_vm(root, vm), key, -1);
	json_object_put(root);
	if (*v < 0) {
		snprintf(err, err_len, "STATUS has no %s for VM %s", key, vm);
		return -ENOENT;
	}
	return 0;
}

/* Fresh idle guest of --evict-size, filled, then RECLAIMed whole. */
static int guest_swapped(struct rctx *c, unsigned r, struct guest *g, char *err,
			 size_t err_len)
{
	size_t bytes = c->o->evict_bytes, pages = bytes / BENCH_PAGE;
	char size[32], seed[32], name[64];
	struct reclaim_result rr;

	snprintf(size, sizeof(size), "%zu", bytes);
	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)(c->o->seed * 1000 + r));
	snprintf(name, sizeof(name), "pk-bench-restart-%d-%u", (int)getpid(), ++c->seq);
	const char *const args[] = { "--socket", c->d.sock, "--name", name, "--size", size,
				     "--seed", seed, "--content", "zero=0,shared=0",
				     "--workload", "idle", "--idle-before", "86400",
				     "--verify", "--quiet", NULL };
	int ret = guest_start(g, c->guestsim, name, args, err, err_len);
	if (ret == 0)
		ret = guests_wait_idle(g, 1, work_timeout_s(bytes), &c->d, "restart", 10, err,
				       err_len);
	if (ret == 0)
		ret = reclaim_request(c->d.sock, name, bytes, (int)work_timeout_s(bytes), &rr,
				      err, err_len);
	if (ret == 0 && (rr.status || rr.pages_swapped != pages)) {
		snprintf(err, err_len, "RECLAIM of the guest's %zu unique pages: status %d "
			 "(%s), swapped %llu: expected all of them", pages, rr.status, rr.reason,
			 (unsigned long long)rr.pages_swapped);
		ret = rr.status ? rr.status : -EIO;
	}
	return ret;
}

/* Stop the daemon with sig, as it must end, and start a new one; times. */
static int restart(struct rctx *c, int sig, const struct guest *g, struct restart_result *x,
		   char *err, size_t err_len)
{
	unsigned i = x->rounds;
	int st = 0, ret = daemon_kill(&c->d, sig, STOP_TIMEOUT_MS, &st, err, err_len);

	if (ret < 0)
		return ret;
	if (sig == SIGKILL ? !WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL :
			     !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(err, err_len, "pagekeeperd ended with %s %d on %s",
			 WIFEXITED(st) ? "status" : "signal",
			 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), strsignal(sig));
		return -EIO;
	}
	if ((ret = daemon_restart(&c->d, err, err_len)) < 0 ||
	    (ret = wait_answer(c, &x->answer_ms[i], err, err_len)) < 0)
		return ret;
	return wait_adopted(c, g, &x->adopt_ms[i], &x->adopted_mib[i], err, err_len);
}

/* SIGUSR1 ends the guest's idle: its verify swaps every page in. */
static int wake_and_verify(struct rctx *c, struct guest *g, struct restart_result *x,
			   char *err, size_t err_len)
{
	unsigned i = x->rounds;
	double base, now;
	int st, ret = vm_figure(c, g->name, "swapins", &base, err, err_len);

	if (ret < 0)
		return ret;
	uint64_t t0 = now_ns();
	if (kill(g->pid, SIGUSR1) < 0) {
		ret = -errno;
		snprintf(err, err_len, "kill(guest, SIGUSR1): %s", strerror(errno));
		return ret;
	}
	for (;;) {
		if ((ret = vm_figure(c, g->name, "swapins", &now, err, err_len)) < 0)
			return ret;
		if (now > base)
			break;
		if (ms_since(t0) > 30e3) {
			snprintf(err, err_len, "no swap-in within 30 s of waking the guest");
			return -ETIMEDOUT;
		}
		usleep(POLL_US);
	}
	x->first_swapin_ms[i] = ms_since(t0);
	x->first_swapins[i] = now - base;
	if ((ret = guest_wait_exit(g, work_timeout_s(c->o->evict_bytes), &st)) < 0) {
		snprintf(err, err_len, "guest %s did not finish its verify", g->name);
		return ret;
	}
	x->verify_ms[i] = ms_since(t0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(err, err_len, "pk-guestsim --verify %s %d (1: a page was wrong, 5: not "
			 "every page checked): the guest did not get its RAM back whole",
			 WIFEXITED(st) ? "exited" : "died of signal",
			 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		return -EIO;
	}
	return 0;
}

static int run_variant(struct rctx *c, int v, unsigned r, struct swap_results *res,
		       char *err, size_t err_len)
{
	struct restart_result *x = &res->rs[v];
	struct guest g;
	int ret = guest_swapped(c, r, &g, err, err_len);

	if (ret == 0)
		ret = vm_figure(c, g.name, "swapped_mib", &x->swapped_mib[x->rounds], err,
				err_len);
	if (ret == 0 && v != RV_NONE)
		ret = restart(c, v == RV_KILL ? SIGKILL : SIGTERM, &g, x, err, err_len);
	if (ret == 0)
		ret = wake_and_verify(c, &g, x, err, err_len);
	if (ret == 0)
		x->rounds++;
	guests_stop(&g, 1, 2000);
	return ret;
}

int restart_part(const struct swap_opts *o, const char *exe, const char *guestsim,
		 struct swap_results *res)
{
	struct rctx c = { .o = o, .guestsim = guestsim };
	char swap[32], err[1024];
	int ret;

	c.d.pid = -1;
	res->restart_rounds = o->restart_rounds;
	snprintf(swap, sizeof(swap), "%zuM",
		 (o->evict_bytes + RESTART_SWAP_MARGIN + (1ul << 20) - 1) >> 20);
	const char *const args[] = { "--swap-size", swap, NULL };
	fprintf(stderr, "bench: starting private pagekeeperd %s for part D ...\n",
		res->daemon_path);
	ret = daemon_start(&c.d, exe, args, err, sizeof(err));
	if (ret == 0)
		ret = wait_answer(&c, &res->cold_answer_ms, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "pk-bench-swap: part D: %s\n", err);
		goto out;
	}
	snprintf(res->restart_daemon_args, sizeof(res->restart_daemon_args), "%s", c.d.args);
	for (unsigned r = 0; r < o->restart_rounds; r++) {
		for (int k = 0; k < RV_COUNT; k++) {
			int v = (int)((r + (unsigned)k) % RV_COUNT);
			struct restart_result *x = &res->rs[v];
			fprintf(stderr, "bench: restart round %u/%u: %s: a %zu MiB guest, all "
				"of it RECLAIMed ...\n", r + 1, o->restart_rounds,
				restart_variant_name(v), o->evict_bytes >> 20);
			ret = run_variant(&c, v, r, res, err, sizeof(err));
			if (ret < 0) {
				fprintf(stderr, "pk-bench-swap: %s, round %u: %s\n",
					restart_variant_name(v), r + 1, err);
				goto out;
			}
			unsigned i = x->rounds - 1;
			if (v != RV_NONE)
				fprintf(stderr, "bench:   %.0f MiB swapped at the stop; STATUS "
					"answered %.1f ms, VM adopted %.1f ms after exec\n",
					x->swapped_mib[i], x->answer_ms[i], x->adopt_ms[i]);
			fprintf(stderr, "bench:   first swap-in %.2f ms, verify of every "
				"page %.0f ms after waking the guest\n", x->first_swapin_ms[i],
				x->verify_ms[i]);
		}
	}
	if (!daemon_alive(&c.d)) {
		fprintf(stderr, "pk-bench-swap: pagekeeperd exited during part D\n");
		ret = -ECHILD;
		goto out;
	}
	res->status_poll_ms = c.polls ? c.poll_sum_ms / c.polls : 0;
	ret = 0;
out:
	if (ret < 0 && c.d.log[0]) {
		fprintf(stderr, "bench: part D's pagekeeperd log (last lines):\n");
		daemon_log_tail(&c.d, stderr, 30);
	}
	daemon_stop(&c.d);
	return ret;
}
