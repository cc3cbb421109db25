/*
 * main.c - pk-guestsim, the lab guest of pagekeeper.
 *
 * What: a process that behaves like a VM for pagekeeperd: it owns guest
 * RAM, hands it to the daemon, boots (fill), runs a workload and checks
 * that every byte is what it last wrote.  Tests and benchmarks run many of
 * them side by side instead of real VMs.
 *
 * How: the phases, in order, each ended early by SIGINT/SIGTERM:
 *   1. map RAM (madvise MADV_MERGEABLE with --mergeable, for KSM) and
 *      attach it to the daemon (unless --no-daemon), before any touch, so
 *      the daemon serves even the first fault;
 *   2. fill: every page gets its base content (fill.c);
 *   3. --idle-before: "IDLE" on stdout, then wait (SIGUSR1 ends it), so a
 *      test knows the fill is done and can act on quiet RAM;
 *   4. --discard: madvise a range away (ram.c), "DISCARDED" on stdout;
 *   5. workload for --duration seconds (worker.c);
 *   6. PK_GUESTSIM_CORRUPT_PAGE, a testing aid proving verify can fail;
 *   7. --verify: every page against its expected version (verify.c);
 *   8. report (report.c), then --hold: "HOLDING" and wait, so tests can
 *      query the daemon while the guest is alive (skipped when a signal
 *      already asked us to stop);
 *   9. detach and exit: 0 clean, 1 mismatch, 2 usage, 3 attach, 4 system,
 *      5 when --verify could not check every page (a signal during the
 *      fill or the verify): a caller that asked for a verify never takes
 *      a partial one for a pass.
 *
 * With --balloon the guest runs an operating system (guestos.c) whose
 * application (guestapp.c) does the fill, the workload and the verify
 * over its working set, and a balloon driver (labballoon.c) listens on its
 * socket before the attach registers it; the phases are the same.
 *
 * Why this order: a signal during the workload still gets the verify and
 * the report, which is what a test interrupting a long run wants; a signal
 * during the fill skips them, as half-filled RAM can't be verified.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/client/pagekeeper-client.h"
#include "clock.h"
#include "control.h"
#include "fill.h"
#include "guestapp.h"
#include "guestos.h"
#include "guestsim.h"
#include "labballoon.h"
#include "report.h"
#include "verify.h"
#include "worker.h"

#define CORRUPT_BYTE 100

static void note(const struct gs_ctx *ctx, const char *msg)
{
	if (!ctx->opts->quiet)
		fprintf(stderr, "pk-guestsim: %s\n", msg);
}

static unsigned sweep_threads(const struct gs_opts *o)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = o->writers + o->readers;

	/* As many as the workload will have, within the CPUs. */
	if (n < 1)
		n = 1;
	if (cpus > 0 && n > (unsigned long)cpus)
		n = (unsigned)cpus;
	return n;
}

/* A line for the process driving us (tests): whole, and at once. */
static void say(const char *line)
{
	fputs(line, stdout);
	fputc('\n', stdout);
	fflush(stdout);
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "pk-guestsim: %s: %s\n", what, strerror(-err));
	return GS_EXIT_SYSTEM;
}

