/*
 * scenario.c - read and check a lab scenario file (see scenario.h).
 *
 * The file: [scenario] (name, description, budget, policies, thresholds,
 * swap_size, limit, smaller, seed, sweep), [guests] (count, size, os, working_set,
 * grow, ops, locked, live, churn, workload, content, share_domain) and [short] (any of those keys again, for
 * --short).  Every key is checked where it is read; the first error is
 * kept as "[section] key = 'value': why" and inih gives its line.
 */
#include "scenario.h"

#include "engine/protocol.h"
#include "tools/common/size_parse.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const policy_names[LAB_POLICY_COUNT] = {
	[LAB_ESX] = "esx",
	[LAB_SWAP_ONLY] = "swap-only",
	[LAB_BALLOON_ONLY] = "balloon-only",
	[LAB_KERNEL] = "kernel",
	[LAB_ESX_COLD] = "esx-cold",
};

const char *lab_policy_name(enum lab_policy p)
{
	return (unsigned)p < LAB_POLICY_COUNT ? policy_names[p] : "?";
}

int lab_policy_parse(const char *s)
{
	for (int i = 0; i < LAB_POLICY_COUNT; i++)
		if (!strcmp(s, policy_names[i]))
			return i;
	return -1;
}

struct ctx {
	struct lab_scenario *s;
	bool short_pass;	/* apply [short] only; else skip it */
	FILE *f;
	int line;		/* lines read so far: the handler's line */
	int why_line;		/* the line of why */
	char why[512];		/* the first error a handler found */
};

/* inih's reader: fgets that counts lines, so a handler knows its line. */
static char *read_line(char *str, int num, void *stream)
{
	struct ctx *c = stream;
	char *r = fgets(str, num, c->f);

	if (r && (strchr(r, '\n') || feof(c->f)))
		c->line++;
	return r;
}

const char *lab_parse_frac(const char *v, double max, double *f)
{
	char *end;
	double x = strtod(v, &end);

	if (end == v)
		return "not a number";
	if (*end == '%') {
		x /= 100;
		end++;
	}
	if (*end)
		return "not a fraction (0.5 or 50%)";
	if (!(x > 0 && x <= max))
		return max > 1 ? "out of range" : "want a fraction in (0, 1] (0.5 or 50%)";
	*f = x;
	return NULL;
}

static const char *parse_double(const char *v, double lo, double hi, double *out)
{
	char *end;
	double x = strtod(v, &end);

	if (end == v || *end || !(x >= lo && x <= hi))
		return "not a number in range";
	*out = x;
	return NULL;
}

static const char *parse_u64(const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long x;

	if (!isdigit((unsigned char)*v))
		return "not an unsigned number";
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || *end || x < lo || x > hi)
		return "not an unsigned number in range";
	*out = x;
	return NULL;
}

static const char *parse_pages(const char *v, uint64_t *out)
{
	const char *why = pk_size_parse(v, out);

	if (!why && (*out == 0 || *out % 4096))
		why = "want a positive multiple of 4096 bytes (K/M/G suffix)";
	if (!why && *out > PK_PROTO_MAX_REGION_BYTES)
		why = "too large (limit 4 TiB)";
	return why;
}

/* A size or a fraction: "50%", "0.5" (fraction) or "256M" (size). */
static const char *parse_size_or_frac(const char *v, double max, double *frac,
				      uint64_t *bytes)
{
	size_t n = strlen(v);

	if (n && (v[n - 1] == '%' || strchr(v, '.'))) {
		*bytes = 0;
		return lab_parse_frac(v, max, frac);
	}
	*frac = 0;
	return parse_pages(v, bytes);
}

static const char *parse_policies(const char *v, struct lab_scenario *s)
{
	char buf[128], *save = NULL;

	if (strlen(v) >= sizeof(buf))
		return "too long";
	strcpy(buf, v);
	s->n_policies = 0;
	for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		int p = lab_policy_parse(t);
		if (p < 0)
			return "unknown policy (esx, esx-cold, swap-only, "
			       "balloon-only, kernel)";
		if (s->n_policies == LAB_MAX_POLICIES)
			return "more than 5 policies";
		for (unsigned i = 0; i < s->n_policies; i++)
			if (s->policies[i] == (enum lab_policy)p)
				return "a policy listed twice";
		s->policies[s->n_policies++] = (enum lab_policy)p;
	}
	return s->n_policies ? NULL : "empty list";
}

static const char *parse_thresholds(const char *v, char *out, size_t len)
{
	double x[4];
	int n = 0;
	const char *p = v;

	if (strlen(v) >= len)
		return "too long";
	for (; n < 4; n++) {
		char *end;
		x[n] = strtod(p, &end);
		if (end == p || !(x[n] >= 0 && x[n] <= 100))
			break;
		p = end;
		if (*p != ',')
			break;
		p++;
	}
	if (n != 3 || *p)
		return "want S,H,L,HYST: four percentages";
	if (!(x[0] > x[1] && x[1] > x[2]))
		return "want soft > hard > low";
	snprintf(out, len, "%s", v);
	return NULL;
}

