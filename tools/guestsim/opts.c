/*
 * opts.c - pk-guestsim's command line.
 *
 * What: parses and validates every option into struct gs_opts, and prints
 * the usage text.  The command line is a stable interface: tests, the
 * bench scripts and people drive the lab guest with it.
 *
 * How: getopt_long with long options only; every value is checked fully
 * (suffix, range, trailing junk) here, so later phases never see a bad
 * value.  A bad argument is named in one message followed by the usage,
 * and makes the process exit 2 - never 1, which means a content mismatch.
 *
 * Why here and not in main.c: one place to read what the interface is.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/client/pagekeeper-client.h"
#include "engine/protocol.h"
#include "guestos.h"
#include "opts.h"
#include "tools/common/size_parse.h"

#define MAX_THREADS 1024

static const char usage_text[] =
"Usage: pk-guestsim --size SIZE [options]\n"
"A lab guest: owns \"guest RAM\" with deterministic per-page content, runs a\n"
"workload on it and can verify every byte, with RAM served by pagekeeperd.\n"
"\n"
"  --socket PATH        pagekeeperd control socket (default " PK_DEFAULT_SOCKET ")\n"
"  --name NAME          VM name, unique per daemon, 1-63 bytes (default guestsim-PID)\n"
"  --size SIZE          guest RAM: bytes, or K/M/G suffix (x1024); multiple of 4096\n"
"  --anon               private anonymous RAM instead of a memfd\n"
"  --seed N             content and workload seed (default 1)\n"
"  --content zero=F,shared=F\n"
"                       fractions of all-zero pages and of pages shared by all\n"
"                       guests of one seed; each 0..1, sum <= 1, the rest are\n"
"                       unique to (seed, name) (default zero=0.1,shared=0.3)\n"
"  --workload KIND      idle|seq|random|zipf|phases (default random)\n"
"  --writers N          writer threads (default 1)\n"
"  --readers N          reader threads (default 1)\n"
"  --duration SECONDS   workload time, decimal (default 2; idle: 0)\n"
"  --idle-before SECONDS  stay idle after the fill for SECONDS, or until\n"
"                       SIGUSR1, before the workload (default 0); prints IDLE\n"
"                       on stdout when the fill is done and the idle starts\n"
"  --discard FIRST:COUNT  after the fill (and the idle), discard COUNT pages\n"
"                       from page FIRST: MADV_REMOVE on the memfd, MADV_DONTNEED\n"
"                       with --anon.  They must read as zeros until written\n"
"                       again, which readers and --verify check; prints\n"
"                       DISCARDED on stdout when madvise has returned\n"
"  --verify             check every page at the end; exit 1 on the first\n"
"                       mismatch, 5 when fewer pages than the guest owns were\n"
"                       checked (a signal during the fill or the verify)\n"
"  --share-domain NAME  share domain of this VM in pagekeeperd (default: none)\n"
"  --balloon-channel KIND:CHANNEL\n"
"                       only sets the balloon the registration names (the\n"
"                       daemon's balloon bridge then drives it); KIND is lab\n"
"                       (CHANNEL: a UNIX socket path), qmp (QMP socket path)\n"
"                       or libvirt (URI|domain, for example\n"
"                       libvirt:test:///default|test)\n"
"  --no-daemon          don't attach: plain kernel memory, for baselines\n"
"  --mergeable          madvise(MADV_MERGEABLE) guest RAM after mapping, so KSM\n"
"                       may merge it (KSM baselines); needs --no-daemon, as KSM\n"
"                       silently drops pagekeeperd's write protection. KSM\n"
"                       merges private anonymous RAM (--anon) only: on a memfd\n"
"                       the call succeeds but nothing is ever merged\n"
"  --hold               after the run print HOLDING on stdout, then wait for EOF\n"
"                       on stdin or SIGTERM/SIGINT before detaching\n"
"  --json               results as one JSON object on stdout (before HOLDING)\n"
"  --quiet              no progress or phase messages on stderr\n"
"  --help               this text\n"
"\n"
"Guest OS model (--balloon):\n"
"  --balloon            run a guest operating system: --size is the guest's\n"
"                       physical RAM; the application's heap (--working-set)\n"
"                       is paged by the guest itself, to its page file, and a\n"
"                       balloon driver serves the lab balloon protocol\n"
"                       (balloon-bridge/README.md) on --balloon-socket, which\n"
"                       the guest registers as balloon kind lab.  The OS keeps\n"
"                       the resident set within RAM - balloon - a kernel\n"
"                       reserve (2% of RAM, at least 1 MiB); the balloon leaves\n"
"                       the application at least 1/64 of RAM besides its\n"
"                       locked pages.  Needs --size >= 4M\n"
"  --balloon-socket PATH  where the balloon driver listens (default: a socket\n"
"                       in a temp directory under $TMPDIR, or /tmp when\n"
"                       $TMPDIR is too deep for a socket; removed at exit)\n"
"  --working-set SIZE   the application's heap, K/M/G (default --size); may\n"
"                       exceed RAM: the rest lives in the page file\n"
"  --page-file PATH     the guest's page file, created (truncated) and removed\n"
"                       at exit; written and read with O_DIRECT, so it must be\n"
"                       on a disk file system (default: a temp file under\n"
"                       $TMPDIR)\n"
"  --locked F           fraction 0..1 of the working set the guest never pages\n"
"                       out (Lock Pages in Memory): the balloon stalls short\n"
"                       of a target that would need them (default 0)\n"
"  --live F             fraction (0, 1] of the working set the application\n"
"                       keeps live (default 1).  Below 1 the heap is elastic,\n"
"                       like a garbage-collected runtime's: the application\n"
"                       allocates new page-sized objects (--churn) in place of\n"
"                       random live ones, which turn to garbage, and its\n"
"                       runtime collects the garbage, freeing the pages, when\n"
"                       the heap reaches --working-set or the OS runs out of\n"
"                       free frames (a balloon inflating makes it run out)\n"
"  --churn N            --live: objects allocated per op (default 0.25)\n"
"  --ops N              a fixed amount of work: N accesses, then stop; the run\n"
"                       time is the measure (--duration, if given, still caps\n"
"                       it).  The application is one thread; of every\n"
"                       writers+readers ops, --writers write a page and\n"
"                       --readers check one.  With --verify every page of the\n"
"                       working set is checked, in RAM or in the page file\n"
"  --grow SECONDS       the heap starts empty and grows linearly, by first\n"
"                       touches in address order, to --working-set (with\n"
"                       --live: to the live data) over\n"
"                       SECONDS of the guest's clock; accesses go to the part\n"
"                       grown so far, and the run lasts until --ops are done\n"
"                       and the heap is full (default 0: filled before the run)\n"
"  --timeline-interval SECONDS  --json timeline sample period (default 1)\n"
"  With --json the report adds run_s, page_ins, page_outs, page_file_reads,\n"
"  page_file_writes, balloon_mib, grow_s, balloon_stalled, shortfall_mib, and a\n"
"  timeline: page-ins/s, page-outs/s, ops/s, balloon, resident and heap MiB.\n"
"\n"
"Workloads (each op touches one page; writers write a new version, readers\n"
"verify): idle: no ops, sleeps --duration; seq: sweep in order; random:\n"
"uniform; zipf: Zipf(0.99), hot pages scattered over RAM; phases: zipf whose\n"
"hot set moves to other pages every duration/4. Writer i writes only pages\n"
"p with p % writers == i.\n"
"\n"
"Exit status: 0 ok, 1 content mismatch, 2 bad usage, 3 attach failed,\n"
"4 system error, 5 --verify checked only part of RAM, 130 second signal\n"
"while stopping.\n"
"Testing aid: PK_GUESTSIM_CORRUPT_PAGE=N in the environment flips byte 100 of\n"
"page N after the workload, before --verify (which must then exit 1).\n";

enum {
	OPT_SOCKET = 256, OPT_NAME, OPT_SIZE, OPT_ANON, OPT_SEED, OPT_CONTENT,
	OPT_WORKLOAD, OPT_WRITERS, OPT_READERS, OPT_DURATION, OPT_VERIFY,
	OPT_SHARE_DOMAIN, OPT_IDLE_BEFORE, OPT_DISCARD, OPT_NO_DAEMON,
	OPT_MERGEABLE, OPT_HOLD, OPT_BALLOON_CHANNEL,
	OPT_BALLOON, OPT_BALLOON_SOCKET, OPT_WORKING_SET, OPT_PAGE_FILE,
	OPT_LOCKED, OPT_OPS, OPT_TIMELINE, OPT_GROW, OPT_LIVE, OPT_CHURN,
	OPT_JSON, OPT_QUIET,
	OPT_HELP,
};

static const struct option long_opts[] = {
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "anon", no_argument, NULL, OPT_ANON },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "content", required_argument, NULL, OPT_CONTENT },
	{ "workload", required_argument, NULL, OPT_WORKLOAD },
	{ "writers", required_argument, NULL, OPT_WRITERS },
	{ "readers", required_argument, NULL, OPT_READERS },
	{ "duration", required_argument, NULL, OPT_DURATION },
	{ "idle-before", required_argument, NULL, OPT_IDLE_BEFORE },
	{ "discard", required_argument, NULL, OPT_DISCARD },
	{ "verify", no_argument, NULL, OPT_VERIFY },
	{ "share-domain", required_argument, NULL, OPT_SHARE_DOMAIN },
	{ "no-daemon", no_argument, NULL, OPT_NO_DAEMON },
	{ "mergeable", no_argument, NULL, OPT_MERGEABLE },
	{ "hold", no_argument, NULL, OPT_HOLD },
	{ "balloon-channel", required_argument, NULL, OPT_BALLOON_CHANNEL },
	{ "balloon", no_argument, NULL, OPT_BALLOON },
	{ "balloon-socket", required_argument, NULL, OPT_BALLOON_SOCKET },
	{ "working-set", required_argument, NULL, OPT_WORKING_SET },
	{ "page-file", required_argument, NULL, OPT_PAGE_FILE },
	{ "locked", required_argument, NULL, OPT_LOCKED },
	{ "live", required_argument, NULL, OPT_LIVE },
	{ "churn", required_argument, NULL, OPT_CHURN },
	{ "ops", required_argument, NULL, OPT_OPS },
	{ "timeline-interval", required_argument, NULL, OPT_TIMELINE },
	{ "grow", required_argument, NULL, OPT_GROW },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

__attribute__((format(printf, 1, 2)))
static int bad(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pk-guestsim: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n\n%s", usage_text);
	return GS_OPTS_BAD;
}

/* u64 in base (0: C prefixes), whole string; 0 or -1. */
static int parse_u64(const char *s, int base, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

/* NULL when fine, else why not: a guest RAM size is whole pages. */
static const char *parse_size(const char *s, uint64_t *out)
{
	const char *why = pk_size_parse(s, out);

	if (why)
		return why;
	if (*out == 0)
		return "must be positive";
	if (*out % 4096)
		return "not a multiple of 4096";
	if (*out > PK_PROTO_MAX_REGION_BYTES)
		return "too large (limit 4 TiB)";
	return NULL;
}

static int parse_double(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || errno || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

static int parse_threads(const char *s, unsigned *out)
{
	uint64_t v;

	if (parse_u64(s, 10, &v) || v > MAX_THREADS)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* "zero=F,shared=F", either part optional; the other keeps its value. */
static int parse_content(struct gs_opts *o, const char *arg)
{
	char buf[256], *save = NULL, *tok;

	if (strlen(arg) >= sizeof(buf))
		return bad("--content '%s': too long", arg);
	strcpy(buf, arg);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		double v;

		if (!eq)
			return bad("--content: '%s' is not KEY=FRACTION", tok);
		*eq = '\0';
		if (parse_double(eq + 1, &v) || v < 0 || v > 1)
			return bad("--content: %s=%s is not a fraction in 0..1",
				   tok, eq + 1);
		if (strcmp(tok, "zero") == 0)
			o->zero_frac = v;
		else if (strcmp(tok, "shared") == 0)
			o->shared_frac = v;
		else
			return bad("--content: unknown key '%s' (zero, shared)", tok);
	}
	if (o->zero_frac + o->shared_frac > 1 + 1e-9)
		return bad("--content '%s': zero + shared exceeds 1", arg);
	return GS_OPTS_RUN;
}

/* "FIRST:COUNT" in pages, COUNT >= 1; 0 or -1.  Checked against the
 * size once every option is read. */
static int parse_discard(struct gs_opts *o, const char *arg)
{
	char buf[64], *colon;

	if (strlen(arg) >= sizeof(buf))
		return -1;
	strcpy(buf, arg);
	colon = strchr(buf, ':');
	if (!colon)
		return -1;
	*colon = '\0';
	if (parse_u64(buf, 10, &o->discard_first) ||
	    parse_u64(colon + 1, 10, &o->discard_count) || !o->discard_count)
		return -1;
	o->discard = true;
	return 0;
}

/* "KIND:CHANNEL", KIND lab|qmp|libvirt, CHANNEL non-empty and short
 * enough for the registration; NULL when fine, else why not. */
static const char *parse_balloon_channel(struct gs_opts *o, const char *arg)
{
	static const struct {
		const char *name;
		int kind;
	} kinds[] = {
		{ "lab", PK_BALLOON_LAB },
		{ "qmp", PK_BALLOON_QMP },
		{ "libvirt", PK_BALLOON_LIBVIRT },
	};
	const char *colon = strchr(arg, ':');
	size_t i;

	if (!colon)
		return "not KIND:CHANNEL (KIND lab, qmp or libvirt)";
	if (!colon[1])
		return "empty CHANNEL";
	if (strlen(colon + 1) >= PK_PROTO_CHANNEL_MAX)
		return "CHANNEL too long (limit 255 bytes)";
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strlen(kinds[i].name) == (size_t)(colon - arg) &&
		    !strncmp(arg, kinds[i].name, (size_t)(colon - arg))) {
			o->balloon_kind = kinds[i].kind;
			o->balloon_channel = colon + 1;
			return NULL;
		}
	}
	return "unknown KIND (lab, qmp, libvirt)";
}

