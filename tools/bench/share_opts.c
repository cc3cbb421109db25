/*
 * share_opts.c - pk-bench-share's command line.
 *
 * What/how/why: see share_opts.h.
 */
#include "share_opts.h"
#include "tools/common/size_parse.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 4096u

static const char *const kind_names[SHARE_KINDS] = { "anon", "memfd" };
static const char *const mech_names[SHARE_MECHS] = { "ksm-default", "ksm-full", "pk-default",
						     "pk-full" };

const char *share_kind_name(enum share_kind k) { return kind_names[k]; }
const char *share_mech_name(enum share_mech m) { return mech_names[m]; }
bool share_mech_is_ksm(enum share_mech m) { return m == MECH_KSM_DEFAULT || m == MECH_KSM_FULL; }

static void usage(FILE *out)
{
	fprintf(out,
"usage: pk-bench-share [options]   (as root)\n"
"Page sharing: pagekeeperd's scanner against KSM, on lab guests whose\n"
"duplicate and zero fractions are known, for private anonymous RAM and\n"
"memfd RAM, one variant after the other.  Measures the time to reclaim 95%%\n"
"of the reachable savings, CPU seconds per GiB reclaimed, and the saved\n"
"machine memory (MemAvailable, MemFree, PSS).\n"
"\n"
"  --total SIZE             RAM of all guests together, K/M/G (default 8G)\n"
"  --guests N               lab guests, 2..%d (default 4), each --total/N\n"
"  --content zero=F,shared=F  fractions of zero pages and of pages identical\n"
"                           in all guests (default zero=0.15,shared=0.40)\n"
"  --seed N                 content seed of every guest (default 7)\n"
"  --kind KIND              anon, memfd or both (default both)\n"
"  --variants LIST          comma-separated of ksm-default, ksm-full,\n"
"                           pk-default, pk-full (default: all four)\n"
"  --skip-pk-full           leave out pk-full (pagekeeperd at full speed)\n"
"  --ksm-default-cap SECONDS  stop KSM at its defaults after this long and\n"
"                           extrapolate its time to 95%% (default 120)\n"
"  --ksm-default-complete   run KSM at its defaults until it settles instead\n"
"                           (about 1000 s for 8 GiB; at most %.0f s)\n"
"  --ksm-full-pages N       KSM full speed: pages_to_scan (default 10000)\n"
"  --ksm-full-sleep MS      KSM full speed: sleep_millisecs (default 0)\n"
"  --pk-rate SIZE           pk-default's --scan-rate (default: the daemon's own)\n"
"  --pk-full-rate SIZE      pk-full's --scan-rate; it also gets --scan-cpu 100\n"
"                           (default 2G: above what one core scans here)\n"
"  --max-wait SECONDS       longest wait for a variant to settle after the\n"
"                           fill (default 600)\n"
"  --idle SECONDS           end a variant that has scanned no page and saved\n"
"                           nothing for this long: the mechanism does not\n"
"                           handle this memory kind (default 30)\n"
"  --fill-timeout SECONDS   longest wait for the guests' fill (default 900)\n"
"  --settled-cpu SECONDS    keep a variant that settled running this long\n"
"                           and report ksmd's or pagekeeperd's CPU share and\n"
"                           scan rate meanwhile: the cost of scanning merged\n"
"                           guests that change nothing (default 0: off)\n"
"  --poll-ms MS             sampling period, 50..1000 (default 200)\n"
"  --pss-ms MS              period of the anonymous guests' PSS samples, a\n"
"                           page-table walk of ~18 ms per 2 GiB (default 1000)\n"
"  --progress SECONDS       progress line period on stderr (default 5)\n"
"  --daemon PATH            pagekeeperd (default: ../pagekeeperd next to\n"
"                           this binary's directory)\n"
"  --guestsim PATH          pk-guestsim (default: ../guestsim/pk-guestsim)\n"
"  --help                   this text\n"
"\n"
"KSM variants run --no-daemon --mergeable guests; pagekeeperd variants never\n"
"use --mergeable (KSM would drop the daemon's write protection).  KSM's\n"
"settings are read at the start and restored at the end (run=2 to unmerge,\n"
"then run=0, then the original values) even if the benchmark is killed.\n"
"Needs: root, /sys/kernel/mm/ksm, free memory for --total plus a margin.\n",
		SHARE_MAX_GUESTS, SHARE_COMPLETE_CAP_S);
}

