/*
 * sample.c - the lab's CSV files (see sample.h).
 *
 * samples.csv is long: a row per (run, second, VM), so a plot filters by
 * run and vm.  The host part of a row comes from the status's top level,
 * the VM part from its object in "vms"; "states_entered_*" are counters
 * since the run's daemon started, so a state visited between two samples
 * still shows.
 */
#include "sample.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

enum src { RUN, TIME, HOST, HOST_SUB, VM, TL };

struct col {
	const char *name;
	enum src src;
	const char *key, *sub;	/* status key (and sub-key of an object) */
	const char *doc;
};

static const struct col sample_cols[] = {
	{ "run", RUN, NULL, NULL, "baseline (the guests alone, no memory limit: "
	  "--policy manual, no --budget) or the policy of the run" },
	{ "t_s", TIME, NULL, NULL, "seconds since the run's guests started" },
	{ "state", HOST, "state", NULL, "memory state: high, soft, hard or low" },
	{ "free_pct", HOST, "free_pct", NULL, "free memory, % of budget_mib" },
	{ "budget_mib", HOST, "budget_mib", NULL, "machine memory the policy works "
	  "with, MiB" },
	{ "used_mib", HOST, "used_mib", NULL, "of it in use (guests' resident pages "
	  "and the daemon), MiB" },
	{ "psi_some_avg10", HOST, "psi_some_avg10", NULL, "host memory pressure: % of "
	  "time some task stalled on memory over 10 s" },
	{ "entered_soft", HOST_SUB, "states_entered", "soft", "times the state entered "
	  "soft since the run started" },
	{ "entered_hard", HOST_SUB, "states_entered", "hard", "the same for hard" },
	{ "entered_low", HOST_SUB, "states_entered", "low", "the same for low" },
	{ "balloon_commands", HOST, "balloon_commands", NULL, "balloon targets the "
	  "policy sent so far" },
	{ "first_balloon_ms", HOST, "first_balloon_ms", NULL, "when the policy sent its "
	  "first balloon target, ms after the daemon started; empty before any" },
	{ "first_evict_ms", HOST, "first_evict_ms", NULL, "when it first evicted, ms "
	  "after the daemon started; empty before any" },
	{ "vm", VM, "name", NULL, "the guest (VM name)" },
	{ "configured_mib", VM, "configured_mib", NULL, "the guest's RAM, MiB" },
	{ "granted_mib", VM, "granted_mib", NULL, "resident + merged, MiB" },
	{ "active_mib", VM, "active_mib", NULL, "sampled active memory, MiB" },
	{ "target_mib", VM, "target_mib", NULL, "what the allocation gives it, MiB" },
	{ "resident_mib", VM, "resident_mib", NULL, "pages in host memory, MiB" },
	{ "shared_mib", VM, "shared_mib", NULL, "merged with other pages, MiB" },
	{ "zero_mib", VM, "zero_mib", NULL, "zero pages reclaimed, MiB" },
	{ "swapped_mib", VM, "swapped_mib", NULL, "in the daemon's swap file, MiB" },
	{ "ballooned_mib", VM, "ballooned_mib", NULL, "discarded by the guest's "
	  "balloon, MiB" },
	{ "balloon_target_mib", VM, "balloon_target_mib", NULL, "the last balloon target "
	  "(the guest's size it asks for), MiB; empty before any" },
	{ "balloon_actual_mib", VM, "balloon_actual_mib", NULL, "the guest's size now "
	  "(RAM - balloon), MiB" },
	{ "balloon_short", VM, "balloon_short", NULL, "1 when its balloon does not "
	  "deliver (stalled, no progress, no channel)" },
	{ "swapins", VM, "swapins", NULL, "host swap-ins so far, pages" },
	{ "swapins_per_s", VM, "swapins_per_s", NULL, "host swap-ins, pages/s" },
	{ "evictions", VM, "evictions", NULL, "pages evicted to the swap file so far" },
	{ "faults_per_s", VM, "faults_per_s", NULL, "userfaults served, faults/s" },
	{ "stalled", VM, "stalled", NULL, "1 while its faults wait (low state)" },
	{ "stalled_ms", VM, "stalled_ms", NULL, "total time with a fault waiting, ms" },
	{ "guest_pageins_per_s", VM, "guest_pageins_per_s", NULL, "the guest's own "
	  "page-ins from its page file, pages/s (balloon stats, every 2 s)" },
	{ "guest_pageouts_per_s", VM, "guest_pageouts_per_s", NULL, "the guest's own "
	  "page-outs, pages/s" },
};

static const struct col guest_cols[] = {
	{ "run", RUN, NULL, NULL, "as in samples.csv" },
	{ "vm", VM, NULL, NULL, "the guest" },
	{ "t_s", TL, "t_s", NULL, "seconds since the guest OS started" },
	{ "ops_per_s", TL, "ops_per_s", NULL, "the application's accesses, ops/s" },
	{ "page_ins_per_s", TL, "page_ins_per_s", NULL, "the guest's page-ins, pages/s" },
	{ "page_outs_per_s", TL, "page_outs_per_s", NULL, "the guest's page-outs, "
	  "pages/s" },
	{ "balloon_mib", TL, "balloon_mib", NULL, "its balloon, MiB" },
	{ "resident_mib", TL, "resident_mib", NULL, "application pages in its RAM, MiB" },
	{ "heap_mib", TL, "heap_mib", NULL, "the heap grown so far, MiB" },
};

#define N_SAMPLE (sizeof(sample_cols) / sizeof(sample_cols[0]))
#define N_GUEST (sizeof(guest_cols) / sizeof(guest_cols[0]))

