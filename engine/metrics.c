/*
 * metrics.c - GET /metrics: every host and per-VM figure in the
 * Prometheus text exposition format (version 0.0.4).
 *
 * What: pagekeeperd's figures under conventional names and base units
 * (bytes, seconds, ratios, *_total counters) for Prometheus to scrape;
 * README "Metrics" lists each with the vCenter term it maps to.  The
 * figures are the ones `pagekeeper status` shows (status.c), read from the
 * same counters at the moment of the request, plus host totals that
 * outlive their VMs (e->host_stats, metrics.h) and the fault latency
 * histogram the fault path records.
 *
 * How: a tiny HTTP/1.x server on the engine's epoll loop.  The listener
 * and every connection are non-blocking watches.  A connection reads its
 * request head (up to PK_METRICS_REQ_MAX bytes, to the blank line), then
 * the whole answer is rendered into one buffer and written as fast as
 * the client takes it: on EAGAIN the watch waits for EPOLLOUT, so a
 * client that never reads costs one buffer and one fd, never a blocked
 * loop.  Connections beyond PK_METRICS_CONNS_MAX are closed on accept; a
 * 1 s timerfd closes those that made no progress for PK_METRICS_IDLE_MS
 * (or that trickles for PK_METRICS_LIFETIME_MS in all) and resumes
 * accepting after EMFILE.  Every answer closes its
 * connection (Connection: close), which keeps the state machine to
 * read, write, close.
 *
 * Why here and like this: the daemon must not grow a thread (everything
 * hangs off the engine and its one loop), and a scrape must never delay
 * a guest's fault: rendering walks the VM list once per family (tens of
 * microseconds for tens of VMs), between two batches of the loop.
 */
#include "engine/metrics.h"
#include "engine/engine.h"
#include "engine/mem_state.h"
#include "engine/policy.h"
#include "engine/share.h"
#include "engine/vm.h"
#include "engine/alloc.h"
#include "swapper/swap_store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h> /* isnan, isinf: macros, no libm */
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

struct mconn {
	struct pk_metrics *m;
	int fd;
	struct pk_watch *w;
	char req[PK_METRICS_REQ_MAX];
	size_t req_len;
	char *out; /* the answer, once the request is read */
	size_t out_len, out_off;
	uint64_t last_ms; /* the last progress */
	uint64_t start_ms; /* accepted */
	struct mconn *next;
};

struct pk_metrics {
	struct pk_engine *e;
	int listen_fd;
	struct pk_watch *listen_watch; /* NULL while paused (EMFILE) */
	int timer_fd;
	struct pk_watch *timer_watch;
	struct mconn *conns;
	unsigned n_conns;
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	uint64_t scrapes, refused, timed_out;
};

/* ---- the listen address ------------------------------------------------ */

static int why_is(char *why, size_t n, const char *msg)
{
	snprintf(why, n, "%s", msg);
	return -EINVAL;
}

int pk_metrics_parse_listen(const char *spec, struct sockaddr_storage *ss,
			    socklen_t *len, char *why, size_t whylen)
{
	char host[64];
	const char *colon, *h = spec;
	size_t hl;
	char *end;
	unsigned long port;

	memset(ss, 0, sizeof(*ss));
	if (strncmp(spec, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		const char *path = spec + 5;
		if (path[0] != '/')
			return why_is(why, whylen, "want unix:/ABSOLUTE/PATH");
		if (strlen(path) >= sizeof(un->sun_path))
			return why_is(why, whylen, "socket path too long");
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, path);
		*len = (socklen_t)sizeof(*un);
		return 0;
	}
	colon = strrchr(spec, ':');
	if (!colon)
		return why_is(why, whylen, "want ADDR:PORT (loopback) or "
			      "unix:PATH");
	hl = (size_t)(colon - spec);
	if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
		h = spec + 1;
		hl -= 2;
	}
	if (!hl || hl >= sizeof(host))
		return why_is(why, whylen, "want ADDR:PORT (loopback) or "
			      "unix:PATH");
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || port == 0 || port > 65535)
		return why_is(why, whylen, "bad port: want 1..65535");
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		if ((ntohl(in4->sin_addr.s_addr) >> 24) != 127)
			return why_is(why, whylen, "not a loopback address: "
				      "the endpoint shows VM names, so it "
				      "listens on 127.0.0.0/8, ::1 or a UNIX "
				      "socket only");
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = (socklen_t)sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return why_is(why, whylen, "not a loopback address: "
				      "the endpoint shows VM names, so it "
				      "listens on 127.0.0.0/8, ::1 or a UNIX "
				      "socket only");
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = (socklen_t)sizeof(*in6);
		return 0;
	}
	return why_is(why, whylen, "bad address: want 127.0.0.1, [::1], "
		      "localhost or unix:PATH");
}

