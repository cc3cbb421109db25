/*
 * share_watch.c - follow one sharing variant from t0 until it settles.
 *
 * What/how/why: see share_watch.h.
 */
#include "share_watch.h"
#include "ksm_ctl.h"
#include "proc_mem.h"
#include "share_footprint.h"
#include "share_status.h"
#include "timing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIB (1024.0 * 1024.0)
#define PAGE_MIB (4096.0 / MIB)
#define STATUS_TIMEOUT_S 5
#define SETTLE_PASSES 3

struct sample {
	double t;		/* seconds since t0 */
	double proc_mib;	/* our processes' memory (carried between PSS samples) */
	bool proc_new;		/* proc_mib measured in this sample */
	double avail_mib, free_mib;
	double cpu_s;
	double counter_mib;
	const char *counter_src;
	int64_t passes;		/* absolute; -1 unknown */
	uint64_t scanned;	/* pages, absolute */
	bool has_scanned;
	double profit_mib, store_mib;
	bool has_profit, has_store;
	double scan_cpu_percent;
};

/* One crossing of 95%: the previous measured point and the result. */
struct crossing {
	double t_prev, y_prev, cpu_prev;
	double t;		/* < 0: not yet */
	double cpu, saved;
};

static int take_counters(const struct share_watch *w, struct sample *s, char *err,
			 size_t err_len)
{
	int e;

	if (share_mech_is_ksm(w->mech)) {
		struct ksm_counters c;
		if ((e = ksm_read_counters(&c)) < 0) {
			snprintf(err, err_len, "KSM counters: %s", strerror(-e));
			return e;
		}
		s->counter_mib = (double)c.pages_sharing * PAGE_MIB;
		s->counter_src = "KSM pages_sharing";
		s->passes = (int64_t)c.full_scans;
		s->scanned = c.pages_scanned;
		s->has_scanned = c.has_pages_scanned;
		s->profit_mib = (double)c.general_profit / MIB;
		s->has_profit = c.has_general_profit;
		return 0;
	}
	struct share_status st;
	if ((e = share_status_read(w->daemon->sock, STATUS_TIMEOUT_S, &st, err, err_len)) < 0)
		return e;
	s->counter_mib = share_status_saved(&st, &s->counter_src);
	s->passes = INT64_MAX;
	for (unsigned i = 0; i < w->n_guests; i++) {
		int64_t p = share_status_passes(&st, w->guests[i].name);
		if (p < 0) {
			s->passes = -1;
			break;
		}
		if (p < s->passes)
			s->passes = p;
	}
	s->scanned = st.scan_pages;
	s->has_scanned = st.has_scan_pages;
	s->store_mib = st.store_mib;
	s->has_store = st.has_store;
	s->scan_cpu_percent = st.has_scan ? st.scan_cpu_percent : -1;
	return 0;
}

/* with_pss: also the anonymous guests' PSS (else proc_mib is carried over). */
static int take(const struct share_watch *w, bool with_pss, struct sample *s, char *err,
		size_t err_len)
{
	double carried = s->proc_mib, ram, daemon;
	struct meminfo m;
	int e;

	memset(s, 0, sizeof(*s));
	s->proc_mib = carried;
	if ((e = meminfo_read(&m)) < 0) {
		snprintf(err, err_len, "/proc/meminfo: %s", strerror(-e));
		return e;
	}
	s->avail_mib = (double)(m.avail_kib + m.pcp_kib) / 1024.0;
	s->free_mib = (double)(m.free_kib + m.pcp_kib) / 1024.0;
	if ((e = proc_cpu_seconds(w->cpu_pid, &s->cpu_s)) < 0) {
		snprintf(err, err_len, "CPU time of pid %d (%s): %s", (int)w->cpu_pid,
			 w->daemon ? "pagekeeperd" : "ksmd", strerror(-e));
		return e;
	}
	if (w->kind == SHARE_MEMFD || with_pss) {
		if ((e = share_guest_ram(w->guests, w->n_guests, w->kind, &ram, err, err_len)) < 0 ||
		    (e = share_daemon_anon(w->daemon, &daemon, err, err_len)) < 0)
			return e;
		s->proc_mib = ram + daemon;
		s->proc_new = true;
	}
	return take_counters(w, s, err, err_len);
}