static void header(FILE *f, const struct col *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%s", i ? "," : "", c[i].name);
	fputc('\n', f);
}

static int mkdir_p(const char *dir)
{
	char p[PATH_MAX];

	if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int lab_csv_open(struct lab_csv *c, const char *dir, char *err, size_t err_len)
{
	char path[PATH_MAX + 16];
	int r;

	memset(c, 0, sizeof(*c));
	if ((r = mkdir_p(dir)) < 0) {
		snprintf(err, err_len, "--out %s: %s", dir, strerror(-r));
		return r;
	}
	snprintf(path, sizeof(path), "%s/samples.csv", dir);
	c->samples = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/guests.csv", dir);
	c->guests = c->samples ? fopen(path, "w") : NULL;
	if (!c->guests) {
		r = -errno;
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		lab_csv_close(c);
		return r;
	}
	header(c->samples, sample_cols, N_SAMPLE);
	header(c->guests, guest_cols, N_GUEST);
	return 0;
}

/* A JSON value as a cell: number, 0/1, a plain string; null is empty. */
static void cell(FILE *f, json_object *o, const char *key, const char *sub)
{
	json_object *v = NULL;

	if (!o || !json_object_object_get_ex(o, key, &v) || !v)
		return;
	if (sub && !json_object_object_get_ex(v, sub, &v))
		return;
	switch (json_object_get_type(v)) {
	case json_type_boolean:
		fputc(json_object_get_boolean(v) ? '1' : '0', f);
		break;
	case json_type_int:
		fprintf(f, "%lld", (long long)json_object_get_int64(v));
		break;
	case json_type_double:
		fprintf(f, "%.3f", json_object_get_double(v));
		break;
	case json_type_string:
		/* names and states: [A-Za-z0-9._-], nothing to quote */
		fputs(json_object_get_string(v), f);
		break;
	default:
		break;
	}
}

void lab_csv_sample(struct lab_csv *c, const char *run, double t_s, json_object *root)
{
	json_object *vms;

	if (!c->samples || !json_object_object_get_ex(root, "vms", &vms) ||
	    !json_object_is_type(vms, json_type_array))
		return;
	for (size_t v = 0; v < json_object_array_length(vms); v++) {
		json_object *vm = json_object_array_get_idx(vms, v);
		for (size_t i = 0; i < N_SAMPLE; i++) {
			const struct col *k = &sample_cols[i];
			if (i)
				fputc(',', c->samples);
			if (k->src == RUN)
				fputs(run, c->samples);
			else if (k->src == TIME)
				fprintf(c->samples, "%.3f", t_s);
			else
				cell(c->samples, k->src == VM ? vm : root, k->key, k->sub);
		}
		fputc('\n', c->samples);
		c->rows++;
	}
	fflush(c->samples);
}

void lab_csv_plain(struct lab_csv *c, const char *run, double t_s, const char *vm,
		   const struct lab_plain *p)
{
	const struct { const char *name; double v; } nums[] = {
		{ "free_pct", p->free_pct }, { "budget_mib", p->budget_mib },
		{ "used_mib", p->used_mib }, { "configured_mib", p->configured_mib },
		{ "resident_mib", p->resident_mib }, { "swapins", p->swapins },
	};

	if (!c->samples)
		return;
	for (size_t i = 0; i < N_SAMPLE; i++) {
		const struct col *k = &sample_cols[i];
		if (i)
			fputc(',', c->samples);
		if (k->src == RUN)
			fputs(run, c->samples);
		else if (k->src == TIME)
			fprintf(c->samples, "%.3f", t_s);
		else if (k->src == VM && !strcmp(k->key, "name"))
			fputs(vm, c->samples);
		for (size_t j = 0; j < sizeof(nums) / sizeof(nums[0]); j++)
			if (!strcmp(k->name, nums[j].name) && nums[j].v >= 0)
				fprintf(c->samples, "%.3f", nums[j].v);
	}
	fputc('\n', c->samples);
	c->rows++;
	fflush(c->samples);
}

void lab_csv_timeline(struct lab_csv *c, const char *run, const char *vm,
		      json_object *report)
{
	json_object *tl;

	if (!c->guests || !json_object_object_get_ex(report, "timeline", &tl) ||
	    !json_object_is_type(tl, json_type_array))
		return;
	for (size_t r = 0; r < json_object_array_length(tl); r++) {
		json_object *p = json_object_array_get_idx(tl, r);
		for (size_t i = 0; i < N_GUEST; i++) {
			if (i)
				fputc(',', c->guests);
			if (guest_cols[i].src == RUN)
				fputs(run, c->guests);
			else if (guest_cols[i].src == VM)
				fputs(vm, c->guests);
			else
				cell(c->guests, p, guest_cols[i].key, NULL);
		}
		fputc('\n', c->guests);
	}
	fflush(c->guests);
}

void lab_csv_close(struct lab_csv *c)
{
	if (c->samples)
		fclose(c->samples);
	if (c->guests)
		fclose(c->guests);
	c->samples = c->guests = NULL;
}

void lab_csv_columns(FILE *out)
{
	fprintf(out, "samples.csv: one row per VM per second of each run\n");
	for (size_t i = 0; i < N_SAMPLE; i++)
		fprintf(out, "  %-22s %s\n", sample_cols[i].name, sample_cols[i].doc);
	fprintf(out, "guests.csv: one row per guest per second of its own timeline "
		"(from its report at its end)\n");
	for (size_t i = 0; i < N_GUEST; i++)
		fprintf(out, "  %-22s %s\n", guest_cols[i].name, guest_cols[i].doc);
}
