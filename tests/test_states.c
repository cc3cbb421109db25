/*
 * test_states.c - the memory-state policy (engine/policy.h) deciding by
 * itself, end to end: a real pagekeeperd on a --budget, real lab guests
 * with their guest OS and balloon (pk-guestsim --balloon), nothing asked
 * by hand.
 *
 *  - esx_budget: three guests whose working sets (3 x 40 MiB) do not fit
 *    a 96 MiB budget.  The state leaves high; the policy balloons; it
 *    inflates a balloon before it evicts any page; it evicts nothing in
 *    high and, in soft, only for a short balloon; every page of every
 *    guest verifies and no guest is killed.
 *  - baselines: on the same guests, --policy swap-only never balloons and
 *    evicts; balloon-only (MoM's rules) balloons, never evicts, and its
 *    guests stay within the budget (they wait at its end); every page
 *    verifies.
 *  - low_stalls: no swap file and guests without a balloon, so nothing can
 *    be reclaimed: a guest that allocates past the budget is stalled (its
 *    faults parked near the low line, status stalled), free memory never
 *    runs out (every VM waits at half the low threshold), nobody is
 *    killed, and the guest
 *    resumes and finishes when the other guest ends.
 *  - idle_tax: an idle and a busy guest on a budget they overcommit: the
 *    sampled active memory (engine/active.c) of the idle one falls under
 *    25% and the busy one's stays over 75% within two 10 s periods, and
 *    the idle memory tax gives the idle one the smaller target.
 *  - swap_budget: with --swap-write-budget 4M/h the policy asks no more
 *    than 4 MiB of evictions however far the guests are over, logs it,
 *    and the stall holds the rest.
 *  - locked_short: a --locked 0.8 guest in the soft state (wide test
 *    thresholds): its balloon stops short, the policy marks it short and
 *    swaps the shortfall within the bounded time (policy.h
 *    PK_POLICY_SHORT_MS), in soft; the guest finishes its work and every
 *    page verifies.
 *
 * Waits are for status figures with deadlines from the work (MiB moved at
 * floor rates, the policy's 1 s tick), times pk_test_time_scale().
 */
#include <check.h>
#include <json-c/json.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#define BASE_MS 3000
/* A run of the guests' fixed work, with ballooning, paging and stalls:
 * generous, as only a hang should reach it. */
#define RUN_MS 90000

static const char *start(struct pk_test_daemon *d, const char *args)
{
	ck_assert_msg(pk_test_daemon_start(d, args) == 0, "%s", d->error);
	setenv("TMPDIR", d->dir, 1); /* guests' page files and sockets */
	return d->dir;
}

/* The guest's run ends: report, exit 0, every page verified. */
static void finish_ok(struct guest *g, double pages)
{
	json_object *res = NULL;

	guest_expect(g, NULL, &res, pk_test_deadline_ms(RUN_MS),
		     "workload, verify and report");
	ck_assert_msg(res, "guest %s printed no JSON report", g->name);
	ck_assert_int_eq(guest_finish(g, 2000), 0);
	ck_assert_msg(jnum(res, "mismatches") == 0, "guest %s: %.0f "
		      "mismatches", g->name, jnum(res, "mismatches"));
	ck_assert_msg(jnum(res, "pages_verified") == pages,
		      "guest %s: %.0f of %.0f pages verified", g->name,
		      jnum(res, "pages_verified"), pages);
	json_object_put(res);
}

