/*
 * daemon_config.c - pagekeeperd's keys, from flags and from pagekeeper.conf.
 *
 * One row per key: its section in the file (NULL: a flag only), its name
 * (the long flag), whether a reload applies it live, and its setter.  A
 * setter parses the text with the project's parsers (pk_size_parse,
 * pk_mem_thresholds_parse, pk_policy_kind_parse, ...) and says what it
 * wants in why; the caller prefixes "--flag 'text'" or "FILE:LINE".
 *
 * The file is read with inih through ini_parse_stream() and our own line
 * reader, which counts lines, so every error names the line the handler
 * was called for (inih's own line numbers only reach its return value).
 * The first error is kept; inih goes on to the end, which is harmless.
 */
#include "tools/daemon_config.h"

#include "engine/client/pagekeeper-client.h"
#include "engine/protocol.h"
#include "engine/state.h"
#include "tools/common/size_parse.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int set_fn(struct pk_daemon_config *c, const char *v, char *why,
		   size_t n);

struct key {
	const char *section; /* NULL: no key in the file, a flag only */
	const char *name;    /* the key and the long flag */
	int has_arg;	     /* getopt: required_argument or no_argument */
	int live;	     /* a reload applies it to the running daemon */
	set_fn *set;
};

static int why_is(char *why, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int why_is(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* A whole decimal number in [lo, hi]. */
static int uint_in(const char *v, long lo, long hi, unsigned *out)
{
	char *end;
	long x;

	errno = 0;
	x = strtol(v, &end, 10);
	if (!*v || *end || errno || x < lo || x > hi)
		return -EINVAL;
	*out = (unsigned)x;
	return 0;
}

static int bool_parse(const char *v, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (unsigned i = 0; i < 4; i++) {
		if (strcmp(v, yes[i]) == 0)
			return *out = 1, 0;
		if (strcmp(v, no[i]) == 0)
			return *out = 0, 0;
	}
	return -EINVAL;
}

static int path_set(const char *v, const char **out, char *why, size_t n)
{
	if (!*v)
		return why_is(why, n, "want a path");
	*out = v;
	return 0;
}

static int set_socket(struct pk_daemon_config *c, const char *v, char *why,
		      size_t n)
{
	return path_set(v, &c->cfg.socket_path, why, n);
}

static int set_state_dir(struct pk_daemon_config *c, const char *v,
			 char *why, size_t n)
{
	return path_set(v, &c->cfg.state_dir, why, n);
}

static int set_run_dir(struct pk_daemon_config *c, const char *v, char *why,
		       size_t n)
{
	return path_set(v, &c->cfg.run_dir, why, n);
}

static int set_socket_group(struct pk_daemon_config *c, const char *v,
			    char *why, size_t n)
{
	if (!*v)
		return why_is(why, n, "want a group name");
	c->cfg.socket_group = v;
	return 0;
}

static int set_admin_group(struct pk_daemon_config *c, const char *v,
			   char *why, size_t n)
{
	if (!*v)
		return why_is(why, n, "want a group name");
	c->cfg.admin_group = v;
	return 0;
}

static int set_restart_grace(struct pk_daemon_config *c, const char *v,
			     char *why, size_t n)
{
	if (uint_in(v, 1, 86400, &c->cfg.restart_grace_s))
		return why_is(why, n, "want seconds, 1..86400");
	return 0;
}

static int set_name_reserve(struct pk_daemon_config *c, const char *v,
			    char *why, size_t n)
{
	if (uint_in(v, 0, 30 * 86400, &c->cfg.name_reserve_s))
		return why_is(why, n, "want seconds, 0..2592000");
	return 0;
}

static int set_volatile(struct pk_daemon_config *c, const char *v,
			char *why, size_t n)
{
	if (bool_parse(v, &c->cfg.volatile_state))
		return why_is(why, n, "want yes or no");
	return 0;
}

static int set_quiet(struct pk_daemon_config *c, const char *v, char *why,
		     size_t n)
{
	if (bool_parse(v, &c->quiet))
		return why_is(why, n, "want yes or no");
	return 0;
}

static int set_swap_size(struct pk_daemon_config *c, const char *v,
			 char *why, size_t n)
{
	uint64_t b;

	if (pk_size_parse(v, &b) || b % 4096)
		return why_is(why, n, "want a whole number of 4 KiB pages, "
			      "like 2G, or 0");
	c->cfg.swap_bytes = b;
	return 0;
}

static int set_swap_readahead(struct pk_daemon_config *c, const char *v,
			      char *why, size_t n)
{
	if (uint_in(v, 1, PK_SWAP_READAHEAD_LIMIT, &c->cfg.swap_readahead_max))
		return why_is(why, n, "want 1..%u pages (1: off)",
			      PK_SWAP_READAHEAD_LIMIT);
	return 0;
}

static int set_fault_around(struct pk_daemon_config *c, const char *v,
			    char *why, size_t n)
{
	if (uint_in(v, 1, PK_FAULT_AROUND_LIMIT, &c->cfg.fault_around_max))
		return why_is(why, n, "want 1..%u pages",
			      PK_FAULT_AROUND_LIMIT);
	return 0;
}

static int set_policy(struct pk_daemon_config *c, const char *v, char *why,
		      size_t n)
{
	if (pk_policy_kind_parse(v, &c->policy.kind))
		return why_is(why, n, "want esx, swap-only, balloon-only or "
			      "manual");
	return 0;
}

static int set_budget(struct pk_daemon_config *c, const char *v, char *why,
		      size_t n)
{
	const char *bad = pk_size_parse(v, &c->cfg.budget_bytes);

	if (bad)
		return why_is(why, n, "%s; want a size like 16G or 512M", bad);
	return 0;
}

static int set_cgroup(struct pk_daemon_config *c, const char *v, char *why,
		      size_t n)
{
	if (!*v)
		return why_is(why, n, "want a memory cgroup, like "
			      "machine.slice");
	c->policy.cgroup = v;
	return 0;
}

static int set_thresholds(struct pk_daemon_config *c, const char *v,
			  char *why, size_t n)
{
	return pk_mem_thresholds_parse(v, &c->policy.th, why, n) ? -EINVAL : 0;
}

static int set_idle_tax(struct pk_daemon_config *c, const char *v,
			char *why, size_t n)
{
	char *end;
	double x = strtod(v, &end);

	if (*end || end == v || !(x >= 0 && x < 1))
		return why_is(why, n, "want a rate, 0 <= TAU < 1");
	c->policy.tau = x;
	return 0;
}

static int set_victims(struct pk_daemon_config *c, const char *v,
		       char *why, size_t n)
{
	if (pk_victims_parse(v, &c->policy.victims))
		return why_is(why, n, "want random or cold");
	return 0;
}

/* "SIZE/PERIOD", PERIOD one of s, m, h, d (e.g. 550M/d). */
static int set_swap_write_budget(struct pk_daemon_config *c, const char *v,
				 char *why, size_t n)
{
	static const struct { char unit; uint64_t s; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
	};
	const char *slash = strchr(v, '/');
	char num[64];
	uint64_t b;

	if (slash && slash != v && (size_t)(slash - v) < sizeof(num) &&
	    strlen(slash + 1) == 1) {
		memcpy(num, v, (size_t)(slash - v));
		num[slash - v] = '\0';
		for (unsigned i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (slash[1] == units[i].unit &&
			    !pk_size_parse(num, &b) && b) {
				c->policy.swap_write_budget = b;
				c->policy.swap_write_period_s = units[i].s;
				return 0;
			}
	}
	return why_is(why, n, "want SIZE/PERIOD, PERIOD one of s, m, h, d, "
		      "like 550M/d");
}

static int set_scan_rate(struct pk_daemon_config *c, const char *v,
			 char *why, size_t n)
{
	if (pk_size_parse(v, &c->cfg.scan_bytes_per_s))
		return why_is(why, n, "want bytes per second like 400M, or 0");
	return 0;
}

static int set_scan_rate_max(struct pk_daemon_config *c, const char *v,
			     char *why, size_t n)
{
	if (pk_size_parse(v, &c->cfg.scan_bytes_per_s_max) ||
	    !c->cfg.scan_bytes_per_s_max)
		return why_is(why, n, "want bytes per second like 2G");
	c->max_rate_set = 1;
	return 0;
}

static int set_scan_cpu(struct pk_daemon_config *c, const char *v,
			char *why, size_t n)
{
	if (uint_in(v, 1, 100, &c->cfg.scan_cpu_percent))
		return why_is(why, n, "want 1..100 (percent of one core)");
	return 0;
}

static int set_stable_scans(struct pk_daemon_config *c, const char *v,
			    char *why, size_t n)
{
	if (uint_in(v, 0, PK_SHARE_STABLE_LIMIT, &c->cfg.share_stable_scans))
		return why_is(why, n, "want 0..%u scans",
			      PK_SHARE_STABLE_LIMIT);
	return 0;
}

/* VM=DOMAIN: both valid names, each VM at most once. */
static int add_share_domain(struct pk_daemon_config *c, const char *vm,
			    size_t vm_len, const char *dom, char *why,
			    size_t n)
{
	struct pk_share_override o;

	if (!vm_len || vm_len >= sizeof(o.vm) || strlen(dom) >= sizeof(o.domain))
		return why_is(why, n, "want VM=DOMAIN");
	memcpy(o.vm, vm, vm_len);
	o.vm[vm_len] = '\0';
	snprintf(o.domain, sizeof(o.domain), "%s", dom);
	if (!pk_proto_name_valid(o.vm) || !pk_proto_name_valid(o.domain))
		return why_is(why, n, "names are 1-63 of letters, digits, "
			      "'-', '_' and '.'");
	for (unsigned i = 0; i < c->cfg.n_share_overrides; i++)
		if (strcmp(c->overrides[i].vm, o.vm) == 0)
			return why_is(why, n, "VM '%s' given twice", o.vm);
	if (c->cfg.n_share_overrides == PK_SHARE_OVERRIDES_MAX)
		return why_is(why, n, "at most %u VMs", PK_SHARE_OVERRIDES_MAX);
	c->overrides[c->cfg.n_share_overrides++] = o;
	c->cfg.share_overrides = c->overrides;
	return 0;
}

static int set_share_domain(struct pk_daemon_config *c, const char *v,
			    char *why, size_t n)
{
	const char *eq = strchr(v, '=');

	if (!eq)
		return why_is(why, n, "want VM=DOMAIN");
	return add_share_domain(c, v, (size_t)(eq - v), eq + 1, why, n);
}

/*
 * Per-VM settings: [vm NAME] in the file (shares, min, max, balloon), or
 * --vm NAME:KEY=VALUE[,KEY=VALUE...].  One entry per VM name; a key
 * given again for the same VM is a duplicate.
 */
static int add_vm_setting(struct pk_daemon_config *c, const char *vm,
			  size_t vm_len, const char *key, const char *val,
			  char *why, size_t n)
{
	struct pk_vm_setting *s = NULL;
	uint64_t bytes;
	unsigned u;
	int on;

	if (!vm_len || vm_len >= sizeof(s->vm))
		return why_is(why, n, "want a VM name of 1-63 characters");
	for (unsigned i = 0; i < c->n_vm_settings; i++)
		if (strlen(c->vm_settings[i].vm) == vm_len &&
		    !memcmp(c->vm_settings[i].vm, vm, vm_len))
			s = &c->vm_settings[i];
	if (!s) {
		if (c->n_vm_settings == PK_VM_SETTINGS_MAX)
			return why_is(why, n, "at most %u VMs",
				      PK_VM_SETTINGS_MAX);
		s = &c->vm_settings[c->n_vm_settings];
		*s = (struct pk_vm_setting){ .shares = -1, .min_bytes = -1,
					     .max_bytes = -1, .no_balloon = -1 };
		memcpy(s->vm, vm, vm_len);
		s->vm[vm_len] = '\0';
		if (!pk_proto_name_valid(s->vm))
			return why_is(why, n, "VM names are 1-63 of letters, "
				      "digits, '-', '_' and '.'");
		c->n_vm_settings++;
	}
	if (!strcmp(key, "shares")) {
		if (s->shares >= 0)
			return why_is(why, n, "duplicate key");
		if (uint_in(val, 1, PK_PROTO_SHARES_MAX, &u))
			return why_is(why, n, "want shares 1..1000000");
		_Static_assert(PK_PROTO_SHARES_MAX == 1000000,
			       "the message names the limit");
		s->shares = u;
	} else if (!strcmp(key, "min") || !strcmp(key, "max")) {
		int64_t *to = key[1] == 'i' ? &s->min_bytes : &s->max_bytes;
		const char *bad = pk_size_parse(val, &bytes);

		if (*to >= 0)
			return why_is(why, n, "duplicate key");
		if (bad || bytes % 4096 || bytes > (uint64_t)INT64_MAX)
			return why_is(why, n, "%s; want a size like 512M, a "
				      "multiple of 4 KiB", bad ? bad : "not "
				      "page aligned");
		*to = (int64_t)bytes;
	} else if (!strcmp(key, "balloon")) {
		if (s->no_balloon >= 0)
			return why_is(why, n, "duplicate key");
		if (bool_parse(val, &on))
			return why_is(why, n, "want on or off");
		s->no_balloon = !on;
	} else {
		return why_is(why, n, "unknown key '%s' (shares, min, max, "
			      "balloon)", key);
	}
	if (s->min_bytes > 0 && s->max_bytes > 0 && s->min_bytes > s->max_bytes)
		return why_is(why, n, "min is above max");
	return 0;
}

/* --vm NAME:KEY=VALUE[,KEY=VALUE...] */
static int set_vm(struct pk_daemon_config *c, const char *v, char *why,
		  size_t n)
{
	const char *colon = strchr(v, ':'), *p;
	char item[128];

	if (!colon || !colon[1])
		return why_is(why, n, "want NAME:KEY=VALUE[,KEY=VALUE...] "
			      "(shares, min, max, balloon)");
	for (p = colon + 1; *p;) {
		size_t len = strcspn(p, ",");
		char *eq;
		int r;

		if (len >= sizeof(item))
			return why_is(why, n, "'%.40s...' is too long", p);
		memcpy(item, p, len);
		item[len] = '\0';
		eq = strchr(item, '=');
		if (!eq)
			return why_is(why, n, "want KEY=VALUE, not '%s'", item);
		*eq = '\0';
		r = add_vm_setting(c, v, (size_t)(colon - v), item, eq + 1,
				   why, n);
		if (r)
			return r;
		p += len + (p[len] == ',');
	}
	return 0;
}

static int set_swap_eio(struct pk_daemon_config *c, const char *v,
			char *why, size_t n)
{
	char kind[8];
	unsigned long long after, count;
	struct pk_swap_inject *in = &c->cfg.swap_inject;

	if (sscanf(v, "%7[a-z]:%llu:%llu", kind, &after, &count) != 3 ||
	    !count || (strcmp(kind, "write") && strcmp(kind, "read") &&
		       strcmp(kind, "any")))
		return why_is(why, n, "want write|read|any:AFTER:COUNT");
	in->writes = strcmp(kind, "read") != 0;
	in->reads = strcmp(kind, "write") != 0;
	in->after = after;
	in->count = count;
	return 0;
}

static int set_kill_on_remove(struct pk_daemon_config *c, const char *v,
			      char *why, size_t n)
{
	(void)v, (void)why, (void)n;
	c->cfg.test_kill_on_remove = 1;
	return 0;
}

/* "NAME:UID,...": sharing domains users may join as named. */
static int set_share_domain_allow(struct pk_daemon_config *c, const char *v,
				  char *why, size_t n)
{
	for (const char *p = v; *p;) {
		char name[PK_PROTO_NAME_MAX], *end;
		size_t len = strcspn(p, ":,");
		if (!len || len >= sizeof(name) || p[len] != ':')
			return why_is(why, n, "want DOMAIN:UID[,DOMAIN:UID...]");
		memcpy(name, p, len);
		name[len] = '\0';
		if (!pk_proto_name_valid(name))
			return why_is(why, n, "bad domain name '%s'", name);
		errno = 0;
		strtoul(p + len + 1, &end, 10);
		if (end == p + len + 1 || errno || (*end && *end != ','))
			return why_is(why, n, "want DOMAIN:UID[,DOMAIN:UID...]");
		p = *end ? end + 1 : end;
	}
	c->cfg.share_domain_allow = v;
	return 0;
}

/* Issue 18: where GET /metrics listens (engine/metrics.h). */
static int set_metrics_listen(struct pk_daemon_config *c, const char *v,
			      char *why, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (pk_metrics_parse_listen(v, &ss, &len, why, n) < 0)
		return -EINVAL;
	c->cfg.metrics_listen = v;
	return 0;
}

#define ARG required_argument
#define NOARG no_argument
static const struct key keys[] = {
	{ "daemon", "socket", ARG, 0, set_socket },
	{ "daemon", "socket-group", ARG, 0, set_socket_group },
	{ "daemon", "admin-group", ARG, 0, set_admin_group },
	{ "daemon", "state-dir", ARG, 0, set_state_dir },
	{ "daemon", "run-dir", ARG, 0, set_run_dir },
	{ "daemon", "restart-grace", ARG, 0, set_restart_grace },
	{ "daemon", "name-reserve", ARG, 0, set_name_reserve },
	{ "daemon", "volatile-state", NOARG, 0, set_volatile },
	{ "daemon", "swap-size", ARG, 0, set_swap_size },
	{ "daemon", "swap-readahead", ARG, 0, set_swap_readahead },
	{ "daemon", "fault-around", ARG, 0, set_fault_around },
	{ "daemon", "quiet", NOARG, 0, set_quiet },
	{ "policy", "policy", ARG, 0, set_policy },
	{ "policy", "budget", ARG, 0, set_budget },
	{ "policy", "cgroup", ARG, 0, set_cgroup },
	{ "policy", "state-thresholds", ARG, 1, set_thresholds },
	{ "policy", "idle-tax", ARG, 1, set_idle_tax },
	{ "policy", "victims", ARG, 1, set_victims },
	{ "policy", "swap-write-budget", ARG, 1, set_swap_write_budget },
	{ "sharing", "scan-rate", ARG, 0, set_scan_rate },
	{ "sharing", "scan-rate-max", ARG, 0, set_scan_rate_max },
	{ "sharing", "scan-cpu", ARG, 0, set_scan_cpu },
	{ "sharing", "share-stable-scans", ARG, 0, set_stable_scans },
	{ "sharing", "share-domain-allow", ARG, 0, set_share_domain_allow },
	/* Issue 18: [metrics] listen = ADDR:PORT | unix:PATH. */
	{ "metrics", "metrics-listen", ARG, 0, set_metrics_listen },
	/* The file has a [share-domains] section instead (read_handler). */
	{ NULL, "share-domain", ARG, 0, set_share_domain },
	/* The file has [vm NAME] sections instead (read_handler). */
	{ NULL, "vm", ARG, 1, set_vm },
	{ NULL, "test-swap-eio", ARG, 0, set_swap_eio },
	{ NULL, "test-kill-on-remove", NOARG, 0, set_kill_on_remove },
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

/* Issue 18: a flag named SECTION-KEY is KEY in [SECTION] of the file
 * (--metrics-listen is "listen" in [metrics]). */
static int file_key_is(const struct key *k, const char *name)
{
	size_t sl = strlen(k->section);

	return strncmp(k->name, k->section, sl) == 0 && k->name[sl] == '-' &&
	       strcmp(k->name + sl + 1, name) == 0;
}
#define SHARE_SECTION "share-domains"
_Static_assert(N_KEYS <= PK_DCFG_MAX_KEYS, "raise PK_DCFG_MAX_KEYS");

static unsigned row_of(const char *name)
{
	unsigned k = 0;

	while (k < N_KEYS && strcmp(keys[k].name, name))
		k++;
	return k;
}

/* The row of --share-domain, which the file spells [share-domains]. */
static unsigned share_row(void)
{
	return row_of("share-domain");
}

/* The row of --vm, which the file spells [vm NAME]. */
static unsigned vm_row(void)
{
	return row_of("vm");
}
#define VM_SECTION "vm "

void pk_dcfg_init(struct pk_daemon_config *c)
{
	memset(c, 0, sizeof(*c));
	c->cfg = (struct pk_engine_config){
		.socket_path = PK_DEFAULT_SOCKET,
		.state_dir = "/var/lib/pagekeeper",
		.restart_grace_s = PK_RESTART_GRACE_DEFAULT_S,
		.name_reserve_s = PK_NAME_RESERVE_DEFAULT_S,
		.fault_around_max = PK_FAULT_AROUND_DEFAULT,
		.swap_bytes = PK_SWAP_DEFAULT_BYTES,
		.swap_readahead_max = PK_SWAP_READAHEAD_DEFAULT,
		.scan_bytes_per_s = PK_SCAN_DEFAULT_BYTES_PER_S,
		.scan_bytes_per_s_max = PK_SCAN_DEFAULT_MAX_BYTES_PER_S,
		.share_stable_scans = PK_SHARE_STABLE_DEFAULT,
		.scan_cpu_percent = PK_SCAN_CPU_DEFAULT,
	};
	c->policy = (struct pk_policy_config){ .kind = PK_POLICY_ESX,
					       .tau = 0.75 };
	pk_mem_thresholds_default(&c->policy.th);
}

void pk_dcfg_fini(struct pk_daemon_config *c)
{
	for (unsigned k = 0; k < N_KEYS; k++)
		free(c->value[k]);
	memset(c, 0, sizeof(*c));
}

size_t pk_dcfg_options(struct option *out, size_t max)
{
	size_t n = 0;

	for (unsigned k = 0; k < N_KEYS && n < max; k++)
		out[n++] = (struct option){ keys[k].name, keys[k].has_arg, NULL,
					    PK_DCFG_OPT_BASE + (int)k };
	return n;
}

/* Keep text as key k's value (the setters keep pointers into it). */
static const char *keep(struct pk_daemon_config *c, unsigned k,
			const char *text)
{
	char *copy;

	if ((k == share_row() || k == vm_row()) && c->value[k]) {
		/* Repeatable: the value is every VM=DOMAIN (or every
		 * NAME:KEY=VALUE), one a word. */
		if (asprintf(&copy, "%s %s", c->value[k], text) < 0)
			return NULL;
		free(c->value[k]);
		c->value[k] = copy;
		return text;
	}
	copy = strdup(text);
	if (!copy)
		return NULL;
	free(c->value[k]);
	c->value[k] = copy;
	return copy;
}

int pk_dcfg_set_flag(struct pk_daemon_config *c, int val, const char *arg)
{
	unsigned k = (unsigned)(val - PK_DCFG_OPT_BASE);
	const char *v;
	char why[256];

	if (val < PK_DCFG_OPT_BASE || k >= N_KEYS)
		return -EINVAL;
	if (k == share_row() && !c->share_from_flags) {
		/* The flags' domains replace the file's, not add to them. */
		c->share_from_flags = 1;
		c->cfg.n_share_overrides = 0;
		c->cfg.share_overrides = NULL;
		free(c->value[k]);
		c->value[k] = NULL;
	}
	v = keep(c, k, arg ? arg : "yes");
	if (!v) {
		fprintf(stderr, "pagekeeperd: out of memory\n");
		return -ENOMEM;
	}
	c->file_line[k] = 0;
	if (keys[k].set(c, v, why, sizeof(why)) == 0)
		return 0;
	if (arg)
		fprintf(stderr, "pagekeeperd: bad --%s '%s': %s\n",
			keys[k].name, arg, why);
	else
		fprintf(stderr, "pagekeeperd: bad --%s: %s\n", keys[k].name,
			why);
	return -EINVAL;
}

struct reader {
	FILE *f;
	const char *path;
	struct pk_daemon_config *c;
	int line;	   /* the line the handler is called for */
	int error_line;	   /* the first error's, 0: none */
	int share_seen;	   /* [share-domains] replaced the defaults */
	char *err;
	size_t errlen;
};

static void fail(struct reader *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void fail(struct reader *r, const char *fmt, ...)
{
	char what[384];
	va_list ap;

	if (r->error_line)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	r->error_line = r->line;
	snprintf(r->err, r->errlen, "%s:%d: %s", r->path, r->line, what);
}

/* inih's reader: one whole line a call, counted. */
static char *read_line(char *str, int num, void *stream)
{
	struct reader *r = stream;
	int ch, len = 0, too_long = 0;

	if (feof(r->f))
		return NULL;
	while ((ch = fgetc(r->f)) != EOF && ch != '\n') {
		if (len < num - 1)
			str[len++] = (char)ch;
		else
			too_long = 1;
	}
	if (ch == EOF && len == 0 && !too_long)
		return NULL;
	str[len] = '\0';
	r->line++;
	if (too_long) {
		fail(r, "line longer than %d characters", num - 1);
		str[0] = '\0';
	}
	return str;
}

static int read_handler(void *user, const char *section, const char *name,
			const char *value)
{
	struct reader *r = user;
	struct pk_daemon_config *c = r->c;
	int known_section = strcmp(section, SHARE_SECTION) == 0;
	char why[256];
	unsigned k;

	if (!strncmp(section, VM_SECTION, strlen(VM_SECTION))) {
		/* [vm NAME]: that VM's shares, min, max, balloon. */
		const char *vm = section + strlen(VM_SECTION);
		char text[256];

		snprintf(text, sizeof(text), "%s:%s=%s", vm, name, value);
		if (!keep(c, vm_row(), text) ||
		    add_vm_setting(c, vm, strlen(vm), name, value, why,
				   sizeof(why))) {
			fail(r, "[%s] %s: bad value '%s': %s", section, name,
			     value, why);
			return 0;
		}
		return 1;
	}
	if (!*section) {
		fail(r, "key '%s' outside a section ([daemon], [policy], "
		     "[sharing], [metrics], [share-domains], [vm NAME])", name);
		return 0;
	}
	if (known_section) {
		/* One "VM = DOMAIN" a line; a VM twice is a duplicate key. */
		if (!r->share_seen) {
			r->share_seen = 1;
			c->cfg.n_share_overrides = 0;
			free(c->value[share_row()]);
			c->value[share_row()] = NULL;
		}
		char vm_dom[160];
		snprintf(vm_dom, sizeof(vm_dom), "%s=%s", name, value);
		if (!keep(c, share_row(), vm_dom) ||
		    add_share_domain(c, name, strlen(name), value, why,
				     sizeof(why))) {
			fail(r, "[%s] %s: bad value '%s': %s", section, name,
			     value, strstr(why, "twice") ? "duplicate key" : why);
			return 0;
		}
		return 1;
	}
	for (k = 0; k < N_KEYS; k++) {
		if (!keys[k].section || strcmp(keys[k].section, section))
			continue;
		known_section = 1;
		if (strcmp(keys[k].name, name) == 0 || file_key_is(&keys[k], name))
			break;
	}
	if (!known_section) {
		fail(r, "unknown section [%s] (key '%s'): want [daemon], "
		     "[policy], [sharing], [metrics], [share-domains] or "
		     "[vm NAME]", section, name);
		return 0;
	}
	if (k == N_KEYS) {
		fail(r, "unknown key '%s' in [%s]", name, section);
		return 0;
	}
	if (c->file_line[k]) {
		fail(r, "duplicate key [%s] %s (first on line %d)", section,
		     name, c->file_line[k]);
		return 0;
	}
	c->file_line[k] = r->line;
	const char *v = keep(c, k, value);
	if (!v || keys[k].set(c, v, why, sizeof(why))) {
		fail(r, "[%s] %s: bad value '%s': %s", section, name, value,
		     v ? why : "out of memory");
		return 0;
	}
	return 1;
}

int pk_dcfg_read_file(struct pk_daemon_config *c, const char *path,
		      char *err, size_t errlen)
{
	struct reader r = { .path = path, .c = c, .err = err,
			    .errlen = errlen };
	int ret, saved;

	r.f = fopen(path, "re");
	if (!r.f) {
		saved = errno;
		snprintf(err, errlen, "%s: cannot read: %s", path,
			 strerror(saved));
		return -saved;
	}
	ret = ini_parse_stream(read_line, &r, read_handler, &r);
	saved = ferror(r.f) ? EIO : 0;
	fclose(r.f);
	if (saved) {
		snprintf(err, errlen, "%s: cannot read: %s", path,
			 strerror(saved));
		return -saved;
	}
	if (r.error_line)
		return -EINVAL;
	if (ret > 0) { /* inih's own: a line neither [section] nor key=value */
		snprintf(err, errlen, "%s:%d: syntax error: want [section], "
			 "key = value or a # comment", path, ret);
		return -EINVAL;
	}
	if (ret < 0) {
		snprintf(err, errlen, "%s: cannot parse: out of memory", path);
		return -ENOMEM;
	}
	return 0;
}

int pk_dcfg_finish(struct pk_daemon_config *c, char *err, size_t errlen)
{
	if (c->cfg.scan_bytes_per_s_max < c->cfg.scan_bytes_per_s) {
		if (c->max_rate_set) {
			snprintf(err, errlen, "scan-rate-max (%llu MiB/s) is "
				 "below scan-rate (%llu MiB/s)",
				 (unsigned long long)(c->cfg.scan_bytes_per_s_max >> 20),
				 (unsigned long long)(c->cfg.scan_bytes_per_s >> 20));
			return -EINVAL;
		}
		c->cfg.scan_bytes_per_s_max = c->cfg.scan_bytes_per_s;
	}
	if (!c->policy.swap_write_period_s)
		c->policy.swap_write_period_s = 86400;
	c->policy.vm_settings = c->vm_settings;
	c->policy.n_vm_settings = c->n_vm_settings;
	c->cfg.policy = &c->policy;
	return 0;
}

static int same_text(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

unsigned pk_dcfg_apply_live(struct pk_daemon_config *cur,
			    const struct pk_daemon_config *next,
			    int *policy_changed,
			    void (*log)(void *arg, const char *line), void *arg)
{
	unsigned changed = 0;
	char line[512];

	*policy_changed = 0;
	for (unsigned k = 0; k < N_KEYS; k++) {
		const char *was = cur->value[k], *now = next->value[k];
		if (same_text(was, now))
			continue;
		changed++;
		if (!keys[k].live) {
			snprintf(line, sizeof(line), "reload: %s changed "
				 "('%s' -> '%s'): needs a restart, keeping "
				 "'%s'", keys[k].name, was ? was : "default",
				 now ? now : "default", was ? was : "default");
			log(arg, line);
			continue;
		}
		char *copy = now ? strdup(now) : NULL;
		if (now && !copy) {
			log(arg, "reload: out of memory");
			continue;
		}
		free(cur->value[k]);
		cur->value[k] = copy;
		*policy_changed = 1;
		snprintf(line, sizeof(line), "reload: %s is now '%s'",
			 keys[k].name, now ? now : "default");
		log(arg, line);
	}
	if (*policy_changed) {
		cur->policy.th = next->policy.th;
		cur->policy.tau = next->policy.tau;
		cur->policy.victims = next->policy.victims;
		cur->policy.swap_write_budget = next->policy.swap_write_budget;
		cur->policy.swap_write_period_s =
			next->policy.swap_write_period_s;
		memcpy(cur->vm_settings, next->vm_settings,
		       sizeof(cur->vm_settings));
		cur->n_vm_settings = next->n_vm_settings;
		cur->policy.vm_settings = cur->vm_settings;
		cur->policy.n_vm_settings = cur->n_vm_settings;
	}
	return changed;
}
