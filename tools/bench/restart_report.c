/*
 * restart_report.c - print part D of pk-bench-swap (daemon restart).
 *
 * What: per variant the medians over rounds of the MiB swapped at the
 * stop, the times from the new daemon's exec to its first STATUS reply
 * and to the VM's adoption (and their difference, which the client's
 * 100 ms reconnect interval dominates), the times from waking the guest
 * to its first swap-in (and the pages in by then) and to the end of its
 * verify; the cold start of
 * the same daemon; the ratios restart / cold start and restart / no
 * restart.  No goal: the numbers are only reported.
 * How: called by swap_report.c; printf for text (every number with its
 * unit), json-c for the JSON (units in the key names).
 * Why: a separate file keeps swap_report.c small; same struct, so the
 * text and the JSON never disagree.
 */
#include "swap_results.h"
#include "timing.h"

#include <json-c/json.h>
#include <string.h>

#define RECONNECT_INTERVAL_MS 100 /* PK_RECONNECT_INTERVAL_MS, engine/client/client.c */

const char *restart_variant_name(int v)
{
	static const char *const n[RV_COUNT] = { "no restart", "SIGKILL + start",
						 "SIGTERM + start" };
	return v >= 0 && v < RV_COUNT ? n[v] : "?";
}

const char *restart_variant_key(int v)
{
	static const char *const n[RV_COUNT] = { "no_restart", "sigkill_start",
						 "sigterm_start" };
	return v >= 0 && v < RV_COUNT ? n[v] : "?";
}

static double med(const double *v, unsigned n)
{
	double tmp[SWAP_MAX_ROUNDS];

	memcpy(tmp, v, n * sizeof(double));
	return median_double(tmp, n);
}