START_TEST(esx_budget)
{
	struct pk_test_daemon d;
	struct guest g[3];
	const char *names[3] = { "sa", "sb", "sc" };
	const char *extra[] = { "--balloon", "--size", "48M", "--working-set",
				"40M", "--workload", "random", "--duration", "8",
				"--verify", "--json", "--quiet", NULL };
	double soft, short_mib, first_b, first_e, high_ev;

	start(&d, "--budget 96M --swap-size 256M");
	for (int i = 0; i < 3; i++)
		guest_start(&g[i], d.sock, names[i], extra);
	/* 120 MiB of working sets on 96 MiB: the state must leave high
	 * once the guests have filled (40 MiB each at >= 4 MiB/s); they
	 * run for 8 s, so the daemon's ticks see them however fast. */
	WAIT_FOR(status_num(&d, "state_transitions", NULL) >= 1, 10000 + BASE_MS,
		 100, "a memory state change (free %.1f%%)",
		 status_num(&d, "free_pct", NULL));
	WAIT_FOR(status_num(&d, "balloon_commands", NULL) >= 1, BASE_MS + 2000,
		 100, "the policy's first balloon target");
	for (int i = 0; i < 3; i++)
		finish_ok(&g[i], 10240);
	first_b = status_num(&d, "first_balloon_ms", NULL);
	first_e = status_num(&d, "first_evict_ms", NULL);
	high_ev = status_num(&d, "policy_evicted_mib", "high");
	soft = status_num(&d, "policy_evicted_mib", "soft");
	short_mib = status_num(&d, "policy_evicted_short_mib", NULL);
	printf("esx_budget: first balloon at %.0f ms, first eviction at %.0f "
	       "ms; evicted in soft %.1f MiB (short balloons %.1f MiB), hard "
	       "%.1f MiB, low %.1f MiB; states entered soft %.0f, hard %.0f, "
	       "low %.0f; reaction soft -> balloon %.0f ms, hard -> evict "
	       "%.0f ms (-1: none)\n", first_b, first_e, soft, short_mib,
	       status_num(&d, "policy_evicted_mib", "hard"),
	       status_num(&d, "policy_evicted_mib", "low"),
	       status_num(&d, "states_entered", "soft"),
	       status_num(&d, "states_entered", "hard"),
	       status_num(&d, "states_entered", "low"),
	       status_num(&d, "soft_reaction_ms", NULL),
	       status_num(&d, "hard_reaction_ms", NULL));
	ck_assert_msg(first_b >= 0, "the policy never ballooned");
	ck_assert_msg(first_e < 0 || first_b <= first_e,
		      "evicted at %.0f ms, before the first balloon target at "
		      "%.0f ms", first_e, first_b);
	ck_assert_msg(high_ev == 0, "%.1f MiB evicted in the high state",
		      high_ev);
	ck_assert_msg(soft == short_mib, "%.1f MiB evicted in soft, of which "
		      "only %.1f MiB for short balloons", soft, short_mib);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/*
 * The baselines on the same guests: swap-only never balloons, and
 * balloon-only (MoM's rules) never swaps; both keep the guests within
 * the budget (balloon-only's wait at its end: a budget is a machine with
 * no more memory); every page verifies.  *used_peak: the most the
 * daemon counted used (MiB), polled while the guests run.
 */
static void baseline(const char *policy, double *balloons, double *evicted,
		     double *stalled, double *used_peak)
{
	struct pk_test_daemon d;
	struct guest g[3];
	const char *names[3] = { "pa", "pb", "pc" };
	const char *extra[] = { "--balloon", "--size", "48M", "--working-set",
				"40M", "--workload", "random", "--duration", "8",
				"--verify", "--json", "--quiet", NULL };
	char args[128], shown[32];

	snprintf(args, sizeof(args), "--budget 96M --swap-size 256M --policy %s",
		 policy);
	start(&d, args);
	status_str(&d, "policy", shown, sizeof(shown));
	ck_assert_str_eq(shown, policy);
	for (int i = 0; i < 3; i++)
		guest_start(&g[i], d.sock, names[i], extra);
	*used_peak = 0;
	WAIT_FOR((*used_peak = fmax(*used_peak, status_num(&d, "used_mib", NULL)),
		  status_num(&d, "state_transitions", NULL) >= 1), 10000 + BASE_MS,
		 100, "a memory state change (free %.1f%%)",
		 status_num(&d, "free_pct", NULL));
	/* The guests run 8 s: 3 s of them, sampled. */
	for (long end = pk_test_now_ms() + 3000; pk_test_now_ms() < end;) {
		*used_peak = fmax(*used_peak, status_num(&d, "used_mib", NULL));
		usleep(100 * 1000);
	}
	*stalled = 0;
	for (int i = 0; i < 3; i++) {
		double ms = vm_field(&d, names[i], "stalled_ms");
		*stalled += ms > 0 ? ms : 0;
	}
	for (int i = 0; i < 3; i++)
		finish_ok(&g[i], 10240);
	*balloons = status_num(&d, "balloon_commands", NULL);
	*evicted = status_num(&d, "policy_evicted_mib", "soft") +
		   status_num(&d, "policy_evicted_mib", "hard") +
		   status_num(&d, "policy_evicted_mib", "low");
	printf("baseline %s: %.0f balloon targets, %.1f MiB evicted, %.0f ms "
	       "stalled, %.1f MiB used at most of 96 MiB\n", policy, *balloons,
	       *evicted, *stalled, *used_peak);
	pk_test_daemon_stop_ok(&d);
}

START_TEST(baselines)
{
	double balloons, evicted, stalled, used;

	baseline("swap-only", &balloons, &evicted, &stalled, &used);
	ck_assert_msg(balloons == 0, "swap-only sent %.0f balloon targets",
		      balloons);
	ck_assert_msg(evicted > 0, "swap-only evicted nothing");
	baseline("balloon-only", &balloons, &evicted, &stalled, &used);
	ck_assert_msg(balloons > 0, "balloon-only never ballooned");
	ck_assert_msg(evicted == 0, "balloon-only evicted %.1f MiB", evicted);
	/* The daemon's own memory and the faults of one tick count too:
	 * 10% of slack (without the floor line they used a third more). */
	ck_assert_msg(used <= 96 * 1.10, "balloon-only's guests used up to "
		      "%.1f MiB of a 96 MiB budget", used);
}
END_TEST

START_TEST(low_stalls)
{
	struct pk_test_daemon d;
	struct guest a, b;
	const char *hold[] = { "--size", "40M", "--workload", "idle", "--hold",
			       "--quiet", NULL };
	const char *grow[] = { "--size", "40M", "--workload", "random",
			       "--duration", "0.5", "--verify", "--json",
			       "--quiet", NULL };
	char state[16] = "";

	/* 64 MiB for two 40 MiB guests, no swap, no balloon: only a stall
	 * can keep the second from taking more than there is. */
	start(&d, "--budget 64M --swap-size 0");
	guest_start(&a, d.sock, "hold", hold);
	guest_expect(&a, "HOLDING", NULL, pk_test_deadline_ms(BASE_MS + 10000),
		     "fill of 40 MiB");
	guest_start(&b, d.sock, "grow", grow);
	WAIT_FOR(vm_field(&d, "grow", "stalled") == 1 &&
		 vm_field(&d, "grow", "faults_parked") > 0, BASE_MS + 10000,
		 100, "the second guest stalled (stalled %.0f, faults parked "
		 "%.0f, free %.1f%%)", vm_field(&d, "grow", "stalled"),
		 vm_field(&d, "grow", "faults_parked"),
		 status_num(&d, "free_pct", NULL));
	/* Parked at the fault near the low line, before the tick. */
	WAIT_FOR((status_str(&d, "state", state, sizeof(state)),
		  !strcmp(state, "hard") || !strcmp(state, "low")), BASE_MS,
		 100, "the hard or low state (state %s, free %.1f%%)", state,
		 status_num(&d, "free_pct", NULL));
	ck_assert_msg(status_num(&d, "free_pct", NULL) > 0.5,
		      "free memory %.2f%%: the stall let the guests take the "
		      "last of it", status_num(&d, "free_pct", NULL));
	ck_assert_msg(vm_field(&d, "grow", "stalled") == 1 &&
		      vm_field(&d, "grow", "stalled_ms") > 0,
		      "not stalled (stalled_ms %.0f)",
		      vm_field(&d, "grow", "stalled_ms"));
	ck_assert_msg(kill(b.pid, 0) == 0, "the stalled guest is gone");
	/* The other guest ends: its memory is free, the stall lifts. */
	ck_assert_int_eq(guest_finish(&a, 2000), 0);
	finish_ok(&b, 10240);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(locked_short)
{
	struct pk_test_daemon d;
	struct guest g;
	const char *extra[] = { "--balloon", "--size", "64M", "--working-set",
				"56M", "--locked", "0.8", "--workload",
				"random", "--ops", "300000", "--idle-before",
				"1000", "--verify", "--json", "--quiet", NULL };
	double in_soft;
	char state[16] = "";

	/* 56 MiB held of 100 (and the daemon's few): about 39% free, soft
	 * below 60% and hard below 10%: the target, 100 - 61% - the
	 * daemon's, is below the 45 MiB locked, so the balloon must stall;
	 * the excess is ballooned, and the locked guest's balloon stalls. */
	start(&d, "--budget 100M --swap-size 256M --state-thresholds 60,10,5,1");
	guest_start(&g, d.sock, "locked", extra);
	guest_expect(&g, "IDLE", NULL, pk_test_deadline_ms(BASE_MS + 15000),
		     "fill of 56 MiB");
	WAIT_FOR(vm_field(&d, "locked", "balloon_short") == 1,
		 BASE_MS + 10000 + 5000, 100,
		 "the locked guest's balloon marked short (balloon actual %.1f "
		 "MiB, target %.1f MiB)",
		 vm_field(&d, "locked", "balloon_actual_mib"),
		 vm_field(&d, "locked", "target_mib"));
	/* Its shortfall goes to swap in soft, within a tick or two. */
	WAIT_FOR(status_num(&d, "policy_evicted_short_mib", NULL) > 0 &&
		 vm_field(&d, "locked", "swapped_mib") > 0, BASE_MS + 2000, 100,
		 "the shortfall swapped (short evictions %.1f MiB, swapped %.1f "
		 "MiB)", status_num(&d, "policy_evicted_short_mib", NULL),
		 vm_field(&d, "locked", "swapped_mib"));
	status_str(&d, "state", state, sizeof(state));
	in_soft = status_num(&d, "policy_evicted_mib", "soft");
	ck_assert_msg(in_soft > 0, "nothing evicted in soft (state now %s)",
		      state);
	ck_assert_msg(in_soft == status_num(&d, "policy_evicted_short_mib", NULL),
		      "%.1f MiB evicted in soft, %.1f MiB of it for the short "
		      "balloon", in_soft,
		      status_num(&d, "policy_evicted_short_mib", NULL));
	ck_assert_int_eq(kill(g.pid, SIGUSR1), 0);
	finish_ok(&g, 14336);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(idle_tax)
{
	struct pk_test_daemon d;
	struct guest idle, busy;
	const char *hold[] = { "--size", "24M", "--workload", "idle", "--hold",
			       "--quiet", NULL };
	/* Busy for longer than two sampling periods and the first tick. */
	const char *run[] = { "--size", "24M", "--workload", "random",
			      "--duration", "30", "--verify", "--json",
			      "--quiet", NULL };
	double fi, fb, ti, tb;

	/* 2 x 24 MiB on 48 MiB: overcommitted, so the policy samples. */
	start(&d, "--budget 48M --swap-size 128M");
	guest_start(&idle, d.sock, "idle", hold);
	guest_expect(&idle, "HOLDING", NULL, pk_test_deadline_ms(BASE_MS),
		     "fill of 24 MiB");
	guest_start(&busy, d.sock, "busy", run);
	/* Two whole sampling periods of each (policy.h: 10 s). */
	WAIT_FOR(vm_field(&d, "idle", "sample_periods") >= 2 &&
		 vm_field(&d, "busy", "sample_periods") >= 2,
		 3 * 10000 + BASE_MS, 200, "two sampling periods (idle %.0f, "
		 "busy %.0f)", vm_field(&d, "idle", "sample_periods"),
		 vm_field(&d, "busy", "sample_periods"));
	fi = vm_field(&d, "idle", "active_mib");
	fb = vm_field(&d, "busy", "active_mib");
	ti = vm_field(&d, "idle", "target_mib");
	tb = vm_field(&d, "busy", "target_mib");
	printf("idle_tax: active idle %.1f MiB, busy %.1f MiB; targets idle "
	       "%.1f MiB, busy %.1f MiB; sampling CPU idle %.0f us, busy "
	       "%.0f us over %.0f and %.0f periods\n", fi, fb, ti, tb,
	       vm_field(&d, "idle", "sample_cpu_us"),
	       vm_field(&d, "busy", "sample_cpu_us"),
	       vm_field(&d, "idle", "sample_periods"),
	       vm_field(&d, "busy", "sample_periods"));
	ck_assert_msg(fi < 24 * 0.25, "the idle guest is %.1f MiB active", fi);
	ck_assert_msg(fb > 24 * 0.75, "the busy guest is %.1f MiB active", fb);
	ck_assert_msg(ti < tb, "the idle guest's target %.1f MiB is not below "
		      "the busy one's %.1f MiB", ti, tb);
	ck_assert_int_eq(guest_finish(&idle, 2000), 0);
	finish_ok(&busy, 6144);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(swap_budget)
{
	struct pk_test_daemon d;
	struct guest a, b;
	const char *hold[] = { "--size", "24M", "--workload", "idle", "--hold",
			       "--quiet", NULL };
	const char *grow[] = { "--size", "24M", "--workload", "random",
			       "--duration", "0.5", "--verify", "--json",
			       "--quiet", NULL };
	double asked, stalled0;

	/* 48 MiB of guests without balloons on 40 MiB, host swap capped at
	 * 4 MiB an hour: 4 MiB is swapped, the rest must wait. */
	start(&d, "--budget 40M --swap-size 128M --swap-write-budget 4M/h");
	ck_assert_msg(status_num(&d, "swap_write_budget_mib", NULL) == 4,
		      "budget shown %.1f MiB",
		      status_num(&d, "swap_write_budget_mib", NULL));
	guest_start(&a, d.sock, "hold", hold);
	guest_expect(&a, "HOLDING", NULL, pk_test_deadline_ms(BASE_MS),
		     "fill of 24 MiB");
	guest_start(&b, d.sock, "grow", grow);
	WAIT_FOR(status_num(&d, "swap_written_period_mib", NULL) >= 4 &&
		 vm_field(&d, "grow", "stalled") == 1, BASE_MS + 5000, 100,
		 "the budget spent and the guest stalled (asked %.1f MiB)",
		 status_num(&d, "swap_written_period_mib", NULL));
	/* Three more of the daemon's ticks (the stall's clock, not ours):
	 * nothing more is asked. */
	stalled0 = vm_field(&d, "grow", "stalled_ms");
	WAIT_FOR(vm_field(&d, "grow", "stalled_ms") >= stalled0 + 3000,
		 3000 + BASE_MS, 100, "3 s more of the stall (%.0f ms)",
		 vm_field(&d, "grow", "stalled_ms"));
	asked = status_num(&d, "swap_written_period_mib", NULL);
	ck_assert_msg(asked == 4, "%.2f MiB asked of a 4 MiB budget", asked);
	ck_assert_msg(file_has(d.log, "swap-write budget spent: 4 MiB"),
		      "no log line about the spent budget");
	ck_assert_int_eq(guest_finish(&a, 2000), 0);
	finish_ok(&b, 6144);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

static void add(Suite *s, const char *name, const TTest *t)
{
	TCase *tc = tcase_create(name);

	/* Backstop above every case's own deadlines. */
	tcase_set_timeout(tc, 150 * pk_test_time_scale());
	tcase_add_test(tc, t);
	suite_add_tcase(s, tc);
}

int main(void)
{
	Suite *s = suite_create("states");
	SRunner *sr;
	int failed;

	add(s, "esx_budget", esx_budget);
	add(s, "baselines", baselines);
	add(s, "low_stalls", low_stalls);
	add(s, "locked_short", locked_short);
	add(s, "idle_tax", idle_tax);
	add(s, "swap_budget", swap_budget);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
