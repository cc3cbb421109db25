/*
 * run.c - `pagekeeper lab [SCENARIO]`: the scenario runner.
 *
 * What: reads a scenario (scenario.h: a name looked up in the scenario
 * directories, or a FILE.ini), then runs it: first the baseline (the same
 * guests, the same work, through a private pagekeeperd with --policy
 * manual and no --budget: no memory limit), then one run per policy on
 * the scenario's budget.  Each run: a fresh daemon, the guests (lab guests
 * with their guest OS and balloon, pk-guestsim --balloon, a heap that
 * grows to the working set and a fixed amount of work, --ops), the daemon's
 * status every second into DIR/samples.csv (sample.h), a progress line on
 * stderr, and at the end each guest's JSON report (run time, page-ins,
 * pages verified).  It ends with the table policy x guest: run time,
 * stretch (run time / the baseline's), guest page-ins, host swap-ins,
 * balloon and swapped peaks, the states visited; with more than one
 * policy, a second table with a column per policy; then whether every
 * page verified and how many guests were killed.  The kernel anchor
 * (policy "kernel") runs the guests with no daemon in a fresh memory
 * cgroup limited to the budget, with a kernel swap file on the same disk
 * turned on for that run only (tools/bench kswap, memcg; the guardian,
 * sys_guard, undoes both on any exit, even SIGKILL); it is sampled from
 * the cgroup and /proc.  [scenario] smaller adds a last esx run with the
 * guests configured smaller (the locked-pages fix).  [scenario] sweep runs
 * the sharing sweep instead (sweep.h: identical-guests).  Every run ends
 * with OUT/report.html (report.h: the charts of the seed's figures and the
 * tables); OUT is --out, else a new pagekeeper-lab-SCENARIO-DATE-TIME here.
 * How: the benchmark harness (tools/bench: daemon_proc, guest_proc,
 * cleanup, status_json) starts and tracks every process by PID and every
 * directory, and tears them down at exit, on error and on SIGHUP; SIGINT
 * and SIGTERM set a flag the loop checks, so an interrupt stops the run,
 * cleans up and exits 130.  The old quick demo (--guests, --size,
 * --duration, --workload, --anon) still runs as before (tools/lab.c).
 * Why: issue 15 section 6 and issue 16: the case study as a repeatable
 * experiment, with every counter recorded and the result in one table.
 */
#include "tools/bench/cleanup.h"
#include "tools/bench/daemon_proc.h"
#include "tools/bench/guest_proc.h"
#include "tools/bench/kswap.h"
#include "tools/bench/memcg.h"
#include "tools/bench/sys_guard.h"
#include "tools/bench/status_json.h"
#include "tools/bench/timing.h"
#include "tools/cli.h"
#include "tools/common/size_parse.h"

#include "lab.h"
#include "sample.h"
#include "scenario.h"
#include "report.h"	/* issue 16: the report */
#include "sweep.h"	/* issue 16: identical-guests */
#include <time.h>

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PK_LAB_DATADIR
#define PK_LAB_DATADIR "/usr/local/share/pagekeeper/lab"
#endif

#define OUT_MAX (16u << 20)	/* a guest's JSON report, at most */
#define RUNS_MAX (2 + LAB_MAX_POLICIES)

struct gout {			/* one guest of a run */
	struct guest g;
	char name[32];
	char *out;
	size_t out_len, out_cap;
	bool eof, done;
	int status;
};

struct gres {
	bool have;		/* its report was read */
	bool ok;		/* exit 0, every page verified, no mismatch */
	bool killed;		/* died of a signal */
	bool timed_out;		/* still running at the run's limit */
	int exit_code;		/* or -signal */
	double run_s;
	double page_ins;
	double pages_verified, pages_expected, mismatches;
	double swapins;		/* host swap-ins (the last status that had it) */
	double balloon_peak_mib, swapped_peak_mib;
};

struct run_res {
	char name[16];		/* "baseline" or a policy */
	bool done;
	struct gres g[LAB_MAX_GUESTS];
	bool seen[4];		/* states visited: high, soft, hard, low */
	double wall_s;
	double used_peak_mib;	/* the guests' and the daemon's memory, at most */
};

struct lab {
	struct lab_scenario sc;
	const char *out_dir;
	char path[PATH_MAX];	/* the scenario file */
	char daemon_bin[PATH_MAX], guestsim_bin[PATH_MAX];
	char tmp[PATH_MAX];	/* guests' page files */
	char sock_dir[PATH_MAX]; /* their balloon sockets: tmp, or a short
				  * /tmp dir when tmp is too deep */
	uint64_t size_now;	/* the guests' RAM in this run */
	bool kernel;		/* the kernel anchor is in the list */
	struct kswap ks;	/* its swap file and memory cgroup */
	char procs[PATH_MAX + 32]; /* the cgroup's cgroup.procs in its run */
	char swap_dir[PATH_MAX];   /* the swap file's, removed by the guardian */
	struct lab_csv csv;
	bool tty;
	double last_plain;	/* t of the last plain progress line, -1: none */
	struct run_res runs[RUNS_MAX];
	unsigned n_runs;
};

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

static const char *const state_names[4] = { "high", "soft", "hard", "low" };