/* A [scenario] key: NULL, a reason, or "" when not such a key. */
static const char *scenario_key(struct lab_scenario *s, const char *k, const char *v)
{
	if (!strcmp(k, "name")) {
		if (!*v || strlen(v) >= sizeof(s->name))
			return "want 1-63 characters";
		snprintf(s->name, sizeof(s->name), "%s", v);
		return NULL;
	}
	if (!strcmp(k, "description")) {
		snprintf(s->description, sizeof(s->description), "%s", v);
		return NULL;
	}
	if (!strcmp(k, "budget"))
		return parse_size_or_frac(v, 1.0, &s->budget_frac, &s->budget_bytes);
	if (!strcmp(k, "policies"))
		return parse_policies(v, s);
	if (!strcmp(k, "thresholds"))
		return parse_thresholds(v, s->thresholds, sizeof(s->thresholds));
	if (!strcmp(k, "swap_size"))
		return parse_pages(v, &s->swap_size);
	if (!strcmp(k, "limit"))
		return parse_double(v, 1, 86400, &s->limit_s);
	if (!strcmp(k, "smaller"))
		return parse_pages(v, &s->smaller);
	if (!strcmp(k, "seed"))
		return parse_u64(v, 0, UINT32_MAX, &s->seed);
	if (!strcmp(k, "sweep")) {	/* issue 16: identical-guests */
		unsigned a, b;
		int end = 0;
		if (sscanf(v, "%u-%u%n", &a, &b, &end) != 2 || v[end] || a < 1 || a > b ||
		    b > LAB_MAX_GUESTS)
			return "want A-B guests, 1 <= A <= B <= 16";
		s->sweep_from = a;
		s->sweep_to = b;
		return NULL;
	}
	return "";
}

static const char *guests_key(struct lab_guests *g, const char *k, const char *v)
{
	if (!strcmp(k, "count")) {
		uint64_t n;
		const char *why = parse_u64(v, 1, LAB_MAX_GUESTS, &n);
		g->count = (unsigned)n;
		return why ? "want 1..16 guests" : NULL;
	}
	if (!strcmp(k, "size")) {
		const char *why = parse_pages(v, &g->size);
		if (!why && g->size < (4u << 20))
			why = "want at least 4M (the guest OS's kernel reserve)";
		return why;
	}
	if (!strcmp(k, "os")) {
		if (!strcmp(v, "balloon"))
			g->balloon = true;
		else if (!strcmp(v, "none"))
			g->balloon = false;
		else
			return "want balloon (guest OS model with a balloon driver) or none";
		return NULL;
	}
	if (!strcmp(k, "working_set"))
		return parse_size_or_frac(v, 64.0, &g->ws_frac, &g->ws_bytes);
	if (!strcmp(k, "grow"))
		return parse_double(v, 0, 3600, &g->grow_s);
	if (!strcmp(k, "ops"))
		return parse_u64(v, 1, UINT64_C(1) << 40, &g->ops);
	if (!strcmp(k, "locked")) {
		if (parse_double(v, 0, 1, &g->locked))
			return "want a fraction 0..1 of the working set";
		return NULL;
	}
	if (!strcmp(k, "live")) {
		if (parse_double(v, 0, 1, &g->live) || !(g->live > 0))
			return "want a fraction (0, 1] of the working set";
		return NULL;
	}
	if (!strcmp(k, "churn"))
		return parse_double(v, 0, 64, &g->churn);
	if (!strcmp(k, "workload")) {
		static const char *const kinds[] = { "seq", "random", "zipf", "phases" };
		for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
			if (!strcmp(v, kinds[i])) {
				snprintf(g->workload, sizeof(g->workload), "%s", v);
				return NULL;
			}
		return "want seq, random, zipf or phases";
	}
	if (!strcmp(k, "content")) {	/* issue 16: identical-guests */
		double z, sh;
		int end = 0;
		if (sscanf(v, "zero=%lf,shared=%lf%n", &z, &sh, &end) != 2 || v[end] ||
		    !(z >= 0 && sh >= 0 && z + sh <= 1) || strlen(v) >= sizeof(g->content))
			return "want zero=F,shared=F, fractions with a sum <= 1";
		snprintf(g->content, sizeof(g->content), "%s", v);
		return NULL;
	}
	if (!strcmp(k, "share_domain")) {
		if (!*v || strlen(v) >= sizeof(g->share_domain) || strpbrk(v, " \t/"))
			return "want a name of 1-63 characters, no spaces or '/'";
		snprintf(g->share_domain, sizeof(g->share_domain), "%s", v);
		return NULL;
	}
	return "";
}

