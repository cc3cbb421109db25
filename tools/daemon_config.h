/*
 * daemon_config.h - pagekeeperd's settings: one table of keys, set from
 * the command line and from an INI file (pagekeeper.conf).
 *
 * What: every setting has one key, its long flag's name (--budget is
 * "budget" in [policy]); pk_dcfg_set() parses a value the same way
 * whether it came from a flag or from a file line, so the two can never
 * disagree.  The file (read with inih) has the sections [daemon],
 * [policy], [sharing], [share-domains] (one "VM = DOMAIN" line per
 * VM) and [vm NAME] (that VM's shares, min, max, balloon); the tests' flags (--test-*) and --foreground have no key.
 *
 * How: pagekeeperd reads the file first, then its flags over it, then
 * pk_dcfg_finish() checks what spans keys.  Each key keeps the text it
 * was set from (value[]), so a reload (SIGHUP) builds a new
 * configuration the same way and compares the texts: the keys marked
 * live are applied to the running daemon, the rest are logged as
 * needing a restart.
 *
 * Why a table: the file rules (unknown section, unknown key, duplicate
 * key, bad value) and the flags come from the same rows, and a new
 * option is one row.
 */
#ifndef PK_DAEMON_CONFIG_H
#define PK_DAEMON_CONFIG_H

#include <getopt.h>
#include <stddef.h>

#include "engine/engine.h"
#include "engine/policy.h"

/* pagekeeperd's exit codes. */
#define PK_EXIT_USAGE 2	      /* a bad flag */
#define PK_EXIT_CONFIG 3      /* the configuration file has an error */
#define PK_EXIT_CONFIG_READ 4 /* the configuration file cannot be read */

/* getopt_long vals of the table's flags: PK_DCFG_OPT_BASE + row. */
#define PK_DCFG_OPT_BASE 0x100
#define PK_DCFG_MAX_KEYS 40

struct pk_daemon_config {
	struct pk_engine_config cfg;
	struct pk_policy_config policy;
	struct pk_share_override overrides[PK_SHARE_OVERRIDES_MAX];
	struct pk_vm_setting vm_settings[PK_VM_SETTINGS_MAX]; /* [vm NAME] */
	unsigned n_vm_settings;
	int quiet;
	int max_rate_set;
	int share_from_flags;	/* flags' --share-domain replace the file's */
	char *value[PK_DCFG_MAX_KEYS]; /* each key's text; NULL: default */
	int file_line[PK_DCFG_MAX_KEYS]; /* line it was set on in the file */
};

/* The defaults (pagekeeperd --help). */
void pk_dcfg_init(struct pk_daemon_config *c);
void pk_dcfg_fini(struct pk_daemon_config *c);

/*
 * getopt_long rows for every key with a flag, at most max; returns how
 * many.  Their val is PK_DCFG_OPT_BASE + the key's row.
 */
size_t pk_dcfg_options(struct option *out, size_t max);

/*
 * The flag of getopt val (from pk_dcfg_options) with its argument (NULL
 * for a flag without one): 0, or -EINVAL and a message on stderr.
 */
int pk_dcfg_set_flag(struct pk_daemon_config *c, int val, const char *arg);

/*
 * Read an INI file over c.  0; -EINVAL when the file has an error
 * (err: "FILE:LINE: what, naming the key"); another negative errno when
 * it cannot be read (err says so).
 */
int pk_dcfg_read_file(struct pk_daemon_config *c, const char *path,
		      char *err, size_t errlen);

/* Checks across keys, defaults that depend on others: 0 or -EINVAL. */
int pk_dcfg_finish(struct pk_daemon_config *c, char *err, size_t errlen);

/*
 * A reload: the keys whose text differs between cur and next.  Live ones
 * (thresholds, idle tax, swap-write budget) are copied into cur, and
 * *policy_changed set; for the others log() is called with a line
 * saying that key needs a restart.  Returns the number of keys that
 * changed.
 */
unsigned pk_dcfg_apply_live(struct pk_daemon_config *cur,
			    const struct pk_daemon_config *next,
			    int *policy_changed,
			    void (*log)(void *arg, const char *line),
			    void *arg);

#endif