void pk_lab_usage(FILE *f)
{
	fprintf(f,
		"usage: pagekeeper lab [SCENARIO | FILE.ini] [--out DIR] [--short]\n"
		"                      [--policy esx|esx-cold|swap-only|balloon-only|kernel]\n"
		"                      [--budget SIZE|PCT]\n"
		"                      [--seed N] [--ops N] [--limit SECONDS] [--columns]\n"
		"                      [--list]\n"
		"  SCENARIO            a scenario name (default case-study; --list shows\n"
		"                      them) or an INI file (README \"Lab scenarios\")\n"
		"  --out DIR           write DIR/samples.csv (the daemon's status every\n"
		"                      second), DIR/guests.csv (the guests' timelines),\n"
		"                      DIR/daemon-RUN.log (each run's daemon log) and\n"
		"                      DIR/report.html (charts and tables; default DIR:\n"
		"                      pagekeeper-lab-SCENARIO-YYYYMMDD-HHMMSS here)\n"
		"  --short             the scenario's [short] version (tests: well under\n"
		"                      a minute)\n"
		"  --policy P          run only policy P instead of the scenario's list\n"
		"                      (kernel: no daemon, a memory cgroup and kernel swap;\n"
		"                      root; esx-cold: esx with --victims cold)\n"
		"  --budget SIZE|PCT   machine memory for the guests: a size (256M) or a\n"
		"                      fraction of their total memory (50%%)\n"
		"  --seed N            the guests' content and access seed\n"
		"  --ops N             each guest's fixed work, in accesses\n"
		"  --limit SECONDS     stop a run that lasts longer: the baseline\n"
		"                      and esx fail there; swap-only, balloon-only\n"
		"                      and kernel show as >LIMIT\n"
		"  --list              list the scenarios\n"
		"  --columns           describe the CSV columns and exit\n"
		"usage: pagekeeper lab [--guests N] [--size SIZE] [--duration SECONDS]\n"
		"                      [--workload KIND] [--anon]\n"
		"                      the quick demo: N guests, no budget, a live view\n"
		"  --guests N          lab guests (default 4, at most 32)\n"
		"  --size SIZE         RAM per guest, K/M/G suffix (default 256M)\n"
		"  --duration SECONDS  workload time after the fill (default 5)\n"
		"  --workload KIND     idle, seq, random, zipf or phases (default zipf)\n"
		"  --anon              private anonymous guest RAM instead of memfd\n"
		"Exit status: 0 every guest verified every page, 1 a guest failed\n"
		"or the lab could not start, 2 bad usage, 130 interrupted.\n");
}

static double elapsed_s(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e9;
}

/* dirname(/proc/self/exe) into dir. */
static int self_dir(char *dir, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n < 0)
		return -errno;
	self[n] = '\0';
	snprintf(dir, len, "%s", dirname(self));
	return 0;
}

/* $env, else the first of dir/rel[i] that can run. */
static int find_bin(char *out, const char *env, const char *const *rel)
{
	char dir[PATH_MAX / 2];
	const char *v = getenv(env);

	if (v) {
		snprintf(out, PATH_MAX, "%s", v);
		return access(out, X_OK) == 0 ? 0 : -1;
	}
	if (self_dir(dir, sizeof(dir)) < 0)
		return -1;
	for (; *rel; rel++) {
		snprintf(out, PATH_MAX, "%s/%s", dir, *rel);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -1;
}

/*
 * A scenario: a path when it has a '/' or ends in .ini; else NAME.ini in
 * $PK_LAB_SCENARIOS, next to this binary in the build tree
 * (lab/scenarios/), or the installed data directory.
 */
static int find_scenario(const char *arg, char *out, size_t len, char *dirs, size_t dlen)
{
	char self[PATH_MAX / 4];
	const char *cand[3];
	char here[PATH_MAX / 2];
	size_t n = strlen(arg);
	unsigned k = 0;

	if (strchr(arg, '/') || (n > 4 && !strcmp(arg + n - 4, ".ini"))) {
		if (snprintf(out, len, "%s", arg) >= (int)len)
			return -ENAMETOOLONG;
		return 0;
	}
	if (getenv("PK_LAB_SCENARIOS"))
		cand[k++] = getenv("PK_LAB_SCENARIOS");
	if (self_dir(self, sizeof(self)) == 0 &&
	    snprintf(here, sizeof(here), "%s/lab/scenarios", self) < (int)sizeof(here))
		cand[k++] = here;
	cand[k++] = PK_LAB_DATADIR;
	dirs[0] = '\0';
	for (unsigned i = 0; i < k; i++) {
		if (snprintf(out, len, "%s/%s.ini", cand[i], arg) < (int)len &&
		    access(out, R_OK) == 0)
			return 0;
		size_t u = strlen(dirs);
		if (snprintf(dirs + u, dlen - u, "%s%s", i ? ", " : "", cand[i]) >= (int)(dlen - u))
			break;
	}
	return -ENOENT;
}

/* ---- a run ---- */

static int drain(struct gout *o)
{
	while (!o->eof) {
		if (o->out_cap - o->out_len < 4096) {
			size_t cap = o->out_cap ? o->out_cap * 2 : 65536;
			char *p = cap <= OUT_MAX ? realloc(o->out, cap + 1) : NULL;
			if (!p)
				return -ENOMEM;
			o->out = p;
			o->out_cap = cap;
		}
		ssize_t n = read(o->g.out_fd, o->out + o->out_len, o->out_cap - o->out_len);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		if (n == 0)
			o->eof = true;
		o->out_len += (size_t)(n > 0 ? n : 0);
		o->out[o->out_len] = '\0';
	}
	return 0;
}

static int start_guest(struct lab *lab, const struct pk_daemon *d, unsigned i,
		       struct gout *o, char *err, size_t err_len)
{
	const struct lab_scenario *s = &lab->sc;
	char size[32], ws[32], grow[32], ops[32], seed[32], locked[32], live[32], churn[32];
	char sock[PATH_MAX + 64];
	const char *args[GUEST_MAX_ARGS + 1];
	size_t n = 0;

	snprintf(o->name, sizeof(o->name), "lab%u", i);
	snprintf(size, sizeof(size), "%llu", (unsigned long long)lab->size_now);
	snprintf(ws, sizeof(ws), "%llu", (unsigned long long)lab_ws_bytes(s));
	snprintf(grow, sizeof(grow), "%g", s->g.grow_s);
	snprintf(ops, sizeof(ops), "%llu", (unsigned long long)s->g.ops);
	/* The same content and accesses for a guest in every run. */
	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)(s->seed * 100 + i));
	snprintf(locked, sizeof(locked), "%g", s->g.locked);
	snprintf(live, sizeof(live), "%g", s->g.live);
	snprintf(churn, sizeof(churn), "%g", s->g.churn);
	if (snprintf(sock, sizeof(sock), "%s/%s.sock", lab->sock_dir, o->name) >= 108) {
		snprintf(err, err_len, "the balloon socket path %.200s is longer than a UNIX "
			 "socket address allows", sock);
		return -ENAMETOOLONG;
	}
	/* A guest of the last run killed at its limit left its socket. */
	unlink(sock);
	if (!d) {
		/* The kernel anchor: join the cgroup before the first byte. */
		args[n++] = "-c";
		args[n++] = "echo $$ > \"$0\" && exec \"$@\"";
		args[n++] = lab->procs;
		args[n++] = lab->guestsim_bin;
		args[n++] = "--no-daemon";
	} else {
		args[n++] = "--socket";
		args[n++] = d->sock;
	}
	args[n++] = "--name";
	args[n++] = o->name;
	args[n++] = "--size";
	args[n++] = size;
	args[n++] = "--ops";
	args[n++] = ops;
	args[n++] = "--workload";
	args[n++] = s->g.workload;
	args[n++] = "--seed";
	args[n++] = seed;
	if (s->g.balloon) {
		args[n++] = "--balloon";
		args[n++] = "--balloon-socket";
		args[n++] = sock;
		args[n++] = "--working-set";
		args[n++] = ws;
		args[n++] = "--grow";
		args[n++] = grow;
		args[n++] = "--locked";
		args[n++] = locked;
		if (s->g.live < 1) {	/* an elastic heap */
			args[n++] = "--live";
			args[n++] = live;
		}
		if (s->g.churn >= 0) {
			args[n++] = "--churn";
			args[n++] = churn;
		}
	}
	args[n++] = "--verify";
	args[n++] = "--json";
	args[n++] = "--quiet";
	args[n] = NULL;
	return guest_start(&o->g, d ? lab->guestsim_bin : "/bin/sh", o->name, args, err,
			   err_len);
}