/* ---- rendering ------------------------------------------------------- */

struct sb {
	char *buf;
	size_t len, cap;
	int oom;
};

static void sb_printf(struct sb *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		n = vsnprintf(b->buf ? b->buf + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 16384;
		while (cap - b->len <= (size_t)n)
			cap *= 2;
		char *nb = realloc(b->buf, cap);
		if (!nb) {
			b->oom = 1;
			return;
		}
		b->buf = nb;
		b->cap = cap;
	}
}

static void family(struct sb *b, const char *name, const char *type,
		   const char *help)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the format wants: \\, \" and \n. */
static void label_value(struct sb *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			sb_printf(b, "\\\\");
		else if (*s == '"')
			sb_printf(b, "\\\"");
		else if (*s == '\n')
			sb_printf(b, "\\n");
		else
			sb_printf(b, "%c", *s);
	}
}

static void value_double(struct sb *b, double v)
{
	if (isnan(v))
		sb_printf(b, " NaN\n");
	else if (isinf(v))
		sb_printf(b, " %sInf\n", v > 0 ? "+" : "-");
	else if (v > -9007199254740992.0 && v < 9007199254740992.0 && /* 2^53 */
		 v == (double)(int64_t)v)
		sb_printf(b, " %.0f\n", v);
	else
		sb_printf(b, " %.17g\n", v);
}

