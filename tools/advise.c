/*
 * advise.c - `pagekeeper advise`: which VMs hold far more memory than they
 * use, and what size to give them.
 *
 * What: for each VM, its granted memory (resident + merged) against its
 * active memory (the daemon's sampled estimate, engine/active.c), from a
 * live daemon (`status`: granted_mib, active_mib, configured_mib) or from
 * a finished lab run (`--run OUT`: OUT/samples.csv, the peak of each over
 * one run).  The rule, also in the help and README "Lab scenarios":
 * suggested = peak active x (1 + headroom, default 25%), rounded up to
 * 64 MiB (4 MiB for a VM under 1 GiB), at most its configured size; a VM
 * is named when its granted memory is above the suggestion by at least
 * 20% of what it is granted and at least one rounding step.
 * How: json-c for the status (pk_cli_status), a plain CSV read by column
 * name for samples.csv; a run's samples of the first sampling period
 * (PK_SAMPLE_PERIOD_MS, 10 s, plus a second) are skipped, since until the
 * sampler has judged a period a VM counts as fully active.
 * Why: seed 000: the consultant read allocated against active memory in
 * vCenter and gave the locked-pages guest about 1 GiB less, which ended
 * its ballooning.  This is that reading, done for every VM.
 */
#include "cli.h"

#include "engine/policy.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADV_MAX_VMS 256
#define GIB_MIB 1024.0

struct adv_vm {
	char name[64];
	double configured, granted, active;	/* MiB; active < 0: unknown */
};

struct advice {
	double headroom;	/* fraction */
	unsigned n;
	struct adv_vm vm[ADV_MAX_VMS];
};

static void advise_usage(FILE *f)
{
	fprintf(f,
		"usage: pagekeeper advise [--run OUT [--run-name RUN]] [--headroom PCT]\n"
		"  Name the VMs whose granted memory (resident + merged) is far above\n"
		"  their active memory (the daemon's sampled estimate), with a size to\n"
		"  give them instead.  Without --run: the VMs of the running daemon\n"
		"  (--socket); with --run OUT: a finished `pagekeeper lab --out OUT`\n"
		"  (OUT/samples.csv), the peaks of one run (default: esx, else the first\n"
		"  run that is not the baseline), skipping its first 11 s (before the\n"
		"  first 10 s sampling period is judged, a VM counts as fully active).\n"
		"  Rule: suggested = peak active x (1 + headroom), rounded up to 64 MiB\n"
		"  (4 MiB for a VM under 1 GiB), at most its configured size; a VM is\n"
		"  named when it is granted at least 20%% more than the suggestion and\n"
		"  at least one rounding step more.\n"
		"  --headroom PCT       above the peak active memory (default 25)\n"
		"Exit status: 0 (advice given, or none needed), 1 no data, 2 bad usage,\n"
		"3 no daemon answers.\n");
}

static struct adv_vm *vm_get(struct advice *a, const char *name)
{
	for (unsigned i = 0; i < a->n; i++)
		if (!strcmp(a->vm[i].name, name))
			return &a->vm[i];
	if (a->n == ADV_MAX_VMS)
		return NULL;
	struct adv_vm *v = &a->vm[a->n++];
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->configured = v->granted = 0;
	v->active = -1;
	return v;
}

static int from_status(struct advice *a, const char *sock)
{
	int rc = PK_EXIT_OK;
	json_object *root = pk_cli_status_rc(sock, 0, &rc), *vms, *v;

	if (!root)
		return rc;
	if (json_object_object_get_ex(root, "vms", &vms))
		for (size_t j = 0; j < json_object_array_length(vms); j++) {
			json_object *o = json_object_array_get_idx(vms, j);
			struct adv_vm *m;
			if (!json_object_object_get_ex(o, "name", &v) ||
			    !(m = vm_get(a, json_object_get_string(v))))
				continue;
			if (json_object_object_get_ex(o, "configured_mib", &v) && v)
				m->configured = json_object_get_double(v);
			if (json_object_object_get_ex(o, "granted_mib", &v) && v)
				m->granted = json_object_get_double(v);
			if (json_object_object_get_ex(o, "active_mib", &v) && v)
				m->active = json_object_get_double(v);
		}
	json_object_put(root);
	return PK_EXIT_OK;
}

