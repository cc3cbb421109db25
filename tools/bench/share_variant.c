/*
 * share_variant.c - run one sharing variant: one memory kind, one mechanism.
 *
 * What/how/why: see share_variant.h.
 */
#include "share_variant.h"
#include "daemon_proc.h"
#include "guest_proc.h"
#include "ksm_ctl.h"
#include "proc_mem.h"
#include "share_footprint.h"
#include "share_watch.h"
#include "timing.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)
#define GUEST_STOP_GRACE_MS 30000
#define SHARE_DOMAIN "pk-bench-share"

double share_needed_mib(const struct share_opts *o, double mem_total_mib)
{
	double guests = (double)o->guest_bytes * o->guests / MIB;
	double margin = mem_total_mib * 0.10 > 2048 ? mem_total_mib * 0.10 : 2048;

	return guests + margin;
}

static int check_memory(const struct share_opts *o, char *err, size_t err_len)
{
	struct meminfo m;
	int e = meminfo_read(&m);

	if (e < 0) {
		snprintf(err, err_len, "/proc/meminfo: %s", strerror(-e));
		return e;
	}
	double need = share_needed_mib(o, (double)m.total_kib / 1024.0);
	if ((double)m.avail_kib / 1024.0 < need) {
		snprintf(err, err_len, "not enough memory: the guests need %.0f MiB plus a "
			 "margin, %.0f MiB in all, and MemAvailable is %.0f MiB (use a smaller "
			 "--total)", (double)o->guest_bytes * o->guests / MIB, need,
			 (double)m.avail_kib / 1024.0);
		return -ENOMEM;
	}
	return 0;
}

static int ksm_set(const char *name, const char *value, char *err, size_t err_len)
{
	int e = ksm_write(name, value);

	if (e < 0)
		snprintf(err, err_len, "write %s to %s/%s: %s", value, KSM_DIR, name,
			 strerror(-e));
	return e;
}

/* KSM off, then (KSM variants) its speed; run=1 comes at t0. */
static int setup_ksm(const struct share_opts *o, enum share_mech mech, struct variant_result *r,
		     char *err, size_t err_len)
{
	char pages[32], sleep_ms[32];
	int e;

	if ((e = ksm_set("run", "0", err, err_len)) < 0 || !share_mech_is_ksm(mech))
		return e;
	bool full = mech == MECH_KSM_FULL;
	snprintf(pages, sizeof(pages), "%u", full ? o->ksm_full_pages : 100);
	snprintf(sleep_ms, sizeof(sleep_ms), "%u", full ? o->ksm_full_sleep_ms : 20);
	snprintf(r->setting, sizeof(r->setting), "pages_to_scan=%s sleep_millisecs=%s", pages,
		 sleep_ms);
	if ((e = ksm_set("pages_to_scan", pages, err, err_len)) < 0)
		return e;
	return ksm_set("sleep_millisecs", sleep_ms, err, err_len);
}

/* After the guests are gone: unmerge whatever is left and stop KSM. */
static void teardown_ksm(void)
{
	int e = ksm_write("run", "2");

	if (e < 0)
		fprintf(stderr, "pk-bench-share: write 2 to %s/run: %s\n", KSM_DIR, strerror(-e));
	if ((e = ksm_write("run", "0")) < 0)
		fprintf(stderr, "pk-bench-share: write 0 to %s/run: %s\n", KSM_DIR, strerror(-e));
}

static int start_daemon(const struct share_env *env, enum share_mech mech, struct pk_daemon *d,
			struct variant_result *r, char *err, size_t err_len)
{
	const char *rate = mech == MECH_PK_FULL ? env->o->pk_full_rate : env->o->pk_rate;
	const char *args[8];
	int n = 0, e;

	args[n++] = "--swap-size";
	args[n++] = "0";
	if (rate) {
		args[n++] = "--scan-rate";
		args[n++] = rate;
	}
	if (mech == MECH_PK_FULL) { /* full speed: the whole core too */
		args[n++] = "--scan-cpu";
		args[n++] = "100";
	}
	args[n] = NULL;

	snprintf(r->setting, sizeof(r->setting), "--scan-rate %s%s",
		 rate ? rate : "(default)",
		 mech == MECH_PK_FULL ? " --scan-cpu 100" : "");
	if ((e = daemon_start(d, env->daemon_exe, args, err, err_len)) < 0) {
		fprintf(stderr, "pk-bench-share: %s\n", err);
		if (d->log[0])
			daemon_log_tail(d, stderr, 30);
	}
	return e;
}