static void sample_u(struct sb *b, const char *name, uint64_t v)
{
	sb_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void sample_d(struct sb *b, const char *name, double v)
{
	sb_printf(b, "%s", name);
	value_double(b, v);
}

/* One family, one sample, integer value. */
static void one_u(struct sb *b, const char *name, const char *type,
		  const char *help, uint64_t v)
{
	family(b, name, type, help);
	sample_u(b, name, v);
}

static void one_d(struct sb *b, const char *name, const char *type,
		  const char *help, double v)
{
	family(b, name, type, help);
	sample_d(b, name, v);
}

static void vm_sample(struct sb *b, const char *name, const struct pk_vm *vm,
		      double v)
{
	sb_printf(b, "%s{vm=\"", name);
	label_value(b, vm->name);
	sb_printf(b, "\"}");
	value_double(b, v);
}

/* A per-VM figure: what one VM shows, as a double. */
typedef double vm_fig_fn(const struct pk_vm *vm);

#define PAGES_B(n) ((double)(n) * (double)PK_PAGE_SIZE)

static double f_configured(const struct pk_vm *vm)
{
	return PAGES_B(vm->pages.n_pages);
}
static double f_granted(const struct pk_vm *vm)
{
	return PAGES_B(vm->pages.count[PK_PAGE_RESIDENT] +
		       vm->pages.count[PK_PAGE_SHARED]);
}
static double f_active(const struct pk_vm *vm)
{
	return pk_active_frac(&vm->policy.active) *
	       (double)vm->configured_bytes;
}
static double f_target(const struct pk_vm *vm)
{
	return (double)vm->policy.target_bytes;
}
static double f_resident(const struct pk_vm *vm)
{
	return PAGES_B(vm->pages.count[PK_PAGE_RESIDENT]);
}
static double f_zero(const struct pk_vm *vm)
{
	return PAGES_B(vm->pages.count[PK_PAGE_ZERO]);
}
static double f_shared(const struct pk_vm *vm)
{
	return PAGES_B(vm->pages.count[PK_PAGE_SHARED]);
}
static double f_ballooned(const struct pk_vm *vm)
{
	return PAGES_B(vm->pages.count[PK_PAGE_REMOVED]);
}
static double f_swapped(const struct pk_vm *vm)
{
	return PAGES_B(vm->pages.count[PK_PAGE_SWAPPED]);
}
static double f_untouched(const struct pk_vm *vm)
{
	return PAGES_B(vm->pages.count[PK_PAGE_UNTOUCHED]);
}
static double f_lost(const struct pk_vm *vm)
{
	return PAGES_B(vm->pages.count[PK_PAGE_POISONED]);
}
static double f_faults(const struct pk_vm *vm)
{
	return (double)vm->stats.faults;
}
static double f_swapins(const struct pk_vm *vm)
{
	return (double)vm->stats.swapins;
}
static double f_swap_written(const struct pk_vm *vm)
{
	/* Evictions that took a reference on a used slot wrote nothing. */
	return PAGES_B(vm->stats.evictions - vm->stats.swap_dedup_slots);
}
static double f_zero_reclaimed(const struct pk_vm *vm)
{
	return PAGES_B(vm->stats.zero_reclaimed);
}
static double f_merged(const struct pk_vm *vm)
{
	return PAGES_B(vm->stats.share_merged);
}
static double f_stalled(const struct pk_vm *vm)
{
	uint64_t ms = vm->policy.stalled_ms;

	if (vm->policy.parked_since_ms)
		ms += pk_monotonic_ms() - vm->policy.parked_since_ms;
	return (double)ms / 1000.0;
}
static double f_shares(const struct pk_vm *vm)
{
	return (double)vm->policy.shares;
}

static const struct vm_family {
	const char *name, *type, *help;
	vm_fig_fn *fig;
} vm_families[] = {
	{ "pagekeeper_vm_configured_bytes", "gauge",
	  "Guest RAM size the VM registered (vCenter: Memory Size).",
	  f_configured },
	{ "pagekeeper_vm_granted_bytes", "gauge",
	  "Guest pages backed by machine memory: resident plus shared "
	  "(vCenter: Granted).", f_granted },
	{ "pagekeeper_vm_active_bytes", "gauge",
	  "Sampled active memory (vCenter: Active).", f_active },
	{ "pagekeeper_vm_target_bytes", "gauge",
	  "Memory the allocation gives the VM (vCenter: Target / mem.target).",
	  f_target },
	{ "pagekeeper_vm_resident_bytes", "gauge",
	  "Guest pages resident and private (vCenter: Consumed, less shared).",
	  f_resident },
	{ "pagekeeper_vm_zero_bytes", "gauge",
	  "Guest pages reclaimed because they were all zeros (vCenter: Zero).",
	  f_zero },
	{ "pagekeeper_vm_shared_bytes", "gauge",
	  "Guest pages merged into canonical copies (vCenter: Shared).",
	  f_shared },
	{ "pagekeeper_vm_ballooned_bytes", "gauge",
	  "Guest pages the guest gave back (balloon, discard) "
	  "(vCenter: Ballooned).", f_ballooned },
	{ "pagekeeper_vm_swapped_bytes", "gauge",
	  "Guest pages in the host swap file (vCenter: Swapped).", f_swapped },
	{ "pagekeeper_vm_untouched_bytes", "gauge",
	  "Guest pages never touched since registration.", f_untouched },
	{ "pagekeeper_vm_lost_bytes", "gauge",
	  "Guest pages lost to swap read or checksum errors (the guest gets a "
	  "memory error on them).", f_lost },
	{ "pagekeeper_vm_shares", "gauge",
	  "The VM's memory shares for the allocation (vCenter: Shares).",
	  f_shares },
	{ "pagekeeper_vm_faults_total", "counter",
	  "Page faults the daemon read for the VM.", f_faults },
	{ "pagekeeper_vm_swapins_total", "counter",
	  "Pages read back from the swap file (vCenter: Swap in).", f_swapins },
	{ "pagekeeper_vm_swap_written_bytes_total", "counter",
	  "Bytes of the VM written to the swap file (vCenter: Swap out).",
	  f_swap_written },
	{ "pagekeeper_vm_zero_reclaimed_bytes_total", "counter",
	  "Bytes reclaimed because they were all zeros.", f_zero_reclaimed },
	{ "pagekeeper_vm_share_merged_bytes_total", "counter",
	  "Bytes merged into canonical copies.", f_merged },
	{ "pagekeeper_vm_stalled_seconds_total", "counter",
	  "Time the VM's faults waited for memory in the low state.",
	  f_stalled },
};

static void render_vms(struct sb *b, const struct pk_engine *e)
{
	if (!e->vms)
		return; /* no family without samples */
	for (size_t f = 0; f < sizeof(vm_families) / sizeof(vm_families[0]);
	     f++) {
		const struct vm_family *vf = &vm_families[f];
		family(b, vf->name, vf->type, vf->help);
		for (const struct pk_vm *vm = e->vms; vm; vm = vm->next)
			vm_sample(b, vf->name, vm, vf->fig(vm));
	}
}

static void render_histogram(struct sb *b, const struct pk_fault_hist *h)
{
	static const uint64_t le[PK_FAULT_HIST_N] = PK_FAULT_HIST_LE_NS;
	const char *n = "pagekeeper_fault_latency_seconds";
	uint64_t cum = 0;

	family(b, n, "histogram",
	       "Fault resolution time, from the daemon reading the fault to "
	       "the page in place (swap-ins: to the copy after the read); "
	       "faults stalled in the low state or backing off are not in it.");
	for (unsigned i = 0; i < PK_FAULT_HIST_N; i++) {
		cum += h->bucket[i];
		sb_printf(b, "%s_bucket{le=\"%g\"} %llu\n", n,
			  (double)le[i] / 1e9, (unsigned long long)cum);
	}
	cum += h->bucket[PK_FAULT_HIST_N];
	sb_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", n,
		  (unsigned long long)cum);
	sb_printf(b, "%s_sum %.9f\n", n, (double)h->sum_ns / 1e9);
	sb_printf(b, "%s_count %llu\n", n, (unsigned long long)cum);
	one_d(b, "pagekeeper_fault_latency_max_seconds", "gauge",
	      "The slowest fault resolution since the daemon started.",
	      (double)h->max_ns / 1e9);
}