static int parse_num(const char *s, double min, double max, double *out)
{
	char *end;

	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	double v;

	if (parse_num(s, min, max, &v) < 0 || v != (unsigned)v)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int parse_rate(const char *s)
{
	uint64_t v;

	return pk_size_parse(s, &v) || v < PAGE ? -EINVAL : 0;
}

static int parse_content(struct share_opts *o, const char *arg)
{
	char buf[128], *save = NULL;

	if (strlen(arg) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, arg);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');
		double v;
		if (!eq || parse_num(eq + 1, 0, 1, &v) < 0)
			return -EINVAL;
		*eq = '\0';
		if (!strcmp(t, "zero"))
			o->zero_frac = v;
		else if (!strcmp(t, "shared"))
			o->shared_frac = v;
		else
			return -EINVAL;
	}
	if (o->zero_frac + o->shared_frac > 1 + 1e-9)
		return -EINVAL;
	o->content = arg;
	return 0;
}

static int parse_variants(struct share_opts *o, const char *arg)
{
	char buf[128], *save = NULL;

	if (strlen(arg) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, arg);
	memset(o->mech, 0, sizeof(o->mech));
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int found = -1;
		for (int m = 0; m < SHARE_MECHS; m++)
			if (!strcmp(t, mech_names[m]))
				found = m;
		if (found < 0)
			return -EINVAL;
		o->mech[found] = true;
	}
	for (int m = 0; m < SHARE_MECHS; m++)
		if (o->mech[m])
			return 0;
	return -EINVAL;
}

static int parse_kind(struct share_opts *o, const char *arg)
{
	bool both = !strcmp(arg, "both");

	if (!both && strcmp(arg, "anon") && strcmp(arg, "memfd"))
		return -EINVAL;
	o->kind[SHARE_ANON] = both || !strcmp(arg, "anon");
	o->kind[SHARE_MEMFD] = both || !strcmp(arg, "memfd");
	return 0;
}

static void defaults(struct share_opts *o)
{
	*o = (struct share_opts){
		.total_bytes = 8ull << 30, .guests = 4, .zero_frac = 0.15, .shared_frac = 0.40,
		.seed = 7, .content = "zero=0.15,shared=0.40",
		.kind = { true, true }, .mech = { true, true, true, true },
		.ksm_default_cap_s = 120, .ksm_full_pages = 10000, .ksm_full_sleep_ms = 0,
		.pk_full_rate = "2G", .max_wait_s = 600, .idle_s = 30, .fill_timeout_s = 900,
		.poll_ms = 200, .pss_ms = 1000, .progress_s = 5,
	};
}