static int vm_index(json_object *vm)
{
	json_object *v;
	unsigned i;

	if (!json_object_object_get_ex(vm, "name", &v) ||
	    sscanf(json_object_get_string(v), "lab%u", &i) != 1 || i >= LAB_MAX_GUESTS)
		return -1;
	return (int)i;
}

/* A status sample: the CSV, the peaks, the states, the last swap-ins. */
static void take_sample(struct lab *lab, struct run_res *rr, json_object *root, double t,
			char *state, size_t state_len, double *free_pct)
{
	json_object *v, *vms;

	lab_csv_sample(&lab->csv, rr->name, t, root);
	if (json_object_object_get_ex(root, "state", &v) && v) {
		snprintf(state, state_len, "%s", json_object_get_string(v));
		for (int k = 0; k < 4; k++)
			if (!strcmp(state, state_names[k]))
				rr->seen[k] = true;
	}
	*free_pct = status_num(root, "free_pct", -1);
	rr->used_peak_mib = fmax(rr->used_peak_mib, status_num(root, "used_mib", 0));
	if (json_object_object_get_ex(root, "states_entered", &v) && v)
		for (int k = 1; k < 4; k++)
			if (status_num(v, state_names[k], 0) > 0)
				rr->seen[k] = true;
	if (!json_object_object_get_ex(root, "vms", &vms))
		return;
	for (size_t j = 0; j < json_object_array_length(vms); j++) {
		json_object *vm = json_object_array_get_idx(vms, j);
		int i = vm_index(vm);
		if (i < 0)
			continue;
		struct gres *g = &rr->g[i];
		g->swapins = fmax(g->swapins, status_num(vm, "swapins", 0));
		g->balloon_peak_mib = fmax(g->balloon_peak_mib, status_num(vm, "ballooned_mib", 0));
		g->swapped_peak_mib = fmax(g->swapped_peak_mib, status_num(vm, "swapped_mib", 0));
	}
}

static void progress(struct lab *lab, const struct run_res *rr, double t, const char *state,
		     double free_pct, unsigned running, bool last)
{
	double limit = lab->sc.limit_s;
	int width = 24, fill = (int)(width * fmin(t / limit, 1.0));
	char bar[32];

	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[width] = '\0';
	if (lab->tty) {
		fprintf(stderr, "\r\033[K[%s] %-12s %5.0f s  state %-4s  free %5.1f%%  guests "
			"running %u/%u%s", bar, rr->name, t, state, free_pct, running,
			lab->sc.g.count, last ? "\n" : "");
	} else if (last || lab->last_plain < 0 || t - lab->last_plain >= 10 ||
		   t < lab->last_plain) {
		fprintf(stderr, "lab: %s: %.0f s of at most %.0f s, state %s, free %.1f%%, "
			"guests running %u/%u\n", rr->name, t, limit, state, free_pct, running,
			lab->sc.g.count);
		lab->last_plain = last ? -1 : t;
	}
}

static double jnum(json_object *o, const char *k)
{
	return status_num(o, k, NAN);
}

/* The guest's JSON report (its last line that is an object). */
static void read_report(struct lab *lab, struct run_res *rr, unsigned i, struct gout *o)
{
	struct gres *g = &rr->g[i];
	char *line = NULL;

	g->pages_expected = (double)(lab_ws_bytes(&lab->sc) / 4096);
	if (!lab->sc.g.balloon)
		g->pages_expected = (double)(lab->sc.g.size / 4096);
	g->killed = WIFSIGNALED(o->status);
	g->exit_code = WIFEXITED(o->status) ? WEXITSTATUS(o->status) : -WTERMSIG(o->status);
	for (char *p = o->out; p && *p;) {
		if (*p == '{')
			line = p;
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	if (line && strchr(line, '\n'))
		*strchr(line, '\n') = '\0';
	json_object *r = line ? json_tokener_parse(line) : NULL;
	if (!r)
		return;
	g->have = true;
	g->run_s = jnum(r, "run_s");
	g->page_ins = jnum(r, "page_ins");
	g->pages_verified = jnum(r, "pages_verified");
	g->mismatches = jnum(r, "mismatches");
	/* An elastic heap (live < 1) holds data in the pages its runtime
	 * has not released: the guest counts them when it verifies (and
	 * exits 5 if it checked fewer); a collection after that only
	 * lowers the count it reports. */
	if (lab->sc.g.live < 1)
		g->pages_expected = round(jnum(r, "committed_mib") * 256);
	g->ok = g->exit_code == 0 && g->mismatches == 0 &&
		(lab->sc.g.live < 1 ? g->pages_verified >= g->pages_expected
				    : g->pages_verified == g->pages_expected);
	lab_csv_timeline(&lab->csv, rr->name, o->name, r);
	json_object_put(r);
}

/* The run's daemon log goes to OUT/daemon-RUN.log before its dir goes. */
static void keep_log(const struct lab *lab, const struct pk_daemon *d, const char *run)
{
	char path[PATH_MAX + 64], buf[65536];
	FILE *in = fopen(d->log, "r"), *out;
	size_t n;

	snprintf(path, sizeof(path), "%s/daemon-%s.log", lab->out_dir, run);
	out = in ? fopen(path, "w") : NULL;
	while (out && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, out);
	if (out)
		fclose(out);
	if (in)
		fclose(in);
}

/* ---- the kernel anchor ---- */

/*
 * A fresh child memory cgroup limited to the budget, and the swap file
 * on (both registered with the guardian, undone on any exit).
 */
static int kernel_setup(struct lab *lab, char *err, size_t err_len)
{
	char name[64];
	int r;

	snprintf(name, sizeof(name), "pagekeeper-lab-%d", (int)getpid());
	if ((r = memcg_create(&lab->ks.cg, name, err, err_len)) < 0 ||
	    (r = memcg_set_limit(&lab->ks.cg, lab_budget_bytes(&lab->sc), err, err_len)) < 0)
		return r;
	snprintf(lab->procs, sizeof(lab->procs), "%s/cgroup.procs", lab->ks.cg.dir);
	return kswap_on(&lab->ks, err, err_len);
}

static void kernel_teardown(struct lab *lab)
{
	memcg_remove(&lab->ks.cg);
	guard_swapoff();
}

/* "Key:   N kB" of /proc/PID/status in MiB, or -1. */
static double proc_status_mib(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t kl = strlen(key);
	double v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			v = atof(line + kl + 1) / 1024.0;
			break;
		}
	fclose(f);
	return v;
}