static void render_host(struct sb *b, struct pk_engine *e,
			const struct pk_metrics *m)
{
	const struct pk_policy *p = e->policy;
	const struct pk_host_stats *hs = &e->host_stats;

	if (p) {
		const struct pk_mem_states *st = &p->states;
		family(b, "pagekeeper_state", "gauge",
		       "The host memory state, 1 for the current one (vCenter: "
		       "Memory State high, soft, hard, low).");
		for (int s = 0; s < PK_NSTATES; s++)
			sb_printf(b, "pagekeeper_state{state=\"%s\"} %d\n",
				  pk_mem_state_name((enum pk_mem_state)s),
				  st->state == (enum pk_mem_state)s);
		family(b, "pagekeeper_state_entered_total", "counter",
		       "Times each memory state was entered.");
		for (int s = 0; s < PK_NSTATES; s++)
			sb_printf(b, "pagekeeper_state_entered_total{state=\"%s\"} "
				  "%llu\n", pk_mem_state_name((enum pk_mem_state)s),
				  (unsigned long long)st->entered[s]);
		family(b, "pagekeeper_state_seconds_total", "counter",
		       "Time spent in each memory state.");
		for (int s = 0; s < PK_NSTATES; s++)
			sb_printf(b, "pagekeeper_state_seconds_total{state=\"%s\"} "
				  "%.3f\n", pk_mem_state_name((enum pk_mem_state)s),
				  (double)st->time_ms[s] / 1000.0);
		one_u(b, "pagekeeper_state_transitions_total", "counter",
		      "Memory state changes.", st->transitions);
		one_d(b, "pagekeeper_free_ratio", "gauge",
		      "Free memory over the budget, 0..1, that the state is "
		      "decided from.", p->last.free_pct / 100.0);
		one_u(b, "pagekeeper_budget_bytes", "gauge",
		      "Machine memory for the guests (--budget, the cgroup's "
		      "limit or the host's).", p->last.total_bytes);
		one_u(b, "pagekeeper_used_bytes", "gauge",
		      "Of the budget, in use.", p->last.used_bytes);
		if (p->last.psi_some_avg10 >= 0)
			one_d(b, "pagekeeper_memory_pressure_some_ratio", "gauge",
			      "PSI memory some avg10, 0..1.",
			      p->last.psi_some_avg10 / 100.0);
		one_u(b, "pagekeeper_balloon_commands_total", "counter",
		      "Balloon targets the policy sent.", p->balloon_cmds);
		if (p->cfg.swap_write_budget)
			one_u(b, "pagekeeper_swap_write_budget_bytes", "gauge",
			      "Most bytes the policy evicts per budget period.",
			      p->cfg.swap_write_budget);
	}
	one_u(b, "pagekeeper_vms", "gauge", "VMs registered.", e->n_vms);
	one_u(b, "pagekeeper_vms_waiting", "gauge",
	      "A previous daemon's VMs whose guests have not reconnected.",
	      e->n_waiting);
	one_u(b, "pagekeeper_faults_total", "counter",
	      "Page faults the daemon read, every VM since it started.",
	      hs->faults);
	render_histogram(b, &hs->fault_latency);
	one_u(b, "pagekeeper_swapins_total", "counter",
	      "Pages read back from the swap file, every VM.", hs->swapins);
	one_d(b, "pagekeeper_swap_written_bytes_total", "counter",
	      "Bytes written to the swap file, every VM.",
	      PAGES_B(hs->swap_written_pages));
	if (e->swap) {
		struct pk_swap_stats ss;
		pk_swap_store_stats(e->swap, &ss);
		one_d(b, "pagekeeper_swap_size_bytes", "gauge",
		      "The swap file's size.",
		      PAGES_B(pk_swap_slots_total(e->swap)));
		one_d(b, "pagekeeper_swap_used_bytes", "gauge",
		      "Of the swap file, in use.",
		      PAGES_B(pk_swap_slots_used(e->swap)));
		one_u(b, "pagekeeper_swap_write_errors_total", "counter",
		      "Eviction writes that failed (the pages stayed).",
		      e->swap_write_errors);
		one_u(b, "pagekeeper_swap_io_errors_total", "counter",
		      "Swap file I/O errors.", ss.io_errors);
		one_u(b, "pagekeeper_swap_checksum_errors_total", "counter",
		      "Swap reads that failed their checksum.",
		      ss.checksum_errors);
	}
	uint64_t store = 0;
	for (const struct pk_share_domain *d = e->domains; d; d = d->next)
		store += pk_share_domain_bytes(d);
	one_u(b, "pagekeeper_share_store_bytes", "gauge",
	      "Memory the sharing stores hold: canonical copies, metadata, "
	      "candidate indexes.", store);
	one_d(b, "pagekeeper_scan_cpu_seconds_total", "counter",
	      "CPU time the sharing scanner used.",
	      (double)e->scan_cpu_ns / 1e9);
	one_u(b, "pagekeeper_metrics_scrapes_total", "counter",
	      "Requests this endpoint answered.", m->scrapes);
	one_u(b, "pagekeeper_metrics_refused_total", "counter",
	      "Connections closed on accept: too many open.", m->refused);
	one_u(b, "pagekeeper_metrics_timeouts_total", "counter",
	      "Connections closed after making no progress.", m->timed_out);
}