static int split(char *line, char **f, int max)
{
	int n = 0;

	line[strcspn(line, "\r\n")] = '\0';
	f[n++] = line;
	for (char *p = line; *p && n < max; p++)
		if (*p == ',') {
			*p = '\0';
			f[n++] = p + 1;
		}
	return n;
}

static int col(char **h, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(h[i], name))
			return i;
	return -1;
}

/* The run to read: want, else esx, else the first that is not the baseline. */
static int pick_run(FILE *in, int c_run, int nh, const char *want, char *run, size_t len)
{
	char line[4096], *f[128];
	bool esx = false;

	run[0] = '\0';
	while (fgets(line, sizeof(line), in))
		if (split(line, f, 128) == nh) {
			if (want && !strcmp(f[c_run], want))
				break;
			esx |= !strcmp(f[c_run], "esx");
			if (!run[0] && strcmp(f[c_run], "baseline"))
				snprintf(run, len, "%s", f[c_run]);
		}
	if (want) {
		snprintf(run, len, "%s", want);
		return feof(in) ? -1 : 0;
	}
	if (esx)
		snprintf(run, len, "esx");
	return run[0] ? 0 : -1;
}

static int from_run(struct advice *a, const char *dir, const char *want, char *run,
		    size_t run_len)
{
	char path[PATH_MAX], line[4096], hline[4096], *h[128], *f[128];
	FILE *in;
	int nh;

	snprintf(path, sizeof(path), "%s/samples.csv", dir);
	if (!(in = fopen(path, "r"))) {
		fprintf(stderr, "pagekeeper advise: %s: %s (a `pagekeeper lab --out DIR` "
			"directory?)\n", path, strerror(errno));
		return PK_EXIT_FAILED;
	}
	nh = fgets(hline, sizeof(hline), in) ? split(hline, h, 128) : 0;
	int c_run = col(h, nh, "run"), c_t = col(h, nh, "t_s"), c_vm = col(h, nh, "vm"),
	    c_cf = col(h, nh, "configured_mib"), c_gr = col(h, nh, "granted_mib"),
	    c_ac = col(h, nh, "active_mib");
	if (c_run < 0 || c_t < 0 || c_vm < 0 || c_cf < 0 || c_gr < 0 || c_ac < 0) {
		fprintf(stderr, "pagekeeper advise: %s: not the lab's samples.csv (it needs "
			"run, t_s, vm, configured_mib, granted_mib, active_mib)\n", path);
		fclose(in);
		return PK_EXIT_FAILED;
	}
	if (pick_run(in, c_run, nh, want, run, run_len) < 0) {
		fprintf(stderr, "pagekeeper advise: %s: no run %s\n", path,
			want ? want : "but the baseline");
		fclose(in);
		return PK_EXIT_FAILED;
	}
	rewind(in);
	if (!fgets(line, sizeof(line), in)) { /* the header */
		fclose(in);
		return PK_EXIT_FAILED;
	}
	double skip_s = PK_SAMPLE_PERIOD_MS / 1000.0 + 1;
	while (fgets(line, sizeof(line), in)) {
		struct adv_vm *m;
		if (split(line, f, 128) != nh || strcmp(f[c_run], run) || !f[c_vm][0] ||
		    !(m = vm_get(a, f[c_vm])))
			continue;
		m->configured = fmax(m->configured, atof(f[c_cf]));
		m->granted = fmax(m->granted, atof(f[c_gr]));
		if (atof(f[c_t]) >= skip_s && f[c_ac][0])
			m->active = fmax(m->active, atof(f[c_ac]));
	}
	fclose(in);
	return PK_EXIT_OK;
}