/* Major faults of pid (/proc/PID/stat field 12): its kernel swap-ins. */
static double proc_majflt(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long majflt;
	FILE *f;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	/* after "(comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %llu", &majflt) != 1)
		return -1;
	return (double)majflt;
}

static void kernel_sample(struct lab *lab, struct run_res *rr, struct gout *o, double t,
			  double *free_pct)
{
	double budget = (double)lab_budget_bytes(&lab->sc) / 1048576.0;
	long long used = memcg_usage(&lab->ks.cg);
	struct lab_plain p = { .budget_mib = budget,
			       .configured_mib = (double)lab->size_now / 1048576.0 };

	p.used_mib = used >= 0 ? (double)used / 1048576.0 : -1;
	p.free_pct = used >= 0 ? fmax(0, 100.0 * (budget - p.used_mib) / budget) : -1;
	*free_pct = p.free_pct;
	rr->used_peak_mib = fmax(rr->used_peak_mib, p.used_mib);
	for (unsigned i = 0; i < lab->sc.g.count; i++) {
		if (o[i].done || o[i].g.pid <= 0)
			continue;
		double shmem = proc_status_mib(o[i].g.pid, "RssShmem");
		double anon = proc_status_mib(o[i].g.pid, "RssAnon");
		p.resident_mib = shmem >= 0 && anon >= 0 ? shmem + anon : -1;
		p.swapins = proc_majflt(o[i].g.pid);
		rr->g[i].swapins = fmax(rr->g[i].swapins, p.swapins);
		lab_csv_plain(&lab->csv, rr->name, t, o[i].name, &p);
	}
}

/*
 * One run: baseline (policy < 0) or a policy; smaller: the guests
 * configured with [scenario] smaller of RAM (same heap).  0, -EINTR, or
 * -errno.
 */
static int run_one(struct lab *lab, int policy, bool smaller, struct run_res *rr)
{
	const struct lab_scenario *s = &lab->sc;
	struct gout o[LAB_MAX_GUESTS];
	struct pk_daemon d;
	char budget[32], swap[32], err[1024], state[16] = "-";
	const char *extra[DAEMON_MAX_EXTRA_ARGS + 1];
	size_t n = 0;
	unsigned running = 0;
	bool sampled = false, kernel = policy == LAB_KERNEL;
	double free_pct = -1;
	int ret = 0;

	memset(o, 0, sizeof(o));
	snprintf(rr->name, sizeof(rr->name), "%s", policy < 0 ? "baseline" : smaller
		 ? "smaller" : lab_policy_name(policy));
	lab->size_now = smaller ? s->smaller : s->g.size;
	snprintf(budget, sizeof(budget), "%llu", (unsigned long long)lab_budget_bytes(s));
	snprintf(swap, sizeof(swap), "%llu", (unsigned long long)s->swap_size);
	extra[n++] = "--swap-size";
	extra[n++] = swap;
	extra[n++] = "--policy";
	if (policy < 0) {
		extra[n++] = "manual";
	} else {
		/* esx-cold is a run label: esx with cold-first victims. */
		extra[n++] = policy == LAB_ESX_COLD ? "esx" : lab_policy_name(policy);
		if (policy == LAB_ESX_COLD) {
			extra[n++] = "--victims";
			extra[n++] = "cold";
		}
		extra[n++] = "--budget";
		extra[n++] = budget;
		if (s->thresholds[0]) {
			extra[n++] = "--state-thresholds";
			extra[n++] = s->thresholds;
		}
	}
	extra[n] = NULL;
	if (kernel)
		fprintf(stderr, "lab: kernel: no daemon; the guests in a memory cgroup "
			"limited to %s bytes, a kernel swap file of %s bytes\n", budget, swap);
	else
		fprintf(stderr, "lab: %s: pagekeeperd %s%s%s%s\n", rr->name, policy < 0 ?
		"--policy manual (no memory limit)" : "--policy ", policy < 0 ? "" :
		policy == LAB_ESX_COLD ? "esx --victims cold" :
		lab_policy_name(policy), policy < 0 ? "" : " --budget ",
		policy < 0 ? "" : budget);
	memset(&d, 0, sizeof(d));
	d.pid = -1;
	if (kernel) {
		if ((ret = kernel_setup(lab, err, sizeof(err))) < 0) {
			fprintf(stderr, "pagekeeper lab: kernel: %s\n", err);
			kernel_teardown(lab);
			return ret;
		}
	} else if ((ret = daemon_start(&d, lab->daemon_bin, extra, err, sizeof(err))) < 0) {
		fprintf(stderr, "pagekeeper lab: %s: the daemon did not start: %s\n", rr->name,
			err);
		return ret;
	}
	uint64_t t0 = now_ns(), next = t0;
	for (unsigned i = 0; i < s->g.count; i++) {
		o[i].g.pid = -1;
		o[i].g.in_fd = o[i].g.out_fd = -1;
		if ((ret = start_guest(lab, kernel ? NULL : &d, i, &o[i], err,
				       sizeof(err))) < 0) {
			fprintf(stderr, "pagekeeper lab: %s: guest lab%u: %s\n", rr->name, i,
				err);
			goto out;
		}
		running++;
	}
	while (running) {
		if (interrupted) {
			ret = -EINTR;
			goto out;
		}
		for (unsigned i = 0; i < s->g.count; i++) {
			if (o[i].done)
				continue;
			if ((ret = drain(&o[i])) < 0) {
				fprintf(stderr, "pagekeeper lab: reading guest %s: %s\n",
					o[i].name, strerror(-ret));
				goto out;
			}
			if (guest_wait_exit(&o[i].g, 0, &o[i].status) == 0) {
				o[i].done = true;
				running--;
				while (!o[i].eof && drain(&o[i]) == 0)
					; /* it exited: the rest is in the pipe */
				read_report(lab, rr, i, &o[i]);
			}
		}
		double t = elapsed_s(t0);
		/*
		 * Every second; the first sample as soon as every guest has
		 * registered (polled every 50 ms), so a run shorter than a
		 * second still has a row per guest.
		 */
		if (kernel && now_ns() >= next) {
			kernel_sample(lab, rr, o, t, &free_pct);
			snprintf(state, sizeof(state), "-");
			progress(lab, rr, t, state, free_pct, running, false);
			next = t0 + (uint64_t)(floor(t) + 1) * 1000000000ull;
		} else if (now_ns() >= next) {
			json_object *root, *vms;
			if (!daemon_alive(&d)) {
				fprintf(stderr, "pagekeeper lab: %s: pagekeeperd died\n", rr->name);
				daemon_log_tail(&d, stderr, 20);
				ret = -ECHILD;
				goto out;
			}
			if (status_fetch(d.sock, 5, &root, err, sizeof(err)) == 0) {
				bool all = json_object_object_get_ex(root, "vms", &vms) &&
					   json_object_array_length(vms) >= s->g.count;
				if (all || sampled || t >= 1.0) {
					take_sample(lab, rr, root, t, state, sizeof(state),
						    &free_pct);
					sampled = true;
				}
				json_object_put(root);
			}
			if (sampled) {
				progress(lab, rr, t, state, free_pct, running, false);
				next = t0 + (uint64_t)(floor(t) + 1) * 1000000000ull;
			} else {
				next = now_ns() + 50000000ull;
			}
		}
		if (t > s->limit_s) {
			fprintf(stderr, "pagekeeper lab: %s: the guests did not finish within the "
				"scenario's limit of %.0f s\n", rr->name, s->limit_s);
			for (unsigned i = 0; i < s->g.count; i++)
				rr->g[i].timed_out = !o[i].done;
			ret = -ETIMEDOUT;
			goto out;
		}
		usleep(20000);
	}
	rr->wall_s = elapsed_s(t0);
	rr->done = true;
	rr->seen[0] = !kernel; /* a daemon starts in high; the kernel has no states */
	progress(lab, rr, rr->wall_s, state, free_pct, running, true);
out:
	if (lab->tty && ret < 0)
		fputc('\n', stderr);
	/* All at once, then each with its grace: an interrupt ends quickly. */
	for (unsigned i = 0; i < s->g.count; i++)
		if (o[i].g.pid > 0)
			kill(o[i].g.pid, SIGTERM);
	for (unsigned i = 0; i < s->g.count; i++) {
		if (o[i].g.pid > 0 || o[i].g.out_fd >= 0)
			guests_stop(&o[i].g, 1, 2000);
		if (!o[i].done && o[i].name[0] && ret != -EINTR)
			fprintf(stderr, "pagekeeper lab: %s: guest %s did not finish\n",
				rr->name, o[i].name);
		free(o[i].out);
	}
	bool bad = false;
	for (unsigned i = 0; i < s->g.count && rr->done; i++)
		bad |= !rr->g[i].ok;
	if (kernel) {
		kernel_teardown(lab);
		return ret;
	}
	if ((ret < 0 && ret != -EINTR) || bad) {
		fprintf(stderr, "lab: %s: pagekeeperd's log (last lines):\n", rr->name);
		daemon_log_tail(&d, stderr, 15);
	}
	if (lab->out_dir)
		keep_log(lab, &d, rr->name);
	daemon_stop(&d);
	return ret;
}

/* ---- the table ---- */

static void states_str(const struct run_res *rr, char *buf, size_t len)
{
	snprintf(buf, len, "-");
	if (!rr->seen[0] && !rr->seen[1] && !rr->seen[2] && !rr->seen[3])
		return;
	buf[0] = '\0';
	for (int k = 0; k < 4; k++)
		if (rr->seen[k]) {
			size_t u = strlen(buf);
			snprintf(buf + u, len - u, "%s%s", u ? "," : "", state_names[k]);
		}
}

static int summary(const struct lab *lab)
{
	const struct lab_scenario *s = &lab->sc;
	const struct run_res *base = &lab->runs[0];
	unsigned killed = 0, failed = 0, mismatches = 0, stopped = 0, oom = 0;
	double pages = 0;

	printf("\nlab: %s: %u guests of %.0f MiB (working set %.1f MiB, %llu ops, %s), "
	       "budget %.0f MiB of %.0f MiB\n", s->name, s->g.count,
	       (double)s->g.size / 1048576.0, (double)lab_ws_bytes(s) / 1048576.0,
	       (unsigned long long)s->g.ops, s->g.workload,
	       (double)lab_budget_bytes(s) / 1048576.0,
	       (double)(s->g.size * s->g.count) / 1048576.0);
	printf("%-13s %-6s %10s %9s %16s %16s %14s %14s  %s\n", "policy", "guest", "run time",
	       "stretch", "guest page-ins", "host swap-ins", "balloon peak", "swapped peak",
	       "states visited");
	for (unsigned r = 0; r < lab->n_runs; r++) {
		const struct run_res *rr = &lab->runs[r];
		char states[32];
		states_str(rr, states, sizeof(states));
		/* The kernel anchor's guests die by its OOM killer when the
		 * memory cgroup runs out: that is the anchor's result (what
		 * memtune and host swap give), pagekeeper's never. */
		bool anchor = !strcmp(rr->name, "kernel");
		for (unsigned i = 0; i < s->g.count; i++) {
			const struct gres *g = &rr->g[i];
			char rt[24] = "-", st[24] = "-";
			if (g->have)
				snprintf(rt, sizeof(rt), "%.2f s", g->run_s);
			if (g->killed)
				snprintf(rt, sizeof(rt), "killed");
			if (g->have && base->g[i].have && base->g[i].run_s > 0)
				snprintf(st, sizeof(st), "%.2fx", g->run_s / base->g[i].run_s);
			if (g->timed_out) { /* at least the limit */
				snprintf(rt, sizeof(rt), ">%.0f s", s->limit_s);
				if (base->g[i].have && base->g[i].run_s > 0)
					snprintf(st, sizeof(st), ">%.0fx",
						 s->limit_s / base->g[i].run_s);
			}
			char bp[24] = "-", sp[24] = "-";
			if (strcmp(rr->name, "kernel")) { /* no balloon, no per-guest swap */
				snprintf(bp, sizeof(bp), "%.1f MiB", g->balloon_peak_mib);
				snprintf(sp, sizeof(sp), "%.1f MiB", g->swapped_peak_mib);
			}
			printf("%-13s lab%-3u %10s %9s %10.0f pages %10.0f pages %14s %14s  %s\n",
			       rr->name, i, rt, st, g->have ? g->page_ins : 0, g->swapins, bp, sp,
			       states);
			if (anchor && g->killed) {
				oom++;
				continue;
			}
			killed += g->killed;
			/* Stopped at the limit: unfinished, so unverified. */
			stopped += g->timed_out;
			failed += !g->ok && !g->timed_out;
			mismatches += g->have && g->mismatches > 0 ? (unsigned)g->mismatches : 0;
			pages += g->have ? g->pages_verified : 0;
		}
	}
	if (lab->n_runs > 2) {
		/* Side by side: a column per policy. */
		printf("\nstretch by policy (run time / baseline run time)\n%-6s", "guest");
		for (unsigned r = 1; r < lab->n_runs; r++)
			printf(" %18s", lab->runs[r].name);
		printf("\n");
		for (unsigned i = 0; i < s->g.count; i++) {
			printf("lab%-3u", i);
			for (unsigned r = 1; r < lab->n_runs; r++) {
				const struct gres *g = &lab->runs[r].g[i];
				char cellbuf[40] = "-";
				if (g->have && base->g[i].have && base->g[i].run_s > 0)
					snprintf(cellbuf, sizeof(cellbuf), "%.2fx (%.1f s)",
						 g->run_s / base->g[i].run_s, g->run_s);
				if (g->timed_out && base->g[i].have && base->g[i].run_s > 0)
					snprintf(cellbuf, sizeof(cellbuf), ">%.0fx (>%.0f s)",
						 s->limit_s / base->g[i].run_s, s->limit_s);
				if (g->killed)
					snprintf(cellbuf, sizeof(cellbuf), "killed");
				printf(" %18s", cellbuf);
			}
			printf("\n");
		}
	}
	if (!failed)
		printf("verified: every page (%.0f pages in %u runs), 0 mismatches%s\n", pages,
		       lab->n_runs, stopped || oom ? ", of the guests that finished" : "");
	else
		printf("verified: FAILED: %u guest runs did not verify every page, %u "
		       "mismatches\n", failed, mismatches);
	if (stopped)
		printf("stopped at the limit of %.0f s: %u guest runs (unfinished, not "
		       "verified)\n", s->limit_s, stopped);
	printf("guests killed: %u\n", killed);
	if (oom)
		printf("kernel anchor: %u guest%s killed by the kernel's OOM killer (the "
		       "memory cgroup at the budget, its swap too slow or full): the "
		       "anchor's result, where pagekeeper stalls instead\n", oom,
		       oom == 1 ? "" : "s");
	/* The budget is the machine's memory; only the policy holds the
	 * guests to it.  balloon-only (MoM) never swaps nor stalls, so
	 * nothing stops its guests from using more than the machine has:
	 * say so, since a real host would have had to swap or OOM-kill. */
	for (unsigned r = 1; r < lab->n_runs; r++) {
		double b = (double)lab_budget_bytes(s) / 1048576.0, u = lab->runs[r].used_peak_mib;

		if (u > b * 1.02)
			printf("budget: %s used up to %.1f MiB of the %.1f MiB budget (%.0f%% "
			       "over)%s\n", lab->runs[r].name, u, b, 100.0 * (u - b) / b,
			       strcmp(lab->runs[r].name, "balloon-only") ? ""
			       : ": its guests wait only at the end of the budget; the "
				 "daemon's own memory counts too");
	}
	if (lab->out_dir)
		printf("samples: %s/samples.csv (%u rows), %s/guests.csv; columns: pagekeeper "
		       "lab --columns\n", lab->out_dir, lab->csv.rows, lab->out_dir);
	return failed || killed ? 1 : 0;
}

/* ---- the report (issue 16, report.h) ---- */

/* OUT/report.html from the runs (or the sweep's steps); its path on stdout. */
static void write_report(const struct lab *lab, bool short_run,
			 const struct lab_report_share *share, unsigned n_share)
{
	struct lab_report_run runs[RUNS_MAX];
	struct lab_report rep = { .sc = &lab->sc, .out_dir = lab->out_dir,
				  .scenario_path = lab->path, .short_run = short_run,
				  .n_runs = lab->n_runs, .runs = runs, .n_share = n_share,
				  .share = share };
	char err[1024];

	memset(runs, 0, sizeof(runs));
	for (unsigned r = 0; r < lab->n_runs; r++) {
		const struct run_res *rr = &lab->runs[r];
		snprintf(runs[r].name, sizeof(runs[r].name), "%s", rr->name);
		states_str(rr, runs[r].states, sizeof(runs[r].states));
		for (unsigned i = 0; i < lab->sc.g.count; i++) {
			const struct gres *g = &rr->g[i];
			runs[r].g[i] = (struct lab_report_guest){
				.have = g->have, .timed_out = g->timed_out, .run_s = g->run_s,
				.page_ins = g->page_ins, .swapins = g->swapins,
				.balloon_peak_mib = g->balloon_peak_mib,
				.swapped_peak_mib = g->swapped_peak_mib };
		}
	}
	if (lab_report_write(&rep, err, sizeof(err)) < 0)
		fprintf(stderr, "pagekeeper lab: the report: %s\n", err);
	printf("report: %s/report.html (charts: %s/report.gp, gnuplot)\n", lab->out_dir,
	       lab->out_dir);
}

/* ---- arguments ---- */

static bool legacy_flag(const char *a)
{
	static const char *const f[] = { "--guests", "--size", "--duration", "--workload",
					  "--anon" };
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		size_t n = strlen(f[i]);
		if (!strncmp(a, f[i], n) && (a[n] == '\0' || a[n] == '='))
			return true;
	}
	return false;
}