int share_opts_parse(int argc, char **argv, struct share_opts *o)
{
	enum { O_TOTAL = 1000, O_GUESTS, O_CONTENT, O_SEED, O_KIND, O_VARIANTS, O_SKIP_PK_FULL,
	       O_KSM_CAP, O_KSM_COMPLETE, O_KSM_PAGES, O_KSM_SLEEP, O_PK_RATE, O_PK_FULL_RATE,
	       O_MAX_WAIT, O_IDLE, O_FILL_TIMEOUT, O_POLL, O_PSS, O_PROGRESS, O_DAEMON, O_GUESTSIM,
	       O_HELP, O_SETTLED_CPU };
	static const struct option longopts[] = {
		{ "total", required_argument, NULL, O_TOTAL },
		{ "guests", required_argument, NULL, O_GUESTS },
		{ "content", required_argument, NULL, O_CONTENT },
		{ "seed", required_argument, NULL, O_SEED },
		{ "kind", required_argument, NULL, O_KIND },
		{ "variants", required_argument, NULL, O_VARIANTS },
		{ "skip-pk-full", no_argument, NULL, O_SKIP_PK_FULL },
		{ "ksm-default-cap", required_argument, NULL, O_KSM_CAP },
		{ "ksm-default-complete", no_argument, NULL, O_KSM_COMPLETE },
		{ "ksm-full-pages", required_argument, NULL, O_KSM_PAGES },
		{ "ksm-full-sleep", required_argument, NULL, O_KSM_SLEEP },
		{ "pk-rate", required_argument, NULL, O_PK_RATE },
		{ "pk-full-rate", required_argument, NULL, O_PK_FULL_RATE },
		{ "max-wait", required_argument, NULL, O_MAX_WAIT },
		{ "idle", required_argument, NULL, O_IDLE },
		{ "fill-timeout", required_argument, NULL, O_FILL_TIMEOUT },
		{ "poll-ms", required_argument, NULL, O_POLL },
		{ "pss-ms", required_argument, NULL, O_PSS },
		{ "progress", required_argument, NULL, O_PROGRESS },
		{ "daemon", required_argument, NULL, O_DAEMON },
		{ "guestsim", required_argument, NULL, O_GUESTSIM },
		{ "help", no_argument, NULL, O_HELP },
		{ "settled-cpu", required_argument, NULL, O_SETTLED_CPU },
		{ NULL, 0, NULL, 0 },
	};
	bool skip_pk_full = false;
	double v;
	int c, r = 0;

	defaults(o);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case O_TOTAL:
			r = pk_size_parse(optarg, &o->total_bytes) || o->total_bytes < (16u << 20) ||
			    o->total_bytes > (1ull << 40) ? -EINVAL : 0;
			break;
		case O_GUESTS: r = parse_uint(optarg, 2, SHARE_MAX_GUESTS, &o->guests); break;
		case O_CONTENT: r = parse_content(o, optarg); break;
		case O_SEED:
			r = parse_num(optarg, 0, 1e15, &v) < 0 || v != (uint64_t)v ? -EINVAL : 0;
			o->seed = (uint64_t)v;
			break;
		case O_KIND: r = parse_kind(o, optarg); break;
		case O_VARIANTS: r = parse_variants(o, optarg); break;
		case O_SKIP_PK_FULL: skip_pk_full = true; break;
		case O_KSM_CAP: r = parse_num(optarg, 1, 1e6, &o->ksm_default_cap_s); break;
		case O_KSM_COMPLETE: o->ksm_default_complete = true; break;
		case O_KSM_PAGES: r = parse_uint(optarg, 1, 1u << 30, &o->ksm_full_pages); break;
		case O_KSM_SLEEP: r = parse_uint(optarg, 0, 1000, &o->ksm_full_sleep_ms); break;
		case O_PK_RATE: r = parse_rate(optarg); o->pk_rate = optarg; break;
		case O_PK_FULL_RATE: r = parse_rate(optarg); o->pk_full_rate = optarg; break;
		case O_MAX_WAIT: r = parse_num(optarg, 1, 1e6, &o->max_wait_s); break;
		case O_IDLE: r = parse_num(optarg, 1, 1e5, &o->idle_s); break;
		case O_FILL_TIMEOUT: r = parse_num(optarg, 1, 1e6, &o->fill_timeout_s); break;
		case O_POLL: r = parse_num(optarg, 50, 1000, &o->poll_ms); break;
		case O_PSS: r = parse_num(optarg, 50, 60000, &o->pss_ms); break;
		case O_PROGRESS: r = parse_num(optarg, 0.5, 3600, &o->progress_s); break;
		case O_DAEMON: o->daemon = optarg; break;
		case O_GUESTSIM: o->guestsim = optarg; break;
		case O_SETTLED_CPU: r = parse_num(optarg, 1, 3600, &o->settled_cpu_s); break;
		case O_HELP: case 'h': usage(stdout); return 1;
		case ':':
			fprintf(stderr, "pk-bench-share: option %s needs a value (see --help)\n",
				argv[optind - 1]);
			return -EINVAL;
		default:
			fprintf(stderr, "pk-bench-share: unknown option '%s' (see --help)\n",
				argv[optind - 1]);
			return -EINVAL;
		}
		if (r < 0) {
			fprintf(stderr, "pk-bench-share: bad value '%s' for --%s (see --help)\n",
				optarg, longopts[c - O_TOTAL].name);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pk-bench-share: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (skip_pk_full)
		o->mech[MECH_PK_FULL] = false;
	o->guest_bytes = o->total_bytes / o->guests / PAGE * PAGE;
	if (o->guest_bytes < (8u << 20)) {
		fprintf(stderr, "pk-bench-share: --total / --guests is below 8 MiB per guest\n");
		return -EINVAL;
	}
	bool any = false;
	for (int m = 0; m < SHARE_MECHS; m++)
		any |= o->mech[m];
	if (!any) {
		fprintf(stderr, "pk-bench-share: no variant left to run\n");
		return -EINVAL;
	}
	return 0;
}