static int on_key(void *user, const char *section, const char *key, const char *value)
{
	struct ctx *c = user;
	const char *why;
	bool is_short = !strcmp(section, "short");

	if (c->short_pass != is_short)
		return 1;
	if (!strcmp(section, "scenario"))
		why = scenario_key(c->s, key, value);
	else if (!strcmp(section, "guests"))
		why = guests_key(&c->s->g, key, value);
	else if (is_short) {
		why = scenario_key(c->s, key, value);
		if (why && !*why)
			why = guests_key(&c->s->g, key, value);
	} else {
		if (!c->why[0]) {
			snprintf(c->why, sizeof(c->why), "unknown section [%s] (scenario, "
				 "guests, short)", section);
			c->why_line = c->line;
		}
		return 0;
	}
	if (why && !*why)
		why = is_short ? "unknown key" : !strcmp(section, "scenario")
			? "unknown key (name, description, budget, policies, thresholds, "
			  "swap_size, limit, smaller, seed, sweep)"
			: "unknown key (count, size, os, working_set, grow, ops, locked, "
			  "live, churn, workload, content, share_domain)";
	if (why) {
		if (!c->why[0]) {
			snprintf(c->why, sizeof(c->why), "[%s] %s = '%s': %s", section, key,
				 value, why);
			c->why_line = c->line;
		}
		return 0;
	}
	return 1;
}

static void defaults(struct lab_scenario *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "unnamed");
	s->g = (struct lab_guests){ .count = 4, .size = 128u << 20, .balloon = true,
				    .ws_frac = 0.9, .grow_s = 5, .ops = 500000,
				    .live = 1, .churn = -1, .workload = "random" };
	s->budget_frac = 0.5;
	s->policies[0] = LAB_ESX;
	s->n_policies = 1;
	s->swap_size = 1u << 30;
	s->limit_s = 600;
	s->seed = 1;
}

uint64_t lab_ws_bytes(const struct lab_scenario *s)
{
	if (s->g.ws_bytes)
		return s->g.ws_bytes;
	return ((uint64_t)((double)s->g.size * s->g.ws_frac)) & ~UINT64_C(4095);
}

uint64_t lab_budget_bytes(const struct lab_scenario *s)
{
	if (s->budget_bytes)
		return s->budget_bytes;
	return ((uint64_t)((double)(s->g.size * s->g.count) * s->budget_frac)) &
	       ~UINT64_C(4095);
}

/* What the keys cannot check alone. */
static const char *check_whole(const struct lab_scenario *s)
{
	uint64_t ws = lab_ws_bytes(s);

	if (ws < 4096)
		return "[guests] working_set: less than one page";
	if (!s->g.balloon && ws > s->g.size)
		return "[guests] working_set larger than size needs os = balloon (the "
		       "guest OS's page file)";
	if (!s->g.balloon && (s->g.locked > 0 || s->g.grow_s > 0 ||
			      s->g.live < 1 || s->g.churn >= 0))
		return "[guests] locked, live, churn and grow need os = balloon";
	if (s->g.locked > s->g.live)
		return "[guests] locked is more than live (locked pages are live data)";
	if (s->g.churn >= 0 && s->g.live >= 1)
		return "[guests] churn needs live below 1";
	if (s->smaller && (s->smaller >= s->g.size || s->smaller < (4u << 20)))
		return "[scenario] smaller: want at least 4M and less than [guests] size";
	if (lab_budget_bytes(s) < (1u << 20))
		return "[scenario] budget: less than 1 MiB";
	return NULL;
}

int lab_scenario_load(const char *path, struct lab_scenario *s,
		      struct lab_scenario *short_s, char *err, size_t err_len)
{
	struct ctx c = { .s = s };
	const char *why;
	int line;

	defaults(s);
	for (int pass = 0; pass < 2; pass++) {
		c.short_pass = pass == 1;
		if (pass == 1) {
			*short_s = *s;
			c.s = short_s;
		}
		if (!(c.f = fopen(path, "r"))) {
			snprintf(err, err_len, "%s: %s", path, strerror(errno));
			return -1;
		}
		c.line = 0; /* read_line counts line N before inih parses it */
		c.why[0] = '\0';
		line = ini_parse_stream(read_line, &c, on_key, &c);
		fclose(c.f);
		if (line < 0) {
			snprintf(err, err_len, "%s: out of memory", path);
			return -1;
		}
		if (line > 0) {
			/* inih's first error: ours, or a line it could not parse. */
			snprintf(err, err_len, "%s:%d: %s", path, line,
				 c.why[0] && c.why_line == line ? c.why
				 : "not KEY = VALUE nor [section]");
			return -1;
		}
		if ((why = check_whole(c.s))) {
			snprintf(err, err_len, "%s: %s%s", path, why,
				 pass ? " (with the [short] overrides)" : "");
			return -1;
		}
	}
	return 0;
}