static int start_guests(const struct share_env *env, enum share_kind kind, enum share_mech mech,
			const struct pk_daemon *d, struct guest *g, char *err, size_t err_len)
{
	const struct share_opts *o = env->o;
	char size[32], seed[32];

	snprintf(size, sizeof(size), "%" PRIu64, o->guest_bytes);
	snprintf(seed, sizeof(seed), "%" PRIu64, o->seed);
	for (unsigned i = 0; i < o->guests; i++) {
		char name[64];
		const char *args[GUEST_MAX_ARGS + 1];
		size_t n = 0;
		snprintf(name, sizeof(name), "share-%s-%u", share_kind_name(kind), i);
		const char *fixed[] = { "--name", name, "--size", size, "--seed", seed,
					"--content", o->content, "--workload", "idle",
					"--duration", "0", "--hold", "--quiet", NULL };
		for (size_t k = 0; fixed[k]; k++)
			args[n++] = fixed[k];
		if (kind == SHARE_ANON)
			args[n++] = "--anon";
		if (share_mech_is_ksm(mech)) {
			args[n++] = "--no-daemon";
			args[n++] = "--mergeable";
		} else {
			args[n++] = "--socket";
			args[n++] = d->sock;
			args[n++] = "--share-domain";
			args[n++] = SHARE_DOMAIN;
		}
		args[n] = NULL;
		int e = guest_start(&g[i], env->guestsim_exe, name, args, err, err_len);
		if (e < 0)
			return e;
	}
	return 0;
}

/* Sum of the guests' and the daemon's PSS, MiB. */
static double pss_total(const struct guest *g, unsigned n, const struct pk_daemon *d)
{
	struct proc_pss p;
	double sum = 0;

	for (unsigned i = 0; i < n; i++)
		if (proc_pss_read(g[i].pid, &p) == 0)
			sum += (double)p.pss_kib / 1024.0;
	if (d && proc_pss_read(d->pid, &p) == 0)
		sum += (double)p.pss_kib / 1024.0;
	return sum;
}

/* Guest RAM and daemon memory at t0, and KSM's view of the guests' mappings. */
static int measure_t0(const struct share_env *env, enum share_kind kind, struct guest *g,
		      const struct pk_daemon *d, struct variant_result *r, char *err,
		      size_t err_len)
{
	const struct share_opts *o = env->o;
	int e;

	r->mergeable_guests = 0;
	for (unsigned i = 0; i < o->guests; i++) {
		struct proc_mapping m;
		if ((e = proc_mapping_read(g[i].pid, o->guest_bytes, &m)) < 0) {
			snprintf(err, err_len, "guest %s: its RAM mapping in /proc/%d/smaps: %s",
				 g[i].name, (int)g[i].pid, strerror(-e));
			return e;
		}
		r->mergeable_guests += m.mergeable;
	}
	if ((e = share_guest_ram(g, o->guests, kind, &r->guest_ram_t0_mib, err, err_len)) < 0)
		return e;
	return share_daemon_anon(d, &r->daemon_anon_t0_mib, err, err_len);
}

static void describe(enum share_kind kind, enum share_mech mech, const struct share_opts *o,
		     struct variant_result *r)
{
	bool ksm = share_mech_is_ksm(mech);

	r->supported = ksm ? kind == SHARE_ANON : kind == SHARE_MEMFD;
	if (ksm && !r->supported && r->fill_timeout)
		snprintf(r->note, sizeof(r->note), "not supported: KSM never merges memfd "
			 "MAP_SHARED RAM");
	else if (ksm && !r->supported)
		snprintf(r->note, sizeof(r->note), "not supported: KSM never merges memfd "
			 "MAP_SHARED RAM (MADV_MERGEABLE returns 0; %d of %u guest mappings "
			 "got VmFlags mg); measured anyway", r->mergeable_guests, o->guests);
	else if (!r->supported)
		snprintf(r->note, sizeof(r->note), "not supported: pagekeeperd does not scan "
			 "private anonymous RAM (that needs an in-guest agent); measured anyway");
	else if (ksm && r->mergeable_guests != (int)o->guests)
		snprintf(r->note, sizeof(r->note), "only %d of %u guest mappings have VmFlags "
			 "mg", r->mergeable_guests, o->guests);
}