static int parse_count(const char *opt, const char *v, uint64_t lo, uint64_t hi,
		       uint64_t *out)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || *end || *v < '0' || *v > '9' || x < lo || x > hi) {
		fprintf(stderr, "pagekeeper lab: bad %s '%s': want %llu..%llu\n", opt, v,
			(unsigned long long)lo, (unsigned long long)hi);
		return -1;
	}
	*out = x;
	return 0;
}

/* The .ini files of the build tree's and the installed scenario dirs. */
static void list_scenarios(void)
{
	char self[PATH_MAX / 4], here[PATH_MAX / 2];
	const char *dirs[2] = { here, PK_LAB_DATADIR };

	here[0] = '\0';
	if (self_dir(self, sizeof(self)) == 0)
		snprintf(here, sizeof(here), "%s/lab/scenarios", self);
	for (int k = 0; k < 2; k++) {
		DIR *d = dirs[k][0] ? opendir(dirs[k]) : NULL;
		struct dirent *e;
		if (!d)
			continue;
		printf("%s:\n", dirs[k]);
		while ((e = readdir(d))) {
			size_t n = strlen(e->d_name);
			if (n > 4 && !strcmp(e->d_name + n - 4, ".ini"))
				printf("  %.*s\n", (int)(n - 4), e->d_name);
		}
		closedir(d);
	}
}

