/*
 * balloon_part.c - the runs of pk-bench-balloon.
 *
 * What/how/why: see balloon_part.h.  One run, in order: start the guest,
 * wait for IDLE (filled), send the target, wait until the balloon settles,
 * SIGUSR1 (the work starts), wait for the exit while draining its stdout,
 * parse its JSON report (json-c), check it verified every page.
 */
#include "balloon_part.h"
#include "balloon-bridge/balloon.h"
#include "engine/protocol.h"
#include "guest_proc.h"
#include "status_json.h"
#include "timing.h"

#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define POLL_MS 20		/* STATUS and bridge polling while settling */
#define STATUS_EVERY_MS 1000	/* STATUS while the guest works */
#define OUT_MAX (64u << 20)	/* the guest's JSON report, at most */
#define MIB_EPS (1.0 / 512)	/* half a page, in MiB */

struct bctx {
	struct bal_results *res;
	const struct bal_opts *o;
	struct pk_daemon *d;
	struct watchdog *wd;
	const char *guestsim, *tmpdir;
	unsigned seq;
};

/* One guest, one target. */
struct brun {
	struct guest g;
	char name[64];
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *out;		/* its stdout after IDLE */
	size_t out_len, out_cap;
	bool eof;
	struct pk_balloon *b;	/* no daemon: the bridge we drive */
	uint64_t due_ms;	/* the bridge's next tick */
	bool b_failed;
	char b_why[PK_BALLOON_WHY_MAX];
};

/* Deadlines from the work, generous for a loaded 2-vCPU machine. */
static double fill_timeout_s(const struct bal_opts *o)
{
	return 60.0 + (double)(o->ws_bytes >> 20) / 2.0;
}

/* Inflating at 1 MiB/s at least (the guest pages out to its disk). */
static double settle_timeout_s(uint64_t inflate_bytes)
{
	return 30.0 + (double)(inflate_bytes >> 20);
}

/* 2,000 ops/s at least, and the verify of the working set at 2 MiB/s. */
static double run_timeout_s(const struct bal_opts *o)
{
	return 60.0 + (double)o->ops / 2000.0 + (double)(o->ws_bytes >> 20) / 2.0;
}

static double ms_since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e6;
}

/* Tell the watchdog we are not stuck. */
static void alive(struct bctx *c)
{
	__atomic_add_fetch(&c->wd->prog.done, 1, __ATOMIC_RELAXED);
}

/* Read what the guest printed since; -EPIPE at its end of file. */
static int drain_out(struct brun *r)
{
	for (;;) {
		if (r->out_cap - r->out_len < 4096) {
			size_t cap = r->out_cap ? r->out_cap * 2 : 65536;
			char *p = cap <= OUT_MAX ? realloc(r->out, cap + 1) : NULL;
			if (!p)
				return -ENOMEM;
			r->out = p;
			r->out_cap = cap;
		}
		ssize_t n = read(r->g.out_fd, r->out + r->out_len, r->out_cap - r->out_len);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		if (n == 0) {
			r->eof = true;
			return -EPIPE;
		}
		r->out_len += (size_t)n;
		r->out[r->out_len] = '\0';
	}
}

static void on_event(struct pk_balloon *b, enum pk_balloon_event ev, void *data)
{
	struct brun *r = data;

	if (ev == PK_BLN_EV_FAILED) {
		r->b_failed = true;
		snprintf(r->b_why, sizeof(r->b_why), "%s", pk_balloon_info(b)->why);
	}
}

/*
 * Wait up to ms for the guest's stdout or our bridge's fd, and serve
 * both: its output is kept, the bridge's io and ticks are run.
 */
static int pump(struct brun *r, int ms)
{
	struct pollfd p[2];
	nfds_t n = 0;
	int bfd = -1;

	if (r->b) {
		uint64_t now = now_ns() / 1000000;
		if (r->due_ms <= now)
			r->due_ms = pk_balloon_tick(r->b, now);
		if (r->due_ms > now && r->due_ms - now < (uint64_t)ms)
			ms = (int)(r->due_ms - now);
		uint32_t ev = 0;
		bfd = pk_balloon_fd(r->b, &ev);
		if (bfd >= 0 && ev)
			p[n++] = (struct pollfd){ .fd = bfd,
						  .events = (short)((ev & EPOLLIN ? POLLIN : 0) |
								    (ev & EPOLLOUT ? POLLOUT : 0)) };
		else
			bfd = -1;
	}
	if (!r->eof)
		p[n++] = (struct pollfd){ .fd = r->g.out_fd, .events = POLLIN };
	if (poll(p, n, ms) < 0 && errno != EINTR)
		return -errno;
	if (bfd >= 0 && p[0].revents) {
		short e = p[0].revents;
		pk_balloon_io(r->b, (e & POLLIN ? EPOLLIN : 0) | (e & POLLOUT ? EPOLLOUT : 0) |
					    (e & POLLERR ? EPOLLERR : 0) |
					    (e & POLLHUP ? EPOLLHUP : 0));
	}
	int ret = r->eof ? 0 : drain_out(r);
	return ret == -EPIPE ? 0 : ret;
}