int share_variant_run(const struct share_env *env, enum share_kind kind,
		      enum share_mech mech, struct variant_result *r, char *err,
		      size_t err_len)
{
	const struct share_opts *o = env->o;
	struct guest g[SHARE_MAX_GUESTS];
	struct pk_daemon daemon = { .pid = -1 };
	bool pk = !share_mech_is_ksm(mech);
	char label[64];
	int e;

	memset(r, 0, sizeof(*r));
	r->ran = true;
	r->settled_cpu_pct = r->settled_scan_mib_s = -1;
	for (unsigned i = 0; i < SHARE_MAX_GUESTS; i++)
		g[i] = (struct guest){ .pid = -1, .in_fd = -1, .out_fd = -1 };
	snprintf(label, sizeof(label), "%s %s", share_kind_name(kind), share_mech_name(mech));
	if ((e = check_memory(o, err, err_len)) < 0)
		return e;
	if ((e = setup_ksm(o, mech, r, err, err_len)) < 0)
		return e;
	if (pk && (e = start_daemon(env, mech, &daemon, r, err, err_len)) < 0)
		return e;
	double daemon_pre = 0;
	if ((e = share_daemon_anon(pk ? &daemon : NULL, &daemon_pre, err, err_len)) < 0)
		goto out;

	fprintf(stderr, "bench: %s: starting %u guests of %.0f MiB (%s) ...\n", label, o->guests,
		(double)o->guest_bytes / MIB, r->setting);
	pid_t cpu_pid = pk ? daemon.pid : env->ksmd;
	double cpu_start = 0, cpu_t0 = 0;
	if ((e = proc_cpu_seconds(cpu_pid, &cpu_start)) < 0) {
		snprintf(err, err_len, "CPU time of pid %d: %s", (int)cpu_pid, strerror(-e));
		goto out;
	}
	uint64_t t_start = now_ns();
	e = start_guests(env, kind, mech, &daemon, g, err, err_len);
	if (e == 0)
		e = guests_wait_holding(g, o->guests, o->fill_timeout_s, pk ? &daemon : NULL, label,
					o->progress_s, err, err_len);
	r->fill_s = (double)(now_ns() - t_start) / 1e9;
	if (e == -ETIMEDOUT) { /* a result, not a failure of the benchmark */
		fprintf(stderr, "bench: %s: %s; no figures for this variant\n", label, err);
		r->fill_timeout = true;
		describe(kind, mech, o, r);
		snprintf(r->note + strlen(r->note), sizeof(r->note) - strlen(r->note),
			 "%sthe guests' fill did not finish in %.0f s (%s)", r->note[0] ? "; " : "",
			 o->fill_timeout_s, err);
		e = 0;
		goto out;
	}
	if (e < 0)
		goto out;
	if ((e = measure_t0(env, kind, g, pk ? &daemon : NULL, r, err, err_len)) < 0)
		goto out;
	describe(kind, mech, o, r);
	double all_mib = (double)o->guest_bytes * o->guests / MIB;
	if (pk) {
		double reclaimed = kind == SHARE_MEMFD ? all_mib - r->guest_ram_t0_mib : 0;
		r->head_mib = (reclaimed > 0 ? reclaimed : 0) - (r->daemon_anon_t0_mib - daemon_pre);
	}
	r->pss_t0_mib = pss_total(g, o->guests, pk ? &daemon : NULL);
	if ((e = proc_cpu_seconds(cpu_pid, &cpu_t0)) < 0) {
		snprintf(err, err_len, "CPU time of pid %d: %s", (int)cpu_pid, strerror(-e));
		goto out;
	}
	r->cpu_fill_s = cpu_t0 - cpu_start;
	fprintf(stderr, "bench: %s: all guests filled in %.1f s; guest RAM in memory %.0f MiB; "
		"reclaimed before t0 %.1f MiB; t0 now\n", label, r->fill_s, r->guest_ram_t0_mib,
		r->head_mib);

	struct share_watch w = {
		.o = o, .kind = kind, .mech = mech, .label = label,
		.reachable_mib = env->reachable_mib, .head_mib = r->head_mib,
		.footprint_t0_mib = r->guest_ram_t0_mib + r->daemon_anon_t0_mib,
		.cpu_pid = cpu_pid,
		.daemon = pk ? &daemon : NULL, .guests = g, .n_guests = o->guests,
	};
	w.cap_s = o->max_wait_s;
	if (mech == MECH_KSM_DEFAULT)
		w.cap_s = !o->ksm_default_complete ? o->ksm_default_cap_s :
			  o->max_wait_s > SHARE_COMPLETE_CAP_S ? o->max_wait_s : SHARE_COMPLETE_CAP_S;
	if ((e = share_watch_run(&w, r, err, err_len)) < 0)
		goto out;
	r->pss_end_mib = pss_total(g, o->guests, pk ? &daemon : NULL);
	r->saved_pss_mib = r->pss_t0_mib - r->pss_end_mib + r->head_mib;
out:
	if (e < 0 && pk && daemon.pid > 0) {
		fprintf(stderr, "bench: pagekeeperd log (last lines):\n");
		daemon_log_tail(&daemon, stderr, 20);
	}
	guests_stop(g, o->guests, GUEST_STOP_GRACE_MS);
	if (pk)
		daemon_stop(&daemon);
	else
		teardown_ksm();
	return e;
}