/* The guest OS model's options, once all are read. */
static int check_guest_os(struct gs_opts *o, bool duration_set)
{
	uint64_t frames = o->size / 4096, room, locked;

	if (o->balloon_kind)
		return bad("--balloon-channel and --balloon: the guest OS "
			   "registers its own lab balloon (--balloon-socket)");
	if (o->discard)
		return bad("--discard does not go with --balloon: the guest "
			   "OS's balloon discards its own frames");
	if (o->size < (4 << 20))
		return bad("--balloon needs --size >= 4M (kernel reserve 1 MiB "
			   "and room to page)");
	if (!o->working_set)
		o->working_set = o->size;
	if (o->working_set / 4096 >= UINT32_MAX - 2)
		return bad("--working-set: at most 16 TiB");
	room = frames - gs_os_reserve_frames(frames) -
	       gs_os_min_app_frames(frames);
	locked = (uint64_t)(o->locked * (double)(o->working_set / 4096));
	if (locked > room)
		return bad("--locked %g: %" PRIu64 " MiB of locked pages do not "
			   "fit in the %" PRIu64 " MiB of RAM left after the "
			   "kernel reserve and the application's minimum",
			   o->locked, locked >> 8, room >> 8);
	if (o->locked > o->live)
		return bad("--locked %g is more than --live %g: locked pages "
			   "are live data", o->locked, o->live);
	if (o->churn >= 0 && o->live >= 1)
		return bad("--churn needs --live below 1: with every page "
			   "live, a new object has nowhere to go");
	if (o->churn < 0)
		o->churn = o->live < 1 ? 0.25 : 0;
	if (o->ops && !duration_set)
		o->duration_s = 1e7;
	if (o->timeline_s <= 0)
		o->timeline_s = 1;
	o->balloon_kind = PK_BALLOON_LAB;
	return GS_OPTS_RUN;
}

