/*
 * sweep.c - the lab's sharing sweep (see sweep.h).
 *
 * A step: pagekeeperd --policy manual (no budget: nothing is reclaimed
 * but what sharing merges), N guests `pk-guestsim --content C
 * --share-domain D --seed S --workload idle --hold` (each fills its RAM,
 * then holds it unchanged), the status every second until the scanner
 * has settled, then the guests and the daemon are stopped.  With
 * content shared=1 every page of a guest is f(seed, page), the same in
 * each guest: N copies of one image, as N identical guests booted from
 * one template.
 */
#include "sweep.h"

#include "tools/bench/daemon_proc.h"
#include "tools/bench/guest_proc.h"
#include "tools/bench/status_json.h"
#include "tools/bench/timing.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct totals {
	double configured, shared, zero, saved;
	double min_passes;	/* the least scanned guest's scan passes */
	double stable_scans;	/* the daemon's --share-stable-scans */
	unsigned vms;
};

static void add_up(json_object *root, struct totals *t)
{
	json_object *vms;

	json_object *sharing;

	*t = (struct totals){ .min_passes = INFINITY, .stable_scans = 1 };
	if (json_object_object_get_ex(root, "sharing", &sharing))
		t->stable_scans = status_num(sharing, "stable_scans", 1);
	if (!json_object_object_get_ex(root, "vms", &vms))
		return;
	for (size_t j = 0; j < json_object_array_length(vms); j++) {
		json_object *vm = json_object_array_get_idx(vms, j);
		t->configured += status_num(vm, "configured_mib", 0);
		t->shared += status_num(vm, "shared_mib", 0);
		t->zero += status_num(vm, "zero_mib", 0);
		t->saved += status_num(vm, "saved_mib", 0);
		t->min_passes = fmin(t->min_passes, status_num(vm, "scan_passes", 0));
		t->vms++;
	}
}

static int step(const struct lab_sweep_env *e, unsigned n, struct lab_report_share *p)
{
	const struct lab_scenario *s = e->sc;
	const char *extra[] = { "--policy", "manual", NULL };
	const char *content = s->g.content[0] ? s->g.content : "zero=0,shared=1";
	const char *domain = s->g.share_domain[0] ? s->g.share_domain : "lab";
	struct guest g[LAB_MAX_GUESTS];
	struct pk_daemon d;
	char err[1024], run[16], size[32], seed[32], names[LAB_MAX_GUESTS][16];
	double last_shared = -1;
	unsigned same = 0;
	int ret;

	memset(&d, 0, sizeof(d));
	d.pid = -1;
	for (unsigned i = 0; i < LAB_MAX_GUESTS; i++)
		g[i] = (struct guest){ .pid = -1, .in_fd = -1, .out_fd = -1 };
	snprintf(run, sizeof(run), "guests-%u", n);
	*p = (struct lab_report_share){ .guests = n };
	fprintf(stderr, "lab: %s: pagekeeperd --policy manual (no memory limit), %u "
		"identical guests of %.0f MiB\n", run, n, (double)s->g.size / 1048576.0);
	if ((ret = daemon_start(&d, e->daemon_bin, extra, err, sizeof(err))) < 0) {
		fprintf(stderr, "pagekeeper lab: %s: the daemon did not start: %s\n", run, err);
		return ret;
	}
	snprintf(size, sizeof(size), "%llu", (unsigned long long)s->g.size);
	/* One seed for all: the same content in every guest. */
	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)s->seed);
	for (unsigned i = 0; i < n; i++) {
		const char *args[] = { "--socket", d.sock, "--name", names[i], "--size", size,
				       "--seed", seed, "--content", content,
				       "--share-domain", domain,
				       "--workload", "idle", "--hold", "--quiet", NULL };
		snprintf(names[i], sizeof(names[i]), "lab%u", i);
		if ((ret = guest_start(&g[i], e->guestsim_bin, names[i], args, err,
				       sizeof(err))) < 0) {
			fprintf(stderr, "pagekeeper lab: %s: guest %s: %s\n", run, names[i], err);
			goto out;
		}
	}
	if ((ret = guests_wait_holding(g, n, s->limit_s, &d, "lab", 10, err,
				       sizeof(err))) < 0) {
		fprintf(stderr, "pagekeeper lab: %s: %s\n", run, err);
		goto out;
	}
	uint64_t t0 = now_ns();
	for (;;) {
		double t = (double)(now_ns() - t0) / 1e9;
		json_object *root;
		struct totals tot;

		if (*e->interrupted) {
			ret = -EINTR;
			goto out;
		}
		if (!daemon_alive(&d)) {
			fprintf(stderr, "pagekeeper lab: %s: pagekeeperd died\n", run);
			daemon_log_tail(&d, stderr, 20);
			ret = -ECHILD;
			goto out;
		}
		if ((ret = status_fetch(d.sock, 5, &root, err, sizeof(err))) < 0) {
			fprintf(stderr, "pagekeeper lab: %s: status: %s\n", run, err);
			goto out;
		}
		lab_csv_sample(e->csv, run, t, root);
		add_up(root, &tot);
		json_object_put(root);
		p->configured_mib = tot.configured;
		p->shared_mib = tot.shared;
		p->zero_mib = tot.zero;
		p->shared_pct = tot.configured > 0 ? 100.0 * tot.shared / tot.configured : 0;
		p->saved_mib = tot.saved;
		p->saved_pct = tot.configured > 0 ? 100.0 * tot.saved / tot.configured : 0;
		same = fabs(tot.shared - last_shared) < 0.01 ? same + 1 : 0;
		last_shared = tot.shared;
		if (e->tty)
			fprintf(stderr, "\r\033[Klab: %s: %3.0f s, shared %.1f MiB of %.0f MiB "
				"(%.1f%%), scan passes %.0f", run, t, tot.shared, tot.configured,
				p->shared_pct, isinf(tot.min_passes) ? 0 : tot.min_passes);
		/* A page is merged in the pass that finds it stable (the
		 * stable_scans + 1st read); two more passes see that done,
		 * however slowly a loaded machine scans. */
		if (tot.vms == n && tot.min_passes >= tot.stable_scans + 3 && same >= 2) {
			p->settled = true;
			break;
		}
		if (t > s->limit_s) {
			fprintf(stderr, "%spagekeeper lab: %s: sharing did not settle within the "
				"scenario's limit of %.0f s; the last figure is kept\n",
				e->tty ? "\n" : "", run, s->limit_s);
			break;
		}
		usleep(1000000);
	}
	if (e->tty)
		fputc('\n', stderr);
	fprintf(stderr, "lab: %s: shared %.1f MiB of %.0f MiB (%.1f%%)\n", run,
		p->shared_mib, p->configured_mib, p->shared_pct);
	ret = 0;
