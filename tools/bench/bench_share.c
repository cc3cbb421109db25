/*
 * bench_share.c - pk-bench-share: page sharing, pagekeeperd vs KSM, in one run.
 *
 * What: lab guests (--guests, --total between them) of one content seed
 * and one sharing domain, with known fractions of zero pages and of pages
 * duplicated across all guests, on two memory kinds: private anonymous
 * RAM (KSM can merge it) and memfd MAP_SHARED RAM (KSM cannot;
 * pagekeeperd scans only this).  For each kind, up to four variants, one
 * after the other: KSM at its defaults (pages_to_scan=100,
 * sleep_millisecs=20; capped and extrapolated unless
 * --ksm-default-complete), KSM at full speed, pagekeeperd at its default
 * --scan-rate and at full speed.  Per variant: the time from "all guests
 * filled" to 95% of the reachable savings, CPU seconds (ksmd's or
 * pagekeeperd's) per GiB reclaimed, and the saved machine memory
 * (MemAvailable and MemFree deltas, PSS of guests + daemon), with the
 * mechanism's own counter only as a cross-check; then the goal ratios.
 * How: share_variant.c runs a variant, share_watch.c follows it,
 * share_report.c prints the tables.  KSM's settings are read first and
 * handed to a guardian process (sys_guard.c) before anything changes; it
 * unmerges (run=2), stops KSM (run=0) and restores every value at the end,
 * even when we are killed.  Guests and daemons die with us
 * (PR_SET_PDEATHSIG, cleanup.c); the temp dir is removed by the guardian.
 * Why: pagekeeperd's sharing must be judged against the kernel's own
 * mechanism on the same machine in the same run (FACTS.md: KSM at its
 * defaults needs minutes per GiB; at full speed it burns a core).
 */
#include "cleanup.h"
#include "daemon_proc.h"
#include "guest_proc.h"
#include "ksm_ctl.h"
#include "proc_mem.h"
#include "share_opts.h"
#include "share_report.h"
#include "share_results.h"
#include "share_variant.h"
#include "sys_guard.h"
#include "timing.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)

static int preflight(const struct share_opts *o, const char *daemon, const char *guestsim,
		     pid_t *ksmd, char *err, size_t err_len)
{
	struct meminfo m;
	int e;

	if (geteuid() != 0) {
		snprintf(err, err_len, "needs root: it changes %s and reads other processes' "
			 "/proc files (run it with sudo)", KSM_DIR);
		return -EPERM;
	}
	if ((e = ksm_check(err, err_len)) < 0)
		return e;
	if ((*ksmd = ksmd_pid()) < 0) {
		snprintf(err, err_len, "no ksmd kernel thread found in /proc");
		return -ESRCH;
	}
	const char *const exes[] = { daemon, guestsim };
	const char *const hints[] = { "--daemon", "--guestsim" };
	for (int i = 0; i < 2; i++)
		if (access(exes[i], X_OK) < 0) {
			e = -errno;
			snprintf(err, err_len, "%.600s: %s (build it, or pass %s PATH)", exes[i],
				 strerror(errno), hints[i]);
			return e;
		}
	if ((e = meminfo_read(&m)) < 0) {
		snprintf(err, err_len, "/proc/meminfo: %s", strerror(-e));
		return e;
	}
	double need = share_needed_mib(o, (double)m.total_kib / 1024.0);
	if ((double)m.avail_kib / 1024.0 < need) {
		snprintf(err, err_len, "not enough memory: %u guests of %.0f MiB need %.0f MiB "
			 "with the margin (the larger of 2 GiB and 10%% of RAM), MemAvailable is "
			 "%.0f MiB; use a smaller --total", o->guests,
			 (double)o->guest_bytes / MIB, need, (double)m.avail_kib / 1024.0);
		return -ENOMEM;
	}
	return 0;
}

/* Hand every KSM setting to the guardian before anything changes. */
static int record_ksm(struct share_results *res, char *err, size_t err_len)
{
	int e = ksm_read_settings(&res->ksm_before);

	if (e < 0) {
		snprintf(err, err_len, "reading %s: %s", KSM_DIR, strerror(-e));
		return e;
	}
	fprintf(stderr, "bench: KSM settings at start (restored at the end):");
	for (unsigned i = 0; i < res->ksm_before.n; i++) {
		const struct ksm_setting *s = &res->ksm_before.s[i];
		fprintf(stderr, " %s=%s", s->name, s->value);
		if ((e = guard_ksm_value(s->name, s->value)) < 0) {
			snprintf(err, err_len, "cleanup guardian: %s", strerror(-e));
			return e;
		}
	}
	fputc('\n', stderr);
	return 0;
}