static void report(const struct advice *a, const char *source)
{
	unsigned named = 0;

	printf("%s\n%-16s %12s %12s %12s %12s  %s\n", source, "vm", "configured", "granted",
	       "active", "suggested", "advice");
	for (unsigned i = 0; i < a->n; i++) {
		const struct adv_vm *v = &a->vm[i];
		if (v->active < 0) {
			printf("%-16s %8.0f MiB %8.1f MiB %12s %12s  no active-memory sample "
			       "yet (the first period is 10 s)\n", v->name, v->configured,
			       v->granted, "-", "-");
			continue;
		}
		double unit = v->configured >= GIB_MIB ? 64 : 4;
		double s = ceil(v->active * (1 + a->headroom) / unit - 1e-9) * unit;
		s = fmax(unit, fmin(s, v->configured));
		bool far = v->granted - s >= fmax(unit, 0.2 * v->granted);
		printf("%-16s %8.0f MiB %8.1f MiB %8.1f MiB %8.0f MiB  ", v->name, v->configured,
		       v->granted, v->active, s);
		if (far) {
			printf("give it %.0f MiB: granted %.1f MiB is far above its active "
			       "%.1f MiB (%.0f MiB back)\n", s, v->granted, v->active,
			       v->configured - s);
			named++;
		} else {
			printf("ok: it uses what it is granted\n");
		}
	}
	printf("%u of %u VMs hold far more memory than they use (rule: peak active + %.0f%% "
	       "headroom, rounded up to 64 MiB, 4 MiB under 1 GiB; named when granted "
	       "exceeds it by 20%% and one step)\n", named, a->n, a->headroom * 100);
}

int pk_cli_advise(const char *socket_path, int argc, char **argv)
{
	struct advice a;
	const char *run_dir = NULL, *run_name = NULL;
	char run[64], source[PATH_MAX + 128];
	int rc;

	memset(&a, 0, sizeof(a));
	a.headroom = 0.25;
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end;
		if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
			advise_usage(stdout);
			return PK_EXIT_OK;
		} else if (!strcmp(o, "--run") && v) {
			run_dir = v;
		} else if (!strcmp(o, "--run-name") && v) {
			run_name = v;
		} else if (!strcmp(o, "--headroom") && v) {
			a.headroom = strtod(v, &end) / 100;
			if (end == v || (*end && strcmp(end, "%")) || !(a.headroom >= 0) ||
			    a.headroom > 10) {
				fprintf(stderr, "pagekeeper advise: bad --headroom '%s': want "
					"0..1000 (percent)\n", v);
				return PK_EXIT_USAGE;
			}
		} else {
			fprintf(stderr, "pagekeeper advise: unexpected argument '%s'%s\n", o,
				o[0] == '-' && !v ? " (it needs a value)" : "");
			advise_usage(stderr);
			return PK_EXIT_USAGE;
		}
		i++;
	}
	if (run_name && !run_dir) {
		fprintf(stderr, "pagekeeper advise: --run-name needs --run OUT\n");
		return PK_EXIT_USAGE;
	}
	if (run_dir) {
		if ((rc = from_run(&a, run_dir, run_name, run, sizeof(run))) != PK_EXIT_OK)
			return rc;
		snprintf(source, sizeof(source), "advise: %s/samples.csv, run %s (peaks after "
			 "its first %.0f s)", run_dir, run, PK_SAMPLE_PERIOD_MS / 1000.0 + 1);
	} else {
		if ((rc = from_status(&a, socket_path)) != PK_EXIT_OK)
			return rc;
		snprintf(source, sizeof(source), "advise: pagekeeperd at %s, now", socket_path);
	}
	if (!a.n) {
		fprintf(stderr, "pagekeeper advise: no VMs\n");
		return PK_EXIT_FAILED;
	}
	report(&a, source);
	return PK_EXIT_OK;
}