out:
	guests_stop(g, n, 2000);
	daemon_stop(&d);
	return ret;
}

int lab_sweep_run(const struct lab_sweep_env *e, struct lab_report_share *pts,
		  unsigned *n)
{
	const struct lab_scenario *s = e->sc;
	char path[PATH_MAX];
	FILE *f = NULL;
	int ret = 0;

	*n = 0;
	if (e->out_dir) {
		snprintf(path, sizeof(path), "%s/sharing.csv", e->out_dir);
		if (!(f = fopen(path, "w"))) {
			fprintf(stderr, "pagekeeper lab: %s: %s\n", path, strerror(errno));
			return -errno;
		}
		fprintf(f, "guests,configured_mib,shared_mib,zero_mib,shared_pct,saved_mib,"
			"saved_pct,settled\n");
	}
	for (unsigned k = s->sweep_from; k <= s->sweep_to; k++) {
		struct lab_report_share *p = &pts[*n];
		if ((ret = step(e, k, p)) < 0)
			break;
		(*n)++;
		if (f) {
			fprintf(f, "%u,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%d\n", p->guests,
				p->configured_mib, p->shared_mib, p->zero_mib, p->shared_pct,
				p->saved_mib, p->saved_pct, p->settled);
			fflush(f);
		}
	}
	if (f)
		fclose(f);
	if (ret == -EINTR)
		return ret;
	printf("\nlab: %s: shared memory against the number of identical guests (%.0f MiB "
	       "each, content %s, sharing domain %s)\n", s->name,
	       (double)s->g.size / 1048576.0, s->g.content[0] ? s->g.content : "zero=0,shared=1",
	       s->g.share_domain[0] ? s->g.share_domain : "lab");
	printf("%6s %12s %12s %12s %11s %11s %14s  %s\n", "guests", "RAM", "shared", "zero",
	       "shared", "saved", "ESX published", "settled");
	for (unsigned k = 0; k < *n; k++)
		printf("%6u %8.0f MiB %8.1f MiB %8.1f MiB %10.1f%% %10.1f%% %13.0f%%  %s\n",
		       pts[k].guests, pts[k].configured_mib, pts[k].shared_mib,
		       pts[k].zero_mib, pts[k].shared_pct, pts[k].saved_pct, LAB_ESX_IDENTICAL_PCT,
		       pts[k].settled ? "yes" : "no (at the limit)");
	return ret;
}