/* STATUS's bool at key of o: 1, 0, or -1 when absent or null. */
static int status_bool(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_boolean))
		return -1;
	return json_object_get_boolean(v);
}

/* BALLOON to pagekeeperd (what `pagekeeper balloon --no-wait` sends). */
static int balloon_request(const char *sock, const char *vm, uint64_t bytes, char *err,
			   size_t err_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	struct pk_balloon_msg m;
	struct pk_balloon_reply rep;
	char buf[sizeof(struct pk_balloon_reply) + 64];
	int fd, e = 0;

	if (pk_balloon_msg_encode(&m, vm, bytes) < 0 || strlen(sock) >= sizeof(sa.sun_path)) {
		snprintf(err, err_len, "VM name or socket path too long");
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = -errno;
		snprintf(err, err_len, "connect %s: %s", sock, strerror(errno));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(fd, &m, sizeof(m), MSG_NOSIGNAL) != (ssize_t)sizeof(m)) {
		e = -errno;
		snprintf(err, err_len, "send BALLOON: %s", strerror(errno));
		goto out;
	}
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	if (n <= 0) {
		e = n < 0 ? -errno : -ECONNRESET;
		snprintf(err, err_len, "no BALLOON_REPLY within %d s: %s", (int)tv.tv_sec,
			 strerror(-e));
		goto out;
	}
	if (pk_balloon_reply_decode(buf, (size_t)n, &rep) < 0) {
		struct pk_reply_msg r;
		if (pk_reply_decode(buf, (size_t)n, &r) == 0)
			snprintf(err, err_len, "BALLOON refused: %s", r.reason);
		else
			snprintf(err, err_len, "malformed BALLOON reply (%zd bytes)", n);
		e = -EPROTO;
		goto out;
	}
	if (rep.status) {
		rep.reason[sizeof(rep.reason) - 1] = '\0';
		snprintf(err, err_len, "BALLOON of %.1f MiB refused: %s (%s)",
			 (double)bytes / 1048576.0, rep.reason, strerror(-rep.status));
		e = rep.status;
	}
out:
	if (fd >= 0)
		close(fd);
	return e;
}

static int start_guest(struct bctx *c, int v, unsigned round, struct brun *r, char *err,
		       size_t err_len)
{
	const struct bal_opts *o = c->o;
	char size[32], ws[32], ops[32], seed[32], locked[32];
	const char *args[GUEST_MAX_ARGS + 1];
	size_t n = 0;

	snprintf(r->name, sizeof(r->name), "pk-bench-balloon-%d-%u", (int)getpid(), ++c->seq);
	if ((size_t)snprintf(r->sock, sizeof(r->sock), "%s/g%u.sock", c->tmpdir, c->seq) >=
	    sizeof(r->sock)) {
		snprintf(err, err_len, "--dir: the guest's socket path %s/g%u.sock is longer "
			 "than a UNIX socket address allows", c->tmpdir, c->seq);
		return -ENAMETOOLONG;
	}
	snprintf(size, sizeof(size), "%zu", o->ram_bytes);
	snprintf(ws, sizeof(ws), "%zu", o->ws_bytes);
	snprintf(ops, sizeof(ops), "%llu", (unsigned long long)o->ops);
	/* The same content and accesses for every variant and target of a round. */
	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)(o->seed * 1000 + round));
	snprintf(locked, sizeof(locked), "%g", o->locked);
	if (v == BV_NODAEMON) {
		args[n++] = "--no-daemon";
	} else {
		args[n++] = "--socket";
		args[n++] = c->d->sock;
	}
	const char *common[] = { "--name", r->name, "--balloon", "--balloon-socket", r->sock,
				 "--size", size, "--working-set", ws, "--workload", "zipf",
				 "--ops", ops, "--seed", seed, "--idle-before", "86400",
				 "--verify", "--json", "--quiet" };
	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		args[n++] = common[i];
	if (v == BV_LOCKED) {
		args[n++] = "--locked";
		args[n++] = locked;
	}
	args[n] = NULL;
	int ret = guest_start(&r->g, c->guestsim, r->name, args, err, err_len);
	if (ret == 0)
		ret = guests_wait_idle(&r->g, 1, fill_timeout_s(o),
				       v == BV_NODAEMON ? NULL : c->d, bal_variant_name(v), 10,
				       err, err_len);
	return ret;
}