/* Phases 2-5; a nonzero return is an exit status. */
static int run(struct gs_ctx *ctx, struct gs_results *res)
{
	const struct gs_opts *o = ctx->opts;
	int rc;

	rc = ctx->os ? gs_app_fill(ctx, &res->fill) : gs_fill(ctx, &res->fill);
	if (rc)
		return fail("fill", rc);
	if (!res->fill.complete) {
		res->signal = res->fill.signal;
		note(ctx, "fill interrupted: skipping workload and verify");
		return 0;
	}
	if (o->idle_before_s > 0) {
		sigset_t set = ctx->sigs;
		int sig;
		sigaddset(&set, SIGUSR1);
		note(ctx, "idle before the workload (SIGUSR1 starts it)");
		say("IDLE");
		sig = gs_control_sleep(&set, gs_now_ns() +
					       (uint64_t)(o->idle_before_s * 1e9));
		if (sig && sig != SIGUSR1) {
			res->signal = sig;
			note(ctx, "stopped by signal while idle: no workload");
			goto verify;
		}
	}
	if (o->discard) {
		rc = gs_ram_discard(&ctx->ram, o->discard_first,
				    o->discard_count);
		if (rc)
			return fail("--discard: madvise", rc);
		/* No worker runs yet: the order of these stores is free. */
		for (uint64_t p = o->discard_first;
		     p < o->discard_first + o->discard_count; p++)
			atomic_store(&ctx->discarded[p], 1);
		res->discarded = o->discard_count;
		say("DISCARDED");
	}
	res->workload_ran = o->workload != GS_WL_IDLE;
	rc = ctx->os ? gs_app_workload(ctx, &res->wl)
		     : gs_workload_run(ctx, &res->wl);
	if (rc)
		return fail("workload threads", rc);
	if (res->wl.signal) {
		res->signal = res->wl.signal;
		note(ctx, "workload stopped by signal");
	}
	if (o->corrupt && ctx->os) {
		rc = gs_os_corrupt(ctx->os, (uint32_t)o->corrupt_page,
				   CORRUPT_BYTE);
		if (rc)
			return fail("PK_GUESTSIM_CORRUPT_PAGE", rc);
		note(ctx, "PK_GUESTSIM_CORRUPT_PAGE: flipped one byte");
	} else if (o->corrupt) {
		gs_page_addr(ctx, o->corrupt_page)[CORRUPT_BYTE] ^= 0xff;
		note(ctx, "PK_GUESTSIM_CORRUPT_PAGE: flipped one byte");
	}
verify:
	if (o->verify) {
		res->verify_ran = true;
		rc = ctx->os ? gs_app_verify(ctx, &res->verify)
			     : gs_verify(ctx, &res->verify);
		if (rc)
			return fail("verify", rc);
		if (res->verify.signal)
			res->signal = res->verify.signal;
	}
	return 0;
}

/* Undo whatever of the setup was done, in reverse. */
static void teardown(struct gs_ctx *ctx, struct gs_results *res)
{
	if (ctx->lab)
		gs_lab_balloon_stop(ctx->lab);
	gs_ram_release(&ctx->ram);
	if (ctx->os)
		gs_os_destroy(ctx->os);
	free(ctx->seq);
	free(ctx->discarded);
	free(res);
}

/*
 * --balloon: the guest OS over mapped RAM, and its balloon driver
 * listening before the attach names its socket.  0 or an exit status.
 */
static int setup_os(struct gs_ctx *ctx, struct gs_opts *o,
		    struct gs_os *os, struct gs_lab_balloon *lab)
{
	char err[512];
	int rc;

	rc = gs_os_init(os, &ctx->ram, &ctx->content, o, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "pk-guestsim: guest OS: %s\n", err);
		return GS_EXIT_SYSTEM;
	}
	ctx->os = os;
	rc = gs_lab_balloon_listen(lab, os, o->balloon_socket, o->timeline_s,
				   err, sizeof(err));
	if (rc) {
		fprintf(stderr, "pk-guestsim: balloon driver: %s\n", err);
		return GS_EXIT_SYSTEM;
	}
	ctx->lab = lab;
	o->balloon_channel = lab->path;
	return 0;
}