int pk_cli_lab(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "short", no_argument, NULL, 'S' },
		{ "policy", required_argument, NULL, 'p' },
		{ "budget", required_argument, NULL, 'b' },
		{ "seed", required_argument, NULL, 'r' },
		{ "ops", required_argument, NULL, 'n' },
		{ "limit", required_argument, NULL, 'L' },
		{ "columns", no_argument, NULL, 'c' },
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static const char *const daemon_rel[] = { "pagekeeperd", "../sbin/pagekeeperd", NULL };
	static const char *const guest_rel[] = { "guestsim/pk-guestsim", "pk-guestsim", NULL };
	struct lab lab = { 0 };
	struct lab_scenario full, shrt;
	const char *policy = NULL, *budget = NULL, *seed = NULL, *ops = NULL, *limit = NULL;
	const char *name;
	bool short_run = false;
	char err[1024], dirs[PATH_MAX];
	int c;

	for (int i = 1; i < argc; i++)
		if (legacy_flag(argv[i]))
			return pk_lab_demo(argc, argv);
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'o': lab.out_dir = optarg; break;
		case 'S': short_run = true; break;
		case 'p': policy = optarg; break;
		case 'b': budget = optarg; break;
		case 'r': seed = optarg; break;
		case 'n': ops = optarg; break;
		case 'L': limit = optarg; break;
		case 'c': lab_csv_columns(stdout); return 0;
		case 'l': list_scenarios(); return 0;
		case 'h': pk_lab_usage(stdout); return 0;
		default: pk_lab_usage(stderr); return 2;
		}
	}
	if (argc - optind > 1) {
		fprintf(stderr, "pagekeeper lab: unexpected argument '%s' (one scenario at "
			"a time)\n", argv[optind + 1]);
		return 2;
	}
	name = optind < argc ? argv[optind] : "case-study";
	if (find_scenario(name, lab.path, sizeof(lab.path), dirs, sizeof(dirs)) < 0) {
		fprintf(stderr, "pagekeeper lab: unexpected argument '%s': no scenario %s.ini "
			"in %s (pagekeeper lab --list)\n", name, name, dirs);
		return 2;
	}
	if (lab_scenario_load(lab.path, &full, &shrt, err, sizeof(err)) < 0) {
		fprintf(stderr, "pagekeeper lab: %s\n", err);
		return 2;
	}
	lab.sc = short_run ? shrt : full;
	if (policy) {
		int p = lab_policy_parse(policy);
		if (p < 0) {
			fprintf(stderr, "pagekeeper lab: bad --policy '%s': want esx, esx-cold, "
				"swap-only, balloon-only or kernel\n", policy);
			return 2;
		}
		lab.sc.policies[0] = (enum lab_policy)p;
		lab.sc.n_policies = 1;
	}
	if (budget) {
		size_t n = strlen(budget);
		const char *why;
		if (n && budget[n - 1] == '%') {
			why = lab_parse_frac(budget, 1.0, &lab.sc.budget_frac);
			lab.sc.budget_bytes = 0;
		} else {
			why = pk_size_parse(budget, &lab.sc.budget_bytes);
			if (!why && (lab.sc.budget_bytes < (1u << 20) || lab.sc.budget_bytes % 4096))
				why = "want a multiple of 4096 bytes, at least 1M, or a "
				      "percentage";
		}
		if (why) {
			fprintf(stderr, "pagekeeper lab: bad --budget '%s': %s\n", budget, why);
			return 2;
		}
	}
	if (seed && parse_count("--seed", seed, 0, UINT32_MAX, &lab.sc.seed) < 0)
		return 2;
	if (ops && parse_count("--ops", ops, 1, UINT64_C(1) << 40, &lab.sc.g.ops) < 0)
		return 2;
	if (limit) {
		uint64_t x;
		if (parse_count("--limit", limit, 1, 86400, &x) < 0)
			return 2;
		lab.sc.limit_s = (double)x;
	}
	for (unsigned i = 0; i < lab.sc.n_policies; i++)
		lab.kernel |= lab.sc.policies[i] == LAB_KERNEL;
	if (lab.kernel && kswap_check(&lab.ks, err, sizeof(err)) < 0) {
		fprintf(stderr, "pagekeeper lab: %s: the kernel anchor: %s\n", lab.path, err);
		return 1;
	}
	if (find_bin(lab.daemon_bin, "PK_DAEMON", daemon_rel) < 0 ||
	    find_bin(lab.guestsim_bin, "PK_GUESTSIM", guest_rel) < 0) {
		fprintf(stderr, "pagekeeper lab: cannot find pagekeeperd and pk-guestsim next "
			"to this program (set PK_DAEMON and PK_GUESTSIM)\n");
		return 1;
	}

	/* Nothing has started before this point. */
	if (lab.kernel && (guard_start(err, sizeof(err)) < 0 || guard_prog("pagekeeper lab") < 0)) {
		fprintf(stderr, "pagekeeper lab: the cleanup guardian: %s\n", err);
		return 1;
	}
	cleanup_install();
	struct sigaction sa = { .sa_handler = on_interrupt };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	lab.tty = isatty(2);
	lab.last_plain = -1;
	const char *tmp = getenv("TMPDIR");
	char base[PATH_MAX / 2];
	snprintf(base, sizeof(base), "%s", tmp && *tmp ? tmp : "/tmp");
	snprintf(lab.tmp, sizeof(lab.tmp), "%s/pagekeeper-lab.XXXXXX", base);
	if (!mkdtemp(lab.tmp) || cleanup_track_dir(lab.tmp) < 0) {
		fprintf(stderr, "pagekeeper lab: mkdtemp %s: %s\n", lab.tmp, strerror(errno));
		return 1;
	}
	/* The guests' page files and the daemons' dirs go there too. */
	setenv("TMPDIR", lab.tmp, 1);
	/* Their balloon sockets too, unless a deep $TMPDIR (a build
	 * tree's) leaves no room in sun_path for "/labNNN.sock". */
	snprintf(lab.sock_dir, sizeof(lab.sock_dir), "%s", lab.tmp);
	if (strlen(lab.sock_dir) + sizeof("/lab999.sock") > 108) {
		snprintf(lab.sock_dir, sizeof(lab.sock_dir), "/tmp/pagekeeper-lab-sock.XXXXXX");
		if (!mkdtemp(lab.sock_dir) || cleanup_track_dir(lab.sock_dir) < 0) {
			fprintf(stderr, "pagekeeper lab: mkdtemp %s: %s\n", lab.sock_dir,
				strerror(errno));
			return 1;
		}
	}
	/*
	 * The swap file in a directory of its own that only the guardian
	 * removes, after swapoff: cleanup_all() must never unlink an active
	 * swap file.
	 */
	snprintf(lab.swap_dir, sizeof(lab.swap_dir), "%s/pagekeeper-lab-swap.XXXXXX", base);
	if (lab.kernel && (!mkdtemp(lab.swap_dir) || guard_tmpdir(lab.swap_dir) < 0)) {
		fprintf(stderr, "pagekeeper lab: mkdtemp %s: %s\n", lab.swap_dir, strerror(errno));
		cleanup_all();
		guard_finish();
		return 1;
	}
	if (lab.kernel && kswap_setup(&lab.ks, lab.swap_dir, lab.sc.swap_size, err,
				      sizeof(err)) < 0) {
		fprintf(stderr, "pagekeeper lab: the kernel anchor's swap file: %s\n", err);
		cleanup_all();
		guard_finish();
		return 1;
	}
	/* issue 16: the report needs a directory: by default a new one here. */
	char def_out[sizeof(lab.sc.name) + 64];
	if (!lab.out_dir) {
		char stamp[32];
		time_t now = time(NULL);
		strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", localtime(&now));
		snprintf(def_out, sizeof(def_out), "pagekeeper-lab-%s-%s", lab.sc.name, stamp);
		lab.out_dir = def_out;
	}
	if (lab.out_dir && lab_csv_open(&lab.csv, lab.out_dir, err, sizeof(err)) < 0) {
		fprintf(stderr, "pagekeeper lab: %s\n", err);
		cleanup_all();
		return 1;
	}
	fprintf(stderr, "lab: scenario %s (%s%s): %u guests, budget %.0f MiB, limit %.0f s "
		"per run\n", lab.sc.name, lab.path, short_run ? ", --short" : "", lab.sc.g.count,
		(double)lab_budget_bytes(&lab.sc) / 1048576.0, lab.sc.limit_s);

	/*
	 * Every run, even after one failed (a policy past the limit is a
	 * result: ">LIMIT s"); only the baseline is needed by the others.
	 */
	int ret = 0, r1;
	/* issue 16: a sharing sweep (identical-guests) instead of policy runs */
	struct lab_report_share share[LAB_MAX_GUESTS];
	unsigned n_share = 0;
	if (lab.sc.sweep_to) {
		struct lab_sweep_env env = { .sc = &lab.sc, .daemon_bin = lab.daemon_bin,
					     .guestsim_bin = lab.guestsim_bin,
					     .csv = &lab.csv, .out_dir = lab.out_dir,
					     .interrupted = &interrupted, .tty = lab.tty };
		r1 = lab_sweep_run(&env, share, &n_share);
		ret = r1 == -EINTR ? r1 : r1 < 0 ? 1 : 0;
	}
	for (int r = -1; !lab.sc.sweep_to && r < (int)lab.sc.n_policies; r++) {
		struct run_res *rr = &lab.runs[lab.n_runs++];
		r1 = run_one(&lab, r < 0 ? -1 : (int)lab.sc.policies[r], false, rr);
		if (r1 == -EINTR || (r < 0 && r1 < 0)) {
			ret = r1 == -EINTR ? r1 : 1;
			break;
		}
		/* A comparison policy (swap-only, balloon-only, the kernel)
		 * stopped at the limit is a result, shown as >LIMIT; the
		 * baseline and esx must finish. */
		if (r1 < 0 && !(r1 == -ETIMEDOUT && r >= 0 &&
				lab.sc.policies[r] != LAB_ESX))
			ret = 1;
	}
	if (ret != -EINTR && lab.runs[0].done && lab.sc.smaller) {
		r1 = run_one(&lab, LAB_ESX, true, &lab.runs[lab.n_runs++]);
		if (r1 == -EINTR)
			ret = r1;
		else if (r1 < 0)
			ret = 1;
	}
	int status;
	if (ret == -EINTR) {
		fprintf(stderr, "pagekeeper lab: interrupted; stopping\n");
		status = 130;
	} else {
		status = (!lab.sc.sweep_to && summary(&lab)) || ret ? 1 : 0;
	}
	lab_csv_close(&lab.csv);
	if (status != 130)
		write_report(&lab, short_run, share, n_share);
	if (lab.kernel)
		kswap_teardown(&lab.ks);
	cleanup_all();
	if (lab.kernel)
		guard_finish();
	return status;
}