static int check_alive(const struct share_watch *w, char *err, size_t err_len)
{
	if (w->daemon && !daemon_alive(w->daemon)) {
		snprintf(err, err_len, "pagekeeperd died during the measurement");
		return -ECHILD;
	}
	for (unsigned i = 0; i < w->n_guests; i++)
		if (!guest_alive(&w->guests[i])) {
			snprintf(err, err_len, "guest %s died during the measurement",
				 w->guests[i].name);
			return -ECHILD;
		}
	return 0;
}

/* Time at which y crosses target between two points (linear). */
static double cross(double t0, double y0, double t1, double y1, double target)
{
	if (y1 <= y0)
		return t1;
	double f = (target - y0) / (y1 - y0);
	return t0 + (f < 0 ? 0 : f > 1 ? 1 : f) * (t1 - t0);
}

/* Feed one measured point (t, y, cpu); records the first crossing of target. */
static void crossing_feed(struct crossing *c, double t, double y, double cpu, double target)
{
	if (c->t < 0 && y >= target) {
		c->t = cross(c->t_prev, c->y_prev, t, y, target);
		double f = t > c->t_prev ? (c->t - c->t_prev) / (t - c->t_prev) : 1;
		c->cpu = c->cpu_prev + f * (cpu - c->cpu_prev);
		c->saved = y;
	}
	c->t_prev = t;
	c->y_prev = y;
	c->cpu_prev = cpu;
}

static void sleep_until(uint64_t ns)
{
	uint64_t now = now_ns();

	if (ns > now) {
		struct timespec ts = { (time_t)((ns - now) / 1000000000u),
				       (long)((ns - now) % 1000000000u) };
		nanosleep(&ts, NULL);
	}
}

/* Processes' saved memory over time, for the time to 95% of the final figure. */
struct history {
	double *t, *saved;
	size_t n, cap;
};

static void history_add(struct history *h, double t, double saved)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 4096;
		double *nt = realloc(h->t, cap * sizeof(*nt));
		if (nt)
			h->t = nt;
		double *ns = nt ? realloc(h->saved, cap * sizeof(*ns)) : NULL;
		if (ns)
			h->saved = ns;
		if (!nt || !ns)
			return; /* keep what we have: only the own-t95 figure suffers */
		h->cap = cap;
	}
	h->t[h->n] = t;
	h->saved[h->n] = saved;
	h->n++;
}

/* First crossing of 95% of the last value, when that is 1% of reachable or more. */
static double own_t95(const struct history *h, double reachable)
{
	if (!h->n || h->saved[h->n - 1] < 0.01 * reachable)
		return -1;
	double target = 0.95 * h->saved[h->n - 1];
	for (size_t i = 0; i < h->n; i++)
		if (h->saved[i] >= target)
			return i ? cross(h->t[i - 1], h->saved[i - 1], h->t[i], h->saved[i], target)
				 : h->t[i];
	return -1;
}

static double saved_proc(const struct share_watch *w, const struct sample *s)
{
	return w->footprint_t0_mib - s->proc_mib + w->head_mib;
}

static void finish(const struct share_watch *w, const struct sample *s0,
		   const struct sample *s, bool capped, const struct crossing *cp,
		   struct variant_result *r)
{
	double total_pages = (double)w->o->guest_bytes * w->n_guests / 4096.0;