static void expected(const struct share_opts *o, struct share_results *res)
{
	struct meminfo m;

	res->guest_mib = (double)o->guest_bytes / MIB;
	res->guest_total_mib = res->guest_mib * o->guests;
	res->zero_mib = res->guest_mib * o->guests * o->zero_frac;
	res->dup_mib = res->guest_mib * (o->guests - 1) * o->shared_frac;
	res->reachable_mib = res->zero_mib + res->dup_mib;
	res->cpus = sysconf(_SC_NPROCESSORS_ONLN);
	res->mem_total_mib = meminfo_read(&m) == 0 ? (double)m.total_kib / 1024.0 : 0;
}

static int run_all(const struct share_env *env, struct share_results *res)
{
	const struct share_opts *o = env->o;
	char err[1024];

	for (int k = 0; k < SHARE_KINDS; k++) {
		if (!o->kind[k])
			continue;
		for (int m = 0; m < SHARE_MECHS; m++) {
			if (!o->mech[m])
				continue;
			int e = share_variant_run(env, k, m, &res->v[k][m], err, sizeof(err));
			if (e < 0) {
				fprintf(stderr, "pk-bench-share: %s %s: %s\n", share_kind_name(k),
					share_mech_name(m), err);
				res->v[k][m].ran = false;
				return e;
			}
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct share_results res;
	struct share_opts o;
	char daemon[PATH_MAX], guestsim[PATH_MAX], tmpdir[PATH_MAX], err[1024];
	pid_t ksmd;
	int r;

	if ((r = share_opts_parse(argc, argv, &o)) != 0)
		return r > 0 ? 0 : 2;
	uint64_t t_start = now_ns();
	if (o.daemon)
		snprintf(daemon, sizeof(daemon), "%s", o.daemon);
	else if ((r = daemon_default_path(daemon, sizeof(daemon))) < 0) {
		fprintf(stderr, "pk-bench-share: /proc/self/exe: %s\n", strerror(-r));
		return 1;
	}
	if (o.guestsim)
		snprintf(guestsim, sizeof(guestsim), "%s", o.guestsim);
	else if ((r = guest_default_path(guestsim, sizeof(guestsim))) < 0) {
		fprintf(stderr, "pk-bench-share: /proc/self/exe: %s\n", strerror(-r));
		return 1;
	}
	if (preflight(&o, daemon, guestsim, &ksmd, err, sizeof(err)) < 0) {
		fprintf(stderr, "pk-bench-share: %s\n", err);
		return 1;
	}
	cleanup_install();
	if (guard_start(err, sizeof(err)) < 0 || guard_prog("pk-bench-share") < 0) {
		fprintf(stderr, "pk-bench-share: cleanup guardian: %s\n", err);
		return 1;
	}
	const char *tmp = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/pk-bench-share-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(tmpdir)) {
		fprintf(stderr, "pk-bench-share: mkdtemp %s: %s\n", tmpdir, strerror(errno));
		guard_finish();
		return 1;
	}
	guard_tmpdir(tmpdir);
	setenv("TMPDIR", tmpdir, 1); /* the daemons' state dirs go there */
	if (record_ksm(&res, err, sizeof(err)) < 0) {
		fprintf(stderr, "pk-bench-share: %s\n", err);
		guard_finish();
		return 1;
	}
	expected(&o, &res);
	if (!realpath(daemon, res.daemon_path))
		snprintf(res.daemon_path, sizeof(res.daemon_path), "%s", daemon);
	struct share_env env = { .o = &o, .daemon_exe = daemon, .guestsim_exe = guestsim,
				 .ksmd = ksmd, .reachable_mib = res.reachable_mib };
	int ret = run_all(&env, &res);

	int rk = guard_release_ksm();
	int e = ksm_read_settings(&res.ksm_after);
	res.ksm_restored = rk == 0 && e == 0 &&
			   ksm_settings_equal(&res.ksm_before, &res.ksm_after, res.ksm_diff,
					      sizeof(res.ksm_diff));
	int rf = guard_finish();
	res.run_s = (double)(now_ns() - t_start) / 1e9;
	share_report_text(&o, &res, stdout);
	if (!res.ksm_restored) {
		fprintf(stderr, "pk-bench-share: KSM settings were NOT restored (%s)\n",
			res.ksm_diff[0] ? res.ksm_diff : strerror(rk ? -rk : -e));
		return 1;
	}
	if (rf < 0) {
		fprintf(stderr, "pk-bench-share: cleanup failed: %s\n", strerror(-rf));
		return 1;
	}
	return ret < 0 ? 1 : 0;
}
