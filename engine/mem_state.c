/*
 * mem_state.c - the ESX memory states, moved by free memory and PSI.
 *
 * What: the host is in one of four states, by the free machine memory
 * (mem_source.h) as a % of the whole (the seed's table, defaults):
 *
 *   high   free >= 6 %     sharing only
 *   soft   free <  6 %     balloon
 *   hard   free <  4 %     balloon and swap random pages
 *   low    free <  2 %     also stall VMs above their target
 *
 * How, on every reading (pk_mem_states_update, the policy's 1 s tick):
 *
 *  - Down (toward low) at once: when free is below a threshold the state
 *    becomes the one that threshold names, skipping states if free fell
 *    far in one tick (10 % to 1 % is high -> low, one transition).  No
 *    dwell time applies: running out of memory does not wait.
 *  - Up (toward high) only when free is at least the current state's
 *    threshold plus the hysteresis (back to high at >= 7 %, to soft at
 *    >= 5 %, to hard at >= 3 %), the current state has lasted at least
 *    min_dwell_ms, and then ONE state per reading: low -> high takes
 *    three readings and three dwell times, as ESX steps back.
 *  - PSI: memory "some avg10" at or above psi_soft_pct holds the state
 *    at soft or worse until it falls below psi_release_pct.  Unknown PSI
 *    (< 0) holds nothing.
 *
 * Why: the thresholds come from ESX (seed 002, ARCHITECTURE.md section
 * 1).  Free memory measured from the host wobbles by a fraction of a %
 * from tick to tick (page cache, the daemon's own reclaim landing), so
 * a state with the same threshold both ways would flap and each flap
 * would start or stop ballooning and swapping: the hysteresis (must be
 * smaller than the gap between two thresholds, see the parser) makes a
 * +-0.5 % wobble around a threshold cost one transition, and the dwell
 * time bounds any other oscillation to one upward move per
 * min_dwell_ms.  Going up one state at a time gives the memory just
 * returned a chance to show whether it stays free before the policy
 * stops the next, gentler, action.  Going down is never delayed because
 * the cost of late reclaim is a guest OOM-killed or stalled.  PSI
 * catches what free memory misses: a cgroup near its limit with lots of
 * reclaimable cache looks free while tasks stall in reclaim; rising
 * stall time means the guests are short, so the policy balloons.  PSI
 * has its own release level because avg10 also hovers.
 *
 * Time accounting: time_ms[state] grows by the time since the previous
 * call, charged to the state held during it.
 */
#include "engine/mem_state.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pk_mem_thresholds_default(struct pk_mem_thresholds *t)
{
	t->soft_pct = PK_MEM_SOFT_PCT_DEFAULT;
	t->hard_pct = PK_MEM_HARD_PCT_DEFAULT;
	t->low_pct = PK_MEM_LOW_PCT_DEFAULT;
	t->hyst_pct = PK_MEM_HYST_PCT_DEFAULT;
	t->psi_soft_pct = PK_MEM_PSI_SOFT_PCT_DEFAULT;
	t->psi_release_pct = PK_MEM_PSI_RELEASE_PCT_DEFAULT;
	t->min_dwell_ms = PK_MEM_MIN_DWELL_MS_DEFAULT;
}