int main(int argc, char **argv)
{
	struct gs_opts opts;
	struct gs_ctx ctx = { .opts = &opts };
	struct gs_os os;
	struct gs_lab_balloon lab;
	struct gs_results *res;
	uint64_t owned;
	char err[512];
	int rc, status;

	rc = gs_opts_parse(&opts, argc, argv);
	if (rc == GS_OPTS_HELP)
		return GS_EXIT_OK;
	if (rc)
		return GS_EXIT_USAGE;

	/* Before any fd is opened: a closed stdin would be reused by the
	 * memfd, and --hold would then "read" guest RAM. */
	ctx.stdin_open = fcntl(STDIN_FILENO, F_GETFD) >= 0;

	/* Before any thread exists, the client library's included. */
	gs_control_block_signals(&ctx.sigs);
	if (opts.idle_before_s > 0) {
		sigset_t usr1;
		sigemptyset(&usr1);
		sigaddset(&usr1, SIGUSR1); /* taken while idle (run()) */
		pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	}

	ctx.n_pages = opts.size / GS_PAGE_SIZE;
	/* The pages the application owns: what --verify must check. */
	owned = opts.balloon ? opts.working_set / GS_PAGE_SIZE : ctx.n_pages;
	ctx.sweep_threads = sweep_threads(&opts);
	gs_content_init(&ctx.content, opts.seed, opts.name, opts.zero_frac,
			opts.shared_frac);
	gs_hotmap_init(&ctx.hot, owned, opts.seed, opts.duration_s);
	ctx.seq = calloc(ctx.n_pages, sizeof(*ctx.seq));
	if (opts.discard)
		ctx.discarded = calloc(ctx.n_pages, sizeof(*ctx.discarded));
	res = calloc(1, sizeof(*res));
	if (!ctx.seq || !res || (opts.discard && !ctx.discarded)) {
		teardown(&ctx, res);
		return fail("allocating page versions", -ENOMEM);
	}

	rc = gs_ram_map(&ctx.ram, opts.size, opts.anon);
	if (rc) {
		teardown(&ctx, res);
		return fail("mapping guest RAM", rc);
	}
	if (opts.mergeable) {
		rc = gs_ram_mergeable(&ctx.ram);
		if (rc) {
			fprintf(stderr, "pk-guestsim: --mergeable: madvise("
				"MADV_MERGEABLE) on guest RAM failed: %s%s\n",
				strerror(-rc), rc == -EINVAL ? " (kernel without "
				"CONFIG_KSM?)" : "");
			teardown(&ctx, res);
			return GS_EXIT_SYSTEM;
		}
	}
	if (opts.balloon) {
		status = setup_os(&ctx, &opts, &os, &lab);
		if (status) {
			teardown(&ctx, res);
			return status;
		}
	}
	if (!opts.no_daemon) {
		rc = gs_ram_attach(&ctx.ram, &opts, err, sizeof(err));
		if (rc) {
			fprintf(stderr, "pk-guestsim: attach to %s failed: %s%s%s\n",
				opts.socket_path ? opts.socket_path
						 : PK_DEFAULT_SOCKET,
				strerror(-rc), err[0] ? ": " : "", err);
			teardown(&ctx, res);
			return GS_EXIT_ATTACH;
		}
		if (!opts.quiet)
			fprintf(stderr, "pk-guestsim: %s attached as vm id %u\n",
				opts.name, pk_client_vm_id(ctx.ram.client));
	}
	if (ctx.lab) {
		rc = gs_lab_balloon_start(ctx.lab);
		if (rc) {
			teardown(&ctx, res);
			return fail("starting the balloon driver", rc);
		}
		if (!opts.quiet)
			fprintf(stderr, "pk-guestsim: balloon driver on %s, "
				"page file %s\n", ctx.lab->path, os.pf_path);
	}

	status = run(&ctx, res);
	/* --grow: the application owns the pages it grew, no more; --live:
	 * those that hold data (its runtime released the rest). */
	if (ctx.os && (opts.grow_s > 0 || opts.live < 1)) {
		struct gs_os_counters c;

		gs_os_counters(ctx.os, &c);	/* the balloon may collect */
		owned = c.committed;
	}
	if (status == GS_EXIT_OK) {
		if (ctx.os)
			gs_os_sample(ctx.os, 0, true);
		if (opts.json)
			gs_report_json(stdout, &ctx, res);
		else
			gs_report_text(stdout, &ctx, res);
		status = gs_results_mismatches(res) ? GS_EXIT_MISMATCH
						    : GS_EXIT_OK;
		if (status == GS_EXIT_OK && opts.verify &&
		    res->verify.pages_verified < owned) {
			fprintf(stderr, "pk-guestsim: --verify checked %" PRIu64
				" of %" PRIu64 " pages: %s\n",
				res->verify.pages_verified, owned,
				res->verify_ran ? "a signal cut the verify short"
						: "a signal came before the fill "
						  "ended, so no verify ran");
			status = GS_EXIT_UNVERIFIED;
		}
	}
	if (opts.hold && !res->signal) {
		fputs("HOLDING\n", stdout);
		fflush(stdout);
		rc = gs_control_hold(&ctx.sigs, ctx.stdin_open);
		if (rc < 0)
			fprintf(stderr, "pk-guestsim: hold: %s\n",
				strerror(-rc));
	}
	fflush(stdout);
	teardown(&ctx, res);
	return status;
}