char *pk_metrics_render(struct pk_engine *e, size_t *len)
{
	static const struct pk_metrics none = { .listen_fd = -1 };
	struct sb b = { 0 };

	render_host(&b, e, e->metrics ? e->metrics : &none);
	render_vms(&b, e);
	if (b.oom || !b.buf) {
		free(b.buf);
		return NULL;
	}
	*len = b.len;
	return b.buf;
}

/* ---- connections ----------------------------------------------------- */

static void conn_close(struct pk_metrics *m, struct mconn *c)
{
	for (struct mconn **pp = &m->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	pk_watch_del(m->e->loop, c->w);
	close(c->fd);
	free(c->out);
	free(c);
	m->n_conns--;
}

static pk_watch_fn conn_event;

/* Wait for ev on c's fd (the loop has no modify: a new watch). */
static int conn_watch(struct pk_metrics *m, struct mconn *c, uint32_t ev)
{
	pk_watch_del(m->e->loop, c->w);
	c->w = pk_watch_add(m->e->loop, c->fd, ev, conn_event, c);
	return c->w ? 0 : -errno;
}

/* Write what the client takes: 1 when done, 0 on EAGAIN, -1 on error. */
static int conn_write(struct mconn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off,
				 c->out_len - c->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		c->out_off += (size_t)n;
		c->last_ms = pk_monotonic_ms();
	}
	return 1;
}