/* Median of adopt - answer, per round. */
static double med_wait(const struct restart_result *x)
{
	double d[SWAP_MAX_ROUNDS];

	for (unsigned i = 0; i < x->rounds; i++)
		d[i] = x->adopt_ms[i] - x->answer_ms[i];
	return median_double(d, x->rounds);
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

void restart_report_text(const struct swap_results *r, FILE *out)
{
	const struct restart_result *x0 = &r->rs[RV_NONE];

	fprintf(out, "\nD. Daemon restart: a lab guest of %zu MiB (unique content, idle) "
		"RECLAIMed whole, then pagekeeperd (%s) stopped and a new one started on the "
		"same --state-dir and --run-dir; medians of %u round(s):\n",
		r->evict_bytes >> 20, r->restart_daemon_args, r->restart_rounds);
	fprintf(out, "  %-16s %14s %15s %12s %16s %14s %12s %10s\n", "variant",
		"swapped at stop", "STATUS answers", "VM adopted", "adopted-answers",
		"first swap-in", "(pages in)", "verify");
	for (int v = 0; v < RV_COUNT; v++) {
		const struct restart_result *x = &r->rs[v];
		fprintf(out, "  %-16s %10.0f MiB ", restart_variant_name(v),
			med(x->swapped_mib, x->rounds));
		if (v == RV_NONE)
			fprintf(out, "%15s %12s %16s", "-", "-", "-");
		else
			fprintf(out, "%12.1f ms %9.1f ms %13.1f ms", med(x->answer_ms, x->rounds),
				med(x->adopt_ms, x->rounds), med_wait(x));
		fprintf(out, " %11.2f ms %6.0f pages %7.0f ms\n",
			med(x->first_swapin_ms, x->rounds), med(x->first_swapins, x->rounds),
			med(x->verify_ms, x->rounds));
	}
	fprintf(out, "  STATUS answers, VM adopted: from the new daemon's fork/exec; first "
		"swap-in (the VM's swapins counter grew,\n  by (pages in)) and verify (the guest "
		"checked every page and exited 0): from SIGUSR1, the end of the guest's idle\n");
	fprintf(out, "  cold start of the same daemon (empty dirs): STATUS answered %.1f ms "
		"after exec\n", r->cold_answer_ms);
	fprintf(out, "  swapped once adopted:");
	for (int v = RV_KILL; v < RV_COUNT; v++)
		fprintf(out, "%s %.0f MiB (%s)", v == RV_KILL ? "" : ",",
			med(r->rs[v].adopted_mib, r->rs[v].rounds), restart_variant_name(v));
	fprintf(out, "\n  the guest's client reconnects every %d ms (PK_RECONNECT_INTERVAL_MS): "
		"adopted-answers is mostly that wait\n", RECONNECT_INTERVAL_MS);
	fprintf(out, "  STATUS polled every 0.2 ms, mean round trip %.2f ms: the first swap-in "
		"is resolved to about that\n", r->status_poll_ms);
	for (int v = RV_KILL; v < RV_COUNT; v++) {
		const struct restart_result *x = &r->rs[v];
		fprintf(out, "  %s: STATUS answers / cold start = %.2fx; first swap-in / no "
			"restart = %.2fx; verify / no restart = %.2fx\n", restart_variant_name(v),
			ratio(med(x->answer_ms, x->rounds), r->cold_answer_ms),
			ratio(med(x->first_swapin_ms, x->rounds),
			      med(x0->first_swapin_ms, x0->rounds)),
			ratio(med(x->verify_ms, x->rounds), med(x0->verify_ms, x0->rounds)));
	}
}

static json_object *jd(double v)
{
	return json_object_new_double(v);
}

static json_object *rounds(const double *v, unsigned n)
{
	json_object *a = json_object_new_array();

	for (unsigned i = 0; i < n; i++)
		json_object_array_add(a, jd(v[i]));
	return a;
}

json_object *restart_report_json(const struct swap_results *r)
{
	json_object *o = json_object_new_object();
	const struct restart_result *x0 = &r->rs[RV_NONE];

	json_object_object_add(o, "guest_bytes", json_object_new_int64((int64_t)r->evict_bytes));
	json_object_object_add(o, "rounds", json_object_new_int((int)r->restart_rounds));
	json_object_object_add(o, "daemon_args", json_object_new_string(r->restart_daemon_args));
	json_object_object_add(o, "guestsim", json_object_new_string(r->guestsim_path));
	json_object_object_add(o, "cold_start_status_answer_ms", jd(r->cold_answer_ms));
	json_object_object_add(o, "client_reconnect_interval_ms",
			       json_object_new_int(RECONNECT_INTERVAL_MS));
	json_object_object_add(o, "status_poll_round_trip_ms", jd(r->status_poll_ms));
	for (int v = 0; v < RV_COUNT; v++) {
		const struct restart_result *x = &r->rs[v];
		json_object *j = json_object_new_object();
		json_object_object_add(j, "round_swapped_at_stop_mib",
				       rounds(x->swapped_mib, x->rounds));
		if (v != RV_NONE) {
			json_object_object_add(j, "round_status_answer_ms",
					       rounds(x->answer_ms, x->rounds));
			json_object_object_add(j, "round_adopted_ms",
					       rounds(x->adopt_ms, x->rounds));
			json_object_object_add(j, "round_swapped_once_adopted_mib",
					       rounds(x->adopted_mib, x->rounds));
			json_object_object_add(j, "median_status_answer_ms",
					       jd(med(x->answer_ms, x->rounds)));
			json_object_object_add(j, "median_adopted_ms",
					       jd(med(x->adopt_ms, x->rounds)));
			json_object_object_add(j, "median_adopted_after_answer_ms",
					       jd(med_wait(x)));
			json_object_object_add(j, "ratio_status_answer_to_cold_start",
					       jd(ratio(med(x->answer_ms, x->rounds),
							r->cold_answer_ms)));
			json_object_object_add(j, "ratio_first_swapin_to_no_restart",
					       jd(ratio(med(x->first_swapin_ms, x->rounds),
							med(x0->first_swapin_ms, x0->rounds))));
			json_object_object_add(j, "ratio_verify_to_no_restart",
					       jd(ratio(med(x->verify_ms, x->rounds),
							med(x0->verify_ms, x0->rounds))));
		}
		json_object_object_add(j, "round_first_swapin_ms",
				       rounds(x->first_swapin_ms, x->rounds));
		json_object_object_add(j, "round_first_swapin_pages",
				       rounds(x->first_swapins, x->rounds));
		json_object_object_add(j, "round_verify_ms", rounds(x->verify_ms, x->rounds));
		json_object_object_add(j, "median_first_swapin_ms",
				       jd(med(x->first_swapin_ms, x->rounds)));
		json_object_object_add(j, "median_verify_ms", jd(med(x->verify_ms, x->rounds)));
		json_object_object_add(o, restart_variant_key(v), j);
	}
	return o;
}