/* No daemon: our own lab bridge asks the guest for the target. */
static int settle_direct(struct bctx *c, struct brun *r, uint64_t target, struct bal_run *x,
			 char *err, size_t err_len)
{
	struct pk_balloon_cfg cfg = { .driver = PK_BLN_LAB, .channel = r->sock,
				      .ram_bytes = c->o->ram_bytes, .on_event = on_event,
				      .data = r };
	double limit = settle_timeout_s(c->o->ram_bytes - target) * 1e3;
	char why[256];
	int ret;

	if ((ret = pk_balloon_open(&r->b, &cfg, why, sizeof(why))) < 0) {
		snprintf(err, err_len, "lab balloon bridge to %s: %s", r->sock, why);
		return ret;
	}
	uint64_t t0 = now_ns();
	if ((ret = pk_balloon_set_target(r->b, target, why, sizeof(why))) < 0) {
		snprintf(err, err_len, "set_target %.1f MiB: %s", (double)target / 1048576.0, why);
		return ret;
	}
	for (;;) {
		if ((ret = pump(r, POLL_MS)) < 0) {
			snprintf(err, err_len, "reading the guest: %s", strerror(-ret));
			return ret;
		}
		alive(c);
		const struct pk_balloon_info *in = pk_balloon_info(r->b);
		if (r->b_failed) {
			snprintf(err, err_len, "the guest refused the target %.1f MiB: %s",
				 (double)target / 1048576.0, r->b_why);
			return -EIO;
		}
		if (in->link == PK_BLN_READY && (in->actual_bytes == target || in->stalled)) {
			x->settle_ms = ms_since(t0);
			x->actual_mib = (double)in->actual_bytes / 1048576.0;
			return 0;
		}
		if (!guest_alive(&r->g)) {
			snprintf(err, err_len, "guest %s died while its balloon inflated", r->name);
			return -ECHILD;
		}
		if (ms_since(t0) > limit) {
			snprintf(err, err_len, "the balloon of %s did not reach %.1f MiB nor stall "
				 "within %.0f s: the guest keeps %.1f MiB, link %s%s%s",
				 r->name, (double)target / 1048576.0, limit / 1e3,
				 (double)in->actual_bytes / 1048576.0,
				 pk_balloon_link_name(in->link), in->why[0] ? ", " : "", in->why);
			return -ETIMEDOUT;
		}
	}
}

/* Through pagekeeperd: BALLOON, then STATUS until it settles. */
static int settle_daemon(struct bctx *c, struct brun *r, uint64_t target, struct bal_run *x,
			 char *err, size_t err_len)
{
	double limit = settle_timeout_s(c->o->ram_bytes - target) * 1e3;
	double want = (double)target / 1048576.0, actual = -1;
	uint64_t t0 = now_ns();
	int ret = balloon_request(c->d->sock, r->name, target, err, err_len);

	if (ret < 0)
		return ret;
	for (;;) {
		json_object *root;
		if ((ret = pump(r, POLL_MS)) < 0) {
			snprintf(err, err_len, "reading the guest: %s", strerror(-ret));
			return ret;
		}
		alive(c);
		if ((ret = status_fetch(c->d->sock, 5, &root, err, err_len)) < 0)
			return ret;
		json_object *vm = status_find_vm(root, r->name);
		actual = status_num(vm, "balloon_actual_mib", -1);
		int stalled = status_bool(vm, "balloon_stalled");
		double shortfall = status_num(vm, "balloon_shortfall_mib", -1);
		json_object_put(root);
		if (!vm) {
			snprintf(err, err_len, "STATUS lists no VM %s", r->name);
			return -ENOENT;
		}
		if (fabs(actual - want) < MIB_EPS || stalled == 1) {
			x->settle_ms = ms_since(t0);
			x->actual_mib = x->d_actual_mib = actual;
			x->d_stalled = stalled == 1;
			x->d_shortfall_mib = shortfall;
			return 0;
		}
		if (!daemon_alive(c->d) || !guest_alive(&r->g)) {
			snprintf(err, err_len, "%s died while the balloon inflated",
				 daemon_alive(c->d) ? "the guest" : "pagekeeperd");
			return -ECHILD;
		}
		if (ms_since(t0) > limit) {
			snprintf(err, err_len, "STATUS of %s: balloon_actual_mib %.1f, not the "
				 "target %.1f MiB, and not stalled, %.0f s after BALLOON", r->name,
				 actual, want, limit / 1e3);
			return -ETIMEDOUT;
		}
	}
}