	r->elapsed_s = s->t;
	r->cpu_end_s = s->cpu_s - s0->cpu_s;
	r->saved_proc_mib = saved_proc(w, s);
	r->saved_avail_mib = s->avail_mib - s0->avail_mib + w->head_mib;
	r->saved_free_mib = s->free_mib - s0->free_mib + w->head_mib;
	r->counter_mib = s->counter_mib;
	r->counter_src = s->counter_src;
	r->ksm_profit_mib = s->profit_mib;
	r->has_profit = s->has_profit;
	r->pk_store_mib = s->store_mib;
	r->has_store = s->has_store;
	r->scan_cpu_percent = s->scan_cpu_percent;
	r->passes = s->passes >= 0 && s0->passes >= 0 ? s->passes - s0->passes : -1;
	r->scan_mib_per_s = s->has_scanned && s->t > 0 ?
		(double)(s->scanned - s0->scanned) * PAGE_MIB / s->t : -1;
	r->reclaim_mib_per_s = s->t > 0 ? (r->saved_proc_mib - w->head_mib) / s->t : 0;
	if (cp->t >= 0) {
		r->t95_s = cp->t;
		r->cpu_t95_s = cp->cpu - s0->cpu_s;
		r->saved_t95_mib = cp->saved;
		return;
	}
	r->t95_s = -1;
	r->cpu_t95_s = r->cpu_end_s;
	r->saved_t95_mib = r->saved_proc_mib;
	double pages_per_s = s->has_scanned && s->t > 0 ? (double)(s->scanned - s0->scanned) / s->t
							: 0;
	if (share_mech_is_ksm(w->mech) && r->supported && pages_per_s > 0 && capped) {
		r->extrapolated = true;
		r->pass_s = total_pages / pages_per_s;
		r->t95_extrap_s = 2 * r->pass_s;
	}
}

static void progress(const struct share_watch *w, const struct sample *s0,
		     const struct sample *s)
{
	double saved = saved_proc(w, s);

	fprintf(stderr, "bench: %s: %6.1f s: saved %7.1f MiB (%3.0f%% of %.0f MiB reachable; "
		"MemAvailable %+.0f MiB), counter %7.1f MiB, ", w->label, s->t, saved,
		100.0 * saved / w->reachable_mib, w->reachable_mib,
		s->avail_mib - s0->avail_mib + w->head_mib, s->counter_mib);
	if (s->passes >= 0 && s0->passes >= 0)
		fprintf(stderr, "%lld passes, ", (long long)(s->passes - s0->passes));
	fprintf(stderr, "%s CPU %.1f s\n", w->daemon ? "pagekeeperd" : "ksmd",
		s->cpu_s - s0->cpu_s);
}

/*
 * --settled-cpu: after the variant settled, keep it running for that long
 * and measure the CPU share of ksmd / pagekeeperd and the scan rate
 * meanwhile: the cost of scanning merged guests that change nothing.
 */
static int watch_settled(const struct share_watch *w, struct variant_result *r, char *err,
			 size_t err_len)
{
	struct sample a = { 0 }, b = { 0 };
	uint64_t t0 = now_ns();
	int e;

	if ((e = take_counters(w, &a, err, err_len)) < 0)
		return e;
	if ((e = proc_cpu_seconds(w->cpu_pid, &a.cpu_s)) < 0)
		goto no_cpu;
	fprintf(stderr, "bench: %s: settled; watching its CPU for %.0f s ...\n", w->label,
		w->o->settled_cpu_s);
	for (uint64_t t = t0; (double)(t - t0) / 1e9 < w->o->settled_cpu_s; t = now_ns()) {
		sleep_until(t + (uint64_t)(w->o->poll_ms * 1e6));
		if ((e = check_alive(w, err, err_len)) < 0)
			return e;
	}
	if ((e = proc_cpu_seconds(w->cpu_pid, &b.cpu_s)) < 0)
		goto no_cpu;
	double dt = (double)(now_ns() - t0) / 1e9;
	if ((e = take_counters(w, &b, err, err_len)) < 0)
		return e;
	r->settled_s = dt;
	r->settled_cpu_pct = 100 * (b.cpu_s - a.cpu_s) / dt;
	r->settled_scan_mib_s = a.has_scanned && b.has_scanned ?
		(double)(b.scanned - a.scanned) * PAGE_MIB / dt : -1;
	return 0;
no_cpu:
	snprintf(err, err_len, "CPU time of pid %d: %s", (int)w->cpu_pid, strerror(-e));
	return e;
}

