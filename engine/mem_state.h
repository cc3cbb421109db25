/*
 * mem_state.h - the four ESX memory states, high, soft, hard and low,
 * decided from free machine memory (%) and memory stall time (PSI).
 *
 * Pure: no I/O, no clock (the caller passes the time), no globals.
 * mem_state.c's top comment gives the rules and why.
 */
#ifndef PK_MEM_STATE_H
#define PK_MEM_STATE_H

#include <stddef.h>
#include <stdint.h>

enum pk_mem_state {
	PK_STATE_HIGH = 0, /* free >= soft_pct: sharing only */
	PK_STATE_SOFT,	   /* free < soft_pct: balloon */
	PK_STATE_HARD,	   /* free < hard_pct: balloon and swap */
	PK_STATE_LOW,	   /* free < low_pct: also stall */
	PK_NSTATES
};

struct pk_mem_thresholds {
	/* % of memory free: a state is entered when free drops below its
	 * threshold, and left upward at threshold + hyst_pct. */
	double soft_pct, hard_pct, low_pct, hyst_pct;
	/* Memory PSI "some avg10" (% of time some task stalled on memory)
	 * at or above which the state is at least soft ... */
	double psi_soft_pct;
	/* ... until it falls below this (PSI's own hysteresis). */
	double psi_release_pct;
	/* A state lasts at least this long before an upward move. */
	unsigned min_dwell_ms;
};

#define PK_MEM_SOFT_PCT_DEFAULT 6.0
#define PK_MEM_HARD_PCT_DEFAULT 4.0
#define PK_MEM_LOW_PCT_DEFAULT 2.0
#define PK_MEM_HYST_PCT_DEFAULT 1.0
#define PK_MEM_PSI_SOFT_PCT_DEFAULT 10.0
#define PK_MEM_PSI_RELEASE_PCT_DEFAULT 5.0
#define PK_MEM_MIN_DWELL_MS_DEFAULT 3000u

/* 6, 4, 2, 1 %; PSI 10 % (released below 5 %); dwell 3000 ms. */
void pk_mem_thresholds_default(struct pk_mem_thresholds *t);

/*
 * "SOFT,HARD,LOW,HYST" in % of memory, e.g. "6,4,2,1".  Sets only those
 * four fields of *t (start from pk_mem_thresholds_default), and only on
 * success.  -EINVAL with err (NUL-terminated, when errlen > 0) saying
 * what is wrong unless 100 > soft > hard > low > 0, 0 <= hyst,
 * hyst < soft - hard, hyst < hard - low and soft + hyst <= 100.
 */
int pk_mem_thresholds_parse(const char *s, struct pk_mem_thresholds *t,
			    char *err, size_t errlen);

struct pk_mem_states {
	struct pk_mem_thresholds th;
	enum pk_mem_state state;
	uint64_t entered_ms;	      /* when the current state began */
	uint64_t transitions;	      /* count of state changes */
	uint64_t entered[PK_NSTATES]; /* times each state was entered */
	uint64_t time_ms[PK_NSTATES]; /* time spent in each (every call) */
	uint64_t last_ms;	      /* time of the last call */
	int psi_hold;		      /* PSI holds the state at soft or worse */
};

/* Start in high at now_ms (entered[HIGH] = 1, no transition). */
void pk_mem_states_init(struct pk_mem_states *m,
			const struct pk_mem_thresholds *t, uint64_t now_ms);
/*
 * One reading: returns the new state; a change is a transition (the
 * caller logs it).  psi_some_avg10 < 0: unknown, ignored.  A NaN
 * free_pct changes nothing but the time accounting.
 */
enum pk_mem_state pk_mem_states_update(struct pk_mem_states *m,
				       double free_pct, double psi_some_avg10,
				       uint64_t now_ms);
/* "high" "soft" "hard" "low" ("?" out of range). */
const char *pk_mem_state_name(enum pk_mem_state s);

#endif