static void set_answer(struct mconn *c, const char *status, const char *body,
		       size_t body_len, const char *ctype)
{
	struct sb b = { 0 };

	sb_printf(&b, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: "
		  "%zu\r\nConnection: close\r\n\r\n", status, ctype, body_len);
	if (!b.oom && body_len) {
		char *nb = realloc(b.buf, b.len + body_len);
		if (nb) {
			memcpy(nb + b.len, body, body_len);
			b.buf = nb;
			b.len += body_len;
		} else {
			b.oom = 1;
		}
	}
	if (b.oom) {
		free(b.buf);
		b.buf = NULL;
		b.len = 0;
	}
	c->out = b.buf;
	c->out_len = b.len;
}

static void error_answer(struct mconn *c, const char *status)
{
	char body[128];
	int n = snprintf(body, sizeof(body), "%s\n", status);

	set_answer(c, status, body, (size_t)n, "text/plain; charset=utf-8");
}

/* The request head is complete: the answer into c->out. */
static void answer(struct pk_metrics *m, struct mconn *c)
{
	char method[16], target[256];
	const char *line_end = memchr(c->req, '\n', c->req_len);
	int n;

	if (!line_end || sscanf(c->req, "%15s %255s HTTP/1.%*[01]%n", method,
				target, &n) < 2) {
		error_answer(c, "400 Bad Request");
		return;
	}
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		error_answer(c, "405 Method Not Allowed");
		return;
	}
	char *q = strchr(target, '?');
	if (q)
		*q = '\0';
	if (strcmp(target, "/metrics")) {
		error_answer(c, "404 Not Found");
		return;
	}
	size_t len = 0;
	m->scrapes++; /* this answer counts itself */
	char *text = pk_metrics_render(m->e, &len);
	if (!text) {
		error_answer(c, "503 Service Unavailable");
		return;
	}
	set_answer(c, "200 OK", text, strcmp(method, "HEAD") ? len : 0,
		   "text/plain; version=0.0.4; charset=utf-8");
	if (!strcmp(method, "HEAD") && c->out) {
		/* HEAD: the length of the body it would get, no body. */
		free(c->out);
		c->out = NULL;
		struct sb b = { 0 };
		sb_printf(&b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; "
			  "version=0.0.4; charset=utf-8\r\nContent-Length: "
			  "%zu\r\nConnection: close\r\n\r\n", len);
		c->out = b.oom ? (free(b.buf), NULL) : b.buf;
		c->out_len = b.oom ? 0 : b.len;
	}
	free(text);
}