int share_watch_run(const struct share_watch *w, struct variant_result *r, char *err,
		    size_t err_len)
{
	const double target = 0.95 * w->reachable_mib;
	const double settle_mib = w->reachable_mib * 0.005 > 4 ? w->reachable_mib * 0.005 : 4;
	const uint64_t period = (uint64_t)(w->o->poll_ms * 1e6);
	struct sample s0 = { .proc_mib = w->footprint_t0_mib }, s;
	struct crossing c_proc = { .t = -1 }, c_avail = { .t = -1 }, c_counter = { .t = -1 };
	struct history h = { 0 };
	bool capped = false;
	int e;

	r->t95_s = r->t95_avail_s = r->t95_counter_s = r->t95_own_s = -1;
	r->settled_cpu_pct = r->settled_scan_mib_s = -1;
	if ((e = take(w, false, &s0, err, err_len)) < 0)
		return e;
	s0.proc_mib = w->footprint_t0_mib;
	uint64_t t0 = now_ns();
	if (share_mech_is_ksm(w->mech) && (e = ksm_write("run", "1")) < 0) {
		snprintf(err, err_len, "write 1 to %s/run: %s", KSM_DIR, strerror(-e));
		return e;
	}
	c_proc.y_prev = saved_proc(w, &s0);
	c_proc.cpu_prev = c_avail.cpu_prev = c_counter.cpu_prev = s0.cpu_s;
	c_avail.y_prev = w->head_mib;
	c_counter.y_prev = s0.counter_mib;
	history_add(&h, 0, c_proc.y_prev);
	s = s0;
	int64_t pass_seen = s0.passes;
	double pass_counter = s0.counter_mib;
	bool settled = false;
	double next_note = w->o->progress_s, next_pss = 0;
	uint64_t tick = t0;
	for (;;) {
		tick += period;
		sleep_until(tick);
		double t = (double)(now_ns() - t0) / 1e9;
		bool pss = t >= next_pss;
		if (pss)
			next_pss = t + w->o->pss_ms / 1000.0;
		if ((e = check_alive(w, err, err_len)) < 0 ||
		    (e = take(w, pss, &s, err, err_len)) < 0)
			break;
		s.t = t;
		if (s.proc_new) {
			crossing_feed(&c_proc, s.t, saved_proc(w, &s), s.cpu_s, target);
			history_add(&h, s.t, saved_proc(w, &s));
		}
		crossing_feed(&c_avail, s.t, s.avail_mib - s0.avail_mib + w->head_mib, s.cpu_s,
			      target);
		crossing_feed(&c_counter, s.t, s.counter_mib, s.cpu_s, target);
		if (s.t >= next_note) {
			progress(w, &s0, &s);
			next_note += w->o->progress_s;
		}
		if (s.passes >= 0 && s.passes > pass_seen) {
			double growth = s.counter_mib - pass_counter;
			pass_seen = s.passes;
			pass_counter = s.counter_mib;
			if (s.passes - s0.passes >= SETTLE_PASSES && growth < settle_mib) {
				snprintf(r->end_reason, sizeof(r->end_reason),
					 "settled (%lld passes, the last added %.1f MiB)",
					 (long long)(s.passes - s0.passes), growth);
				settled = true;
				break;
			}
		}
		bool scanned = s.has_scanned ? s.scanned != s0.scanned : s.passes != s0.passes;
		if (!scanned && s.counter_mib - s0.counter_mib < 1 && s.t >= w->o->idle_s) {
			snprintf(r->end_reason, sizeof(r->end_reason),
				 "idle: no page scanned in %.0f s", s.t);
			break;
		}
		if (s.t >= w->cap_s) {
			snprintf(r->end_reason, sizeof(r->end_reason), "time cap %.0f s", w->cap_s);
			capped = true;
			break;
		}
	}
	if (e == 0 && !s.proc_new) { /* the end figure must be a measured one */
		e = take(w, true, &s, err, err_len);
		s.t = (double)(now_ns() - t0) / 1e9;
		if (e == 0) {
			crossing_feed(&c_proc, s.t, saved_proc(w, &s), s.cpu_s, target);
			history_add(&h, s.t, saved_proc(w, &s));
		}
	}
	if (e == 0) {
		progress(w, &s0, &s);
		finish(w, &s0, &s, capped, &c_proc, r);
		r->t95_avail_s = c_avail.t;
		r->t95_counter_s = c_counter.t;
		r->t95_own_s = own_t95(&h, w->reachable_mib);
		if (settled && w->o->settled_cpu_s > 0)
			e = watch_settled(w, r, err, err_len);
	}
	free(h.t);
	free(h.saved);
	return e;
}