__attribute__((format(printf, 3, 4))) static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int pk_mem_thresholds_parse(const char *s, struct pk_mem_thresholds *t,
			    char *err, size_t errlen)
{
	static const char *const names[4] = { "soft", "hard", "low",
					      "hysteresis" };
	const char *p = s;
	double v[4];
	int n = 0;

	if (err && errlen)
		err[0] = '\0';
	if (!s || !*s)
		return fail(err, errlen,
			    "thresholds: empty; expected SOFT,HARD,LOW,HYST "
			    "in %% of memory, e.g. 6,4,2,1");
	for (;;) {
		char *end;

		if (n == 4)
			return fail(err, errlen,
				    "thresholds \"%s\": more than 4 values; "
				    "expected SOFT,HARD,LOW,HYST in %% of "
				    "memory, e.g. 6,4,2,1", s);
		errno = 0;
		v[n] = strtod(p, &end);
		while (*end == ' ' || *end == '\t')
			end++;
		if (end == p || errno || !isfinite(v[n]) ||
		    (*end != ',' && *end != '\0')) {
			size_t flen = strcspn(p, ",");
			return fail(err, errlen,
				    "thresholds \"%s\": %s \"%.*s\" is not a "
				    "number (%% of memory)", s, names[n],
				    (int)(flen > 32 ? 32 : flen), p);
		}
		n++;
		if (*end == '\0')
			break;
		p = end + 1;
	}
	if (n != 4)
		return fail(err, errlen,
			    "thresholds \"%s\": %d value%s, expected 4: "
			    "SOFT,HARD,LOW,HYST in %% of memory, e.g. 6,4,2,1",
			    s, n, n == 1 ? "" : "s");
	if (!(v[0] < 100.0))
		return fail(err, errlen,
			    "thresholds \"%s\": soft %g%% must be below 100%%",
			    s, v[0]);
	if (!(v[0] > v[1]))
		return fail(err, errlen,
			    "thresholds \"%s\": soft %g%% must be above hard "
			    "%g%%", s, v[0], v[1]);
	if (!(v[1] > v[2]))
		return fail(err, errlen,
			    "thresholds \"%s\": hard %g%% must be above low "
			    "%g%%", s, v[1], v[2]);
	if (!(v[2] > 0.0))
		return fail(err, errlen,
			    "thresholds \"%s\": low %g%% must be above 0%%", s,
			    v[2]);
	if (!(v[3] >= 0.0))
		return fail(err, errlen,
			    "thresholds \"%s\": hysteresis %g%% must not be "
			    "negative", s, v[3]);
	if (!(v[3] < v[0] - v[1]) || !(v[3] < v[1] - v[2]))
		return fail(err, errlen,
			    "thresholds \"%s\": hysteresis %g%% must be smaller "
			    "than the gaps soft-hard %g%% and hard-low %g%%",
			    s, v[3], v[0] - v[1], v[1] - v[2]);
	if (!(v[0] + v[3] <= 100.0))
		return fail(err, errlen,
			    "thresholds \"%s\": soft + hysteresis %g%% is above "
			    "100%%: high could never come back", s,
			    v[0] + v[3]);
	t->soft_pct = v[0];
	t->hard_pct = v[1];
	t->low_pct = v[2];
	t->hyst_pct = v[3];
	return 0;
}

const char *pk_mem_state_name(enum pk_mem_state s)
{
	switch (s) {
	case PK_STATE_HIGH: return "high";
	case PK_STATE_SOFT: return "soft";
	case PK_STATE_HARD: return "hard";
	case PK_STATE_LOW: return "low";
	default: return "?";
	}
}

void pk_mem_states_init(struct pk_mem_states *m,
			const struct pk_mem_thresholds *t, uint64_t now_ms)
{
	memset(m, 0, sizeof(*m));
	m->th = *t;
	m->state = PK_STATE_HIGH;
	m->entered_ms = now_ms;
	m->last_ms = now_ms;
	m->entered[PK_STATE_HIGH] = 1;
}

/* The threshold below which state s begins (s > HIGH). */
static double threshold_of(const struct pk_mem_thresholds *t,
			   enum pk_mem_state s)
{
	switch (s) {
	case PK_STATE_SOFT: return t->soft_pct;
	case PK_STATE_HARD: return t->hard_pct;
	default: return t->low_pct;
	}
}

/* The state free memory alone names, with no hysteresis. */
static enum pk_mem_state state_of(const struct pk_mem_thresholds *t,
				  double free_pct)
{
	if (free_pct < t->low_pct)
		return PK_STATE_LOW;
	if (free_pct < t->hard_pct)
		return PK_STATE_HARD;
	if (free_pct < t->soft_pct)
		return PK_STATE_SOFT;
	return PK_STATE_HIGH;
}

static void enter(struct pk_mem_states *m, enum pk_mem_state s,
		  uint64_t now_ms)
{
	m->state = s;
	m->entered_ms = now_ms;
	m->transitions++;
	m->entered[s]++;
}

enum pk_mem_state pk_mem_states_update(struct pk_mem_states *m,
				       double free_pct, double psi_some_avg10,
				       uint64_t now_ms)
{
	const struct pk_mem_thresholds *t = &m->th;
	enum pk_mem_state want;

	if (now_ms > m->last_ms)
		m->time_ms[m->state] += now_ms - m->last_ms;
	m->last_ms = now_ms > m->last_ms ? now_ms : m->last_ms;

	if (psi_some_avg10 < 0 || isnan(psi_some_avg10))
		m->psi_hold = 0;
	else if (psi_some_avg10 >= t->psi_soft_pct)
		m->psi_hold = 1;
	else if (psi_some_avg10 < t->psi_release_pct)
		m->psi_hold = 0;

	if (isnan(free_pct))
		return m->state;

	want = state_of(t, free_pct);
	if (m->psi_hold && want < PK_STATE_SOFT)
		want = PK_STATE_SOFT;

	if (want > m->state) {
		/* Down: at once, as far as free memory says. */
		enter(m, want, now_ms);
	} else if (m->state > PK_STATE_HIGH &&
		   free_pct >= threshold_of(t, m->state) + t->hyst_pct &&
		   !(m->psi_hold && m->state == PK_STATE_SOFT) &&
		   now_ms >= m->entered_ms &&
		   now_ms - m->entered_ms >= t->min_dwell_ms) {
		/* Up: one state, after the dwell time. */
		enter(m, m->state - 1, now_ms);
	}
	return m->state;
}