/* The head ends with a blank line (CRLF CRLF, or bare LF LF). */
static int head_complete(const struct mconn *c)
{
	for (size_t i = 1; i < c->req_len; i++)
		if (c->req[i] == '\n' &&
		    (c->req[i - 1] == '\n' ||
		     (i >= 3 && c->req[i - 1] == '\r' && c->req[i - 2] == '\n' &&
		      c->req[i - 3] == '\r')))
			return 1;
	return 0;
}

static void conn_event(struct pk_event_loop *loop, struct pk_watch *w,
		       uint32_t events, void *data)
{
	struct mconn *c = data;
	struct pk_metrics *m = c->m;
	int r;

	(void)loop;
	(void)w;
	if (c->out) {
		/* Writing: EPOLLOUT, or EPOLLHUP/ERR from a client gone. */
		r = conn_write(c);
		if (r != 0)
			conn_close(m, c);
		return;
	}
	for (;;) {
		if (c->req_len == sizeof(c->req)) {
			error_answer(c, "431 Request Header Fields Too Large");
			break;
		}
		ssize_t n = recv(c->fd, c->req + c->req_len,
				 sizeof(c->req) - c->req_len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (events & (EPOLLHUP | EPOLLERR))
				conn_close(m, c);
			return; /* more to come */
		}
		if (n <= 0) {
			conn_close(m, c); /* closed before a whole request */
			return;
		}
		c->req_len += (size_t)n;
		c->last_ms = pk_monotonic_ms();
		if (head_complete(c)) {
			answer(m, c);
			break;
		}
	}
	if (!c->out) {
		conn_close(m, c); /* out of memory for the answer */
		return;
	}
	shutdown(c->fd, SHUT_RD);
	r = conn_write(c);
	if (r != 0 || conn_watch(m, c, EPOLLOUT) < 0)
		conn_close(m, c);
}

static pk_watch_fn listen_event;

static void listen_resume(struct pk_metrics *m)
{
	if (!m->listen_watch)
		m->listen_watch = pk_watch_add(m->e->loop, m->listen_fd, EPOLLIN,
					       listen_event, m);
}

static void listen_event(struct pk_event_loop *loop, struct pk_watch *w,
			 uint32_t events, void *data)
{
	struct pk_metrics *m = data;

	(void)loop;
	(void)w;
	(void)events;
	for (int i = 0; i < 64; i++) {
		int fd = accept4(m->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Level-triggered: pause until the next tick
				 * rather than spin on a pending connection. */
				pk_watch_del(m->e->loop, m->listen_watch);
				m->listen_watch = NULL;
			}
			return; /* EAGAIN, or the client gave up */
		}
		if (m->n_conns >= PK_METRICS_CONNS_MAX) {
			m->refused++;
			close(fd);
			continue;
		}
		struct mconn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		/* A bounded send buffer (no autotuning): a client that never
		 * reads pins 2 x this much kernel memory, not megabytes. */
		int sndbuf = PK_METRICS_SNDBUF;
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
		c->m = m;
		c->fd = fd;
		c->start_ms = c->last_ms = pk_monotonic_ms();
		c->w = pk_watch_add(m->e->loop, fd, EPOLLIN, conn_event, c);
		if (!c->w) {
			close(fd);
			free(c);
			continue;
		}
		c->next = m->conns;
		m->conns = c;
		m->n_conns++;
	}
}

/* Every second: close connections that made no progress; resume. */
static void timer_event(struct pk_event_loop *loop, struct pk_watch *w,
			uint32_t events, void *data)
{
	struct pk_metrics *m = data;
	uint64_t ticks, now = pk_monotonic_ms();
	struct mconn *c, *next;

	(void)loop;
	(void)w;
	(void)events;
	(void)!read(m->timer_fd, &ticks, sizeof(ticks));
	for (c = m->conns; c; c = next) {
		next = c->next;
		if (now - c->last_ms >= PK_METRICS_IDLE_MS ||
		    now - c->start_ms >= PK_METRICS_LIFETIME_MS) {
			m->timed_out++;
			conn_close(m, c);
		}
	}
	listen_resume(m);
}

/* ---- start, stop ----------------------------------------------------- */