static int parse_corrupt(struct gs_opts *o)
{
	const char *env = getenv("PK_GUESTSIM_CORRUPT_PAGE");
	uint64_t pages = (o->balloon ? o->working_set : o->size) / 4096;

	if (!env || !*env)
		return GS_OPTS_RUN;
	if (parse_u64(env, 10, &o->corrupt_page) ||
	    o->corrupt_page >= pages)
		return bad("PK_GUESTSIM_CORRUPT_PAGE=%s: not a page index "
			   "below the page count", env);
	o->corrupt = true;
	return GS_OPTS_RUN;
}

int gs_opts_parse(struct gs_opts *o, int argc, char **argv)
{
	bool duration_set = false, grow_set = false;
	const char *why;
	int c, rc;

	memset(o, 0, sizeof(*o));
	o->seed = 1;
	o->zero_frac = 0.1;
	o->shared_frac = 0.3;
	o->workload = GS_WL_RANDOM;
	o->writers = 1;
	o->readers = 1;
	o->live = 1;
	o->churn = -1;		/* 0.25 with --live below 1 */
	snprintf(o->default_name, sizeof(o->default_name), "guestsim-%ld",
		 (long)getpid());
	o->name = o->default_name;

	opterr = 0; /* our own messages, naming the argument */
	while ((c = getopt_long(argc, argv, ":", long_opts, NULL)) != -1) {
		const char *arg = optarg;

		switch (c) {
		case OPT_SOCKET:
			o->socket_path = arg;
			break;
		case OPT_NAME:
			if (!*arg || strlen(arg) >= PK_PROTO_NAME_MAX)
				return bad("--name '%s': must be 1-63 bytes", arg);
			o->name = arg;
			break;
		case OPT_SIZE:
			why = parse_size(arg, &o->size);
			if (why)
				return bad("--size '%s': %s", arg, why);
			break;
		case OPT_ANON:
			o->anon = true;
			break;
		case OPT_SEED:
			if (parse_u64(arg, 0, &o->seed))
				return bad("--seed '%s': not an unsigned "
					   "64-bit number", arg);
			break;
		case OPT_CONTENT:
			rc = parse_content(o, arg);
			if (rc)
				return rc;
			break;
		case OPT_WORKLOAD:
			if (gs_workload_parse(arg, &o->workload))
				return bad("--workload '%s': unknown workload "
					   "(idle, seq, random, zipf, phases)", arg);
			break;
		case OPT_WRITERS:
			if (parse_threads(arg, &o->writers))
				return bad("--writers '%s': not a number in "
					   "0..1024", arg);
			break;
		case OPT_READERS:
			if (parse_threads(arg, &o->readers))
				return bad("--readers '%s': not a number in "
					   "0..1024", arg);
			break;
		case OPT_DURATION:
			if (parse_double(arg, &o->duration_s) ||
			    o->duration_s < 0 || o->duration_s > 1e7)
				return bad("--duration '%s': not a number of "
					   "seconds >= 0", arg);
			duration_set = true;
			break;
		case OPT_IDLE_BEFORE:
			if (parse_double(arg, &o->idle_before_s) ||
			    o->idle_before_s < 0 || o->idle_before_s > 1e7)
				return bad("--idle-before '%s': not a number of "
					   "seconds >= 0", arg);
			break;
		case OPT_DISCARD:
			if (parse_discard(o, arg))
				return bad("--discard '%s': not FIRST:COUNT "
					   "(pages, COUNT >= 1)", arg);
			break;
		case OPT_VERIFY:
			o->verify = true;
			break;
		case OPT_SHARE_DOMAIN:
			o->share_domain = arg;
			break;
		case OPT_BALLOON_CHANNEL:
			why = parse_balloon_channel(o, arg);
			if (why)
				return bad("--balloon-channel '%s': %s", arg, why);
			break;
		case OPT_BALLOON:
			o->balloon = true;
			break;
		case OPT_BALLOON_SOCKET:
			if (!*arg)
				return bad("--balloon-socket: empty path");
			o->balloon_socket = arg;
			break;
		case OPT_WORKING_SET:
			why = parse_size(arg, &o->working_set);
			if (why)
				return bad("--working-set '%s': %s", arg, why);
			break;
		case OPT_PAGE_FILE:
			if (!*arg)
				return bad("--page-file: empty path");
			o->page_file = arg;
			break;
		case OPT_LOCKED:
			if (parse_double(arg, &o->locked) || o->locked < 0 ||
			    o->locked > 1)
				return bad("--locked '%s': not a fraction in 0..1",
					   arg);
			break;
		case OPT_OPS:
			if (parse_u64(arg, 10, &o->ops) || !o->ops)
				return bad("--ops '%s': not a number of "
					   "accesses >= 1", arg);
			break;
		case OPT_TIMELINE:
			if (parse_double(arg, &o->timeline_s) ||
			    o->timeline_s < 0.01 || o->timeline_s > 86400)
				return bad("--timeline-interval '%s': not a "
					   "number of seconds in 0.01..86400", arg);
			break;
		case OPT_LIVE:
			if (parse_double(arg, &o->live) || !(o->live > 0) ||
			    o->live > 1)
				return bad("--live '%s': not a fraction in "
					   "(0, 1]", arg);
			break;
		case OPT_CHURN:
			if (parse_double(arg, &o->churn) || !(o->churn >= 0) ||
			    o->churn > 64)
				return bad("--churn '%s': not a number of "
					   "objects per op in 0..64", arg);
			break;
		case OPT_GROW:
			if (parse_double(arg, &o->grow_s) || o->grow_s < 0 ||
			    o->grow_s > 1e7)
				return bad("--grow '%s': not a number of "
					   "seconds >= 0", arg);
			grow_set = true;
			break;
		case OPT_NO_DAEMON:
			o->no_daemon = true;
			break;
		case OPT_MERGEABLE:
			o->mergeable = true;
			break;
		case OPT_HOLD:
			o->hold = true;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_QUIET:
			o->quiet = true;
			break;
		case OPT_HELP:
			fputs(usage_text, stdout);
			return GS_OPTS_HELP;
		case ':':
			return bad("option '%s' needs a value", argv[optind - 1]);
		default:
			return bad("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad("unexpected argument '%s'", argv[optind]);
	if (!o->size)
		return bad("--size is required");
	if (o->writers > o->size / 4096)
		return bad("--writers: more writers than pages");
	if (o->discard && (o->discard_first >= o->size / 4096 ||
			   o->discard_count > o->size / 4096 - o->discard_first))
		return bad("--discard %" PRIu64 ":%" PRIu64 ": beyond the %" PRIu64
			   " pages of --size", o->discard_first, o->discard_count,
			   o->size / 4096);
	if (o->mergeable && !o->no_daemon)
		return bad("--mergeable needs --no-daemon: KSM must never merge "
			   "RAM that pagekeeperd write-protects");
	if (!duration_set)
		o->duration_s = o->workload == GS_WL_IDLE ? 0 : 2;
	if (o->balloon) {
		rc = check_guest_os(o, duration_set);
		if (rc)
			return rc;
	} else if (grow_set) {
		return bad("--grow needs --balloon: only the guest OS's "
			   "application has a heap that grows");
	} else if (o->balloon_socket || o->working_set || o->page_file ||
		   o->locked > 0 || o->ops || o->timeline_s > 0 ||
		   o->live < 1 || o->churn >= 0) {
		return bad("--balloon-socket, --working-set, --page-file, "
			   "--locked, --live, --churn, --ops and "
			   "--timeline-interval need --balloon");
	}
	return parse_corrupt(o);
}