static double jnum(json_object *o, const char *key, bool *ok)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double) ||
	      json_object_is_type(v, json_type_boolean))) {
		*ok = false;
		return 0;
	}
	return json_object_get_double(v);
}

/* The guest's JSON report: its last line that is an object. */
static int parse_report(struct brun *r, struct bal_run *x, char *err, size_t err_len)
{
	char *line = NULL;
	bool ok = true;

	for (char *p = r->out; p && *p;) {
		if (*p == '{')
			line = p;
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	if (line && strchr(line, '\n'))
		*strchr(line, '\n') = '\0';
	json_object *o = line ? json_tokener_parse(line) : NULL;
	if (!o) {
		snprintf(err, err_len, "guest %s printed no JSON report", r->name);
		return -EBADMSG;
	}
	x->run_s = jnum(o, "run_s", &ok);
	x->page_ins_per_s = jnum(o, "page_ins_per_s", &ok);
	x->page_outs_per_s = jnum(o, "page_outs_per_s", &ok);
	x->page_ins = (uint64_t)jnum(o, "page_ins", &ok);
	x->page_outs = (uint64_t)jnum(o, "page_outs", &ok);
	x->balloon_mib = jnum(o, "balloon_mib", &ok);
	x->stalled = jnum(o, "balloon_stalled", &ok) != 0;
	x->shortfall_mib = jnum(o, "shortfall_mib", &ok);
	x->pages_verified = (uint64_t)jnum(o, "pages_verified", &ok);
	double mismatches = jnum(o, "mismatches", &ok);
	json_object_put(o);
	if (!ok) {
		snprintf(err, err_len, "guest %s's JSON report lacks a key (run_s, page_ins, "
			 "balloon_mib, ...): a pk-guestsim without --balloon?", r->name);
		return -EBADMSG;
	}
	if (mismatches != 0 || x->run_s <= 0) {
		snprintf(err, err_len, "guest %s: %.0f mismatches, run time %.3f s", r->name,
			 mismatches, x->run_s);
		return -EIO;
	}
	return 0;
}

/* SIGUSR1: the guest does its --ops; wait for its exit and report. */
static int work(struct bctx *c, int v, struct brun *r, struct bal_run *x, char *err,
		size_t err_len)
{
	double limit = run_timeout_s(c->o) * 1e3;
	uint64_t t0 = now_ns(), next_status = t0;
	int st, ret;

	if (kill(r->g.pid, SIGUSR1) < 0) {
		ret = -errno;
		snprintf(err, err_len, "kill(guest, SIGUSR1): %s", strerror(errno));
		return ret;
	}
	for (;;) {
		if ((ret = pump(r, POLL_MS)) < 0) {
			snprintf(err, err_len, "reading the guest: %s", strerror(-ret));
			return ret;
		}
		alive(c);
		if (guest_wait_exit(&r->g, 0, &st) == 0)
			break;
		if (v != BV_NODAEMON && now_ns() >= next_status) {
			json_object *root;
			if (!daemon_alive(c->d)) {
				snprintf(err, err_len, "pagekeeperd died while the guest worked");
				return -ECHILD;
			}
			if (status_fetch(c->d->sock, 5, &root, err, err_len) == 0) {
				double p = status_num(status_find_vm(root, r->name),
						      "guest_pageins_per_s", -1);
				if (p > x->d_pageins_per_s)
					x->d_pageins_per_s = p;
				json_object_put(root);
			}
			next_status = now_ns() + STATUS_EVERY_MS * 1000000ull;
		}
		if (ms_since(t0) > limit) {
			snprintf(err, err_len, "guest %s did not finish %llu ops and its verify "
				 "within %.0f s", r->name, (unsigned long long)c->o->ops,
				 limit / 1e3);
			return -ETIMEDOUT;
		}
	}
	while (!r->eof && (ret = drain_out(r)) == 0)
		; /* it has exited: the rest is in the pipe */
	if (ret < 0 && ret != -EPIPE) {
		snprintf(err, err_len, "reading the guest: %s", strerror(-ret));
		return ret;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(err, err_len, "pk-guestsim %s %s %d (1: a page was wrong, 5: not every "
			 "page checked; its stderr above says more)", r->name,
			 WIFEXITED(st) ? "exited with status" : "died of signal",
			 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		return -EIO;
	}
	return parse_report(r, x, err, err_len);
}

static int one_run(struct bctx *c, int v, int t, unsigned round, char *err, size_t err_len)
{
	static const char *const phase[BV_COUNT] = { "balloon run, no daemon",
						     "balloon run, pagekeeperd",
						     "balloon run, locked guest" };
	struct bal_cell *cell = &c->res->c[v][t];
	struct bal_run *x = &cell->r[cell->n];
	uint64_t target = c->res->target_bytes[t];
	struct brun r = { .g = { .pid = -1, .in_fd = -1, .out_fd = -1 } };
	int ret;

	memset(x, 0, sizeof(*x));
	x->d_pageins_per_s = -1;
	watchdog_enter(c->wd, phase[v], v == BV_NODAEMON ? 0 : c->d->pid);
	ret = start_guest(c, v, round, &r, err, err_len);
	if (ret == 0)
		ret = v == BV_NODAEMON ? settle_direct(c, &r, target, x, err, err_len)
				       : settle_daemon(c, &r, target, x, err, err_len);
	if (ret == 0)
		ret = work(c, v, &r, x, err, err_len);
	watchdog_leave(c->wd);
	pk_balloon_close(r.b);
	if (r.g.pid > 0 || r.g.out_fd >= 0)
		guests_stop(&r.g, 1, 2000);
	free(r.out);
	if (ret < 0)
		return ret;
	cell->n++;
	fprintf(stderr, "bench:   settled in %.0f ms at %.1f MiB%s; run %.2f s, %.0f page-ins/s, "
		"%.0f page-outs/s, %llu pages verified\n", x->settle_ms, x->actual_mib,
		x->stalled ? " (stalled)" : "", x->run_s, x->page_ins_per_s, x->page_outs_per_s,
		(unsigned long long)x->pages_verified);
	return 0;
}

int balloon_part(struct bal_results *res, struct pk_daemon *d, struct watchdog *wd,
		 const char *guestsim, const char *tmpdir)
{
	struct bctx c = { .res = res, .o = &res->o, .d = d, .wd = wd, .guestsim = guestsim,
			  .tmpdir = tmpdir };
	char err[1024];

	for (unsigned round = 0; round < res->o.rounds; round++) {
		for (int k = 0; k < BV_COUNT; k++) {
			int v = (int)((round + (unsigned)k) % BV_COUNT);
			for (int j = 0; j < BAL_NT; j++) {
				int t = (int)((round + (unsigned)j) % BAL_NT);
				fprintf(stderr, "bench: round %u/%u: %s, balloon %u%% (the guest "
					"keeps %.1f MiB of %.1f MiB) ...\n", round + 1,
					res->o.rounds, bal_variant_name(v), res->pct[t],
					(double)res->target_bytes[t] / 1048576.0,
					(double)res->o.ram_bytes / 1048576.0);
				int ret = one_run(&c, v, t, round, err, sizeof(err));
				if (ret < 0) {
					fprintf(stderr, "pk-bench-balloon: %s, balloon %u%%, round "
						"%u: %s\n", bal_variant_name(v), res->pct[t],
						round + 1, err);
					if (v != BV_NODAEMON) {
						fprintf(stderr, "bench: pagekeeperd log (last "
							"lines):\n");
						daemon_log_tail(d, stderr, 20);
					}
					return ret;
				}
			}
			/* Stretch against the same guest at 0% in this round. */
			double base = res->c[v][0].r[round].run_s;
			for (int t = 0; t < BAL_NT; t++)
				res->c[v][t].stretch[round] = res->c[v][t].r[round].run_s / base;
		}
	}
	return 0;
}