/* A UNIX path left by a daemon that died: nobody answers on it. */
static int stale_unix(const struct sockaddr_un *un)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), stale;
	struct stat st;

	if (fd < 0)
		return 0;
	stale = lstat(un->sun_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
		connect(fd, (const struct sockaddr *)un, sizeof(*un)) < 0 &&
		errno == ECONNREFUSED;
	close(fd);
	return stale;
}

int pk_metrics_start(struct pk_engine *e, const char *spec)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char why[256];
	struct pk_metrics *m;
	int err;

	if (e->metrics)
		return -EBUSY;
	if (pk_metrics_parse_listen(spec, &ss, &len, why, sizeof(why)) < 0) {
		pk_log(&e->log, "metrics: bad listen address '%s': %s", spec, why);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->e = e;
	m->timer_fd = -1;
	m->listen_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
					       SOCK_CLOEXEC, 0);
	if (m->listen_fd < 0)
		goto fail_errno;
	if (ss.ss_family == AF_UNIX) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
		/* bind() creates the file with the socket inode's mode (less
		 * the umask): never wider than it ends up, not even briefly. */
		if (fchmod(m->listen_fd, e->admin_gid >= 0 ? 0660 : 0600) < 0)
			goto fail_errno;
		if (bind(m->listen_fd, (const struct sockaddr *)&ss, len) < 0) {
			if (errno != EADDRINUSE || !stale_unix(un))
				goto fail_errno;
			unlink(un->sun_path);
			if (bind(m->listen_fd, (const struct sockaddr *)&ss,
				 len) < 0)
				goto fail_errno;
		}
		strcpy(m->unix_path, un->sun_path);
		/* Before listen(): nobody can connect while it is wider. */
		if (e->admin_gid >= 0) {
			if (chown(m->unix_path, (uid_t)-1, (gid_t)e->admin_gid) < 0 ||
			    chmod(m->unix_path, 0660) < 0)
				goto fail_errno;
		} else if (chmod(m->unix_path, 0600) < 0) {
			goto fail_errno;
		}
	} else {
		int one = 1;
		setsockopt(m->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one,
			   sizeof(one));
		if (bind(m->listen_fd, (const struct sockaddr *)&ss, len) < 0)
			goto fail_errno;
	}
	if (listen(m->listen_fd, 16) < 0)
		goto fail_errno;
	m->timer_fd = timerfd_create(CLOCK_MONOTONIC,
				     TFD_NONBLOCK | TFD_CLOEXEC);
	if (m->timer_fd < 0)
		goto fail_errno;
	struct itimerspec its = { .it_interval = { 1, 0 }, .it_value = { 1, 0 } };
	if (timerfd_settime(m->timer_fd, 0, &its, NULL) < 0)
		goto fail_errno;
	m->timer_watch = pk_watch_add(e->loop, m->timer_fd, EPOLLIN,
				      timer_event, m);
	if (!m->timer_watch)
		goto fail_errno;
	listen_resume(m);
	if (!m->listen_watch)
		goto fail_errno;
	e->metrics = m;
	pk_log(&e->log, "metrics: serving /metrics on %s", spec);
	return 0;

fail_errno:
	err = -errno;
	pk_log_prio(&e->log, LOG_ERR, "metrics: cannot listen on %s: %s", spec,
	       strerror(-err));
	pk_watch_del(e->loop, m->timer_watch);
	if (m->timer_fd >= 0)
		close(m->timer_fd);
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	if (m->unix_path[0])
		unlink(m->unix_path);
	free(m);
	return err;
}

void pk_metrics_stop(struct pk_engine *e)
{
	struct pk_metrics *m = e->metrics;

	if (!m)
		return;
	while (m->conns)
		conn_close(m, m->conns);
	pk_watch_del(e->loop, m->listen_watch);
	pk_watch_del(e->loop, m->timer_watch);
	close(m->listen_fd);
	close(m->timer_fd);
	if (m->unix_path[0])
		unlink(m->unix_path);
	free(m);
	e->metrics = NULL;
}
