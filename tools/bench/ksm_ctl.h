/*
 * ksm_ctl.h - KSM's knobs and counters under /sys/kernel/mm/ksm, and ksmd.
 *
 * What: read every writable KSM setting (to hand the originals to the
 * guardian before anything changes, and to check they are back at the
 * end), write one setting, read the counters pk-bench-share measures
 * (pages_sharing, pages_scanned, full_scans, general_profit, ...), and
 * find ksmd's pid for its CPU time.
 * How: plain sysfs reads and writes; a value shown as a choice list
 * ("[none] scan-time") is reduced to the selected word, which is what
 * writing it back expects.  ksmd is found by comm in /proc.
 * Why: the KSM baselines change system-wide settings; they must be read
 * exactly, set explicitly for each variant (whatever the host had), and
 * put back (sys_guard.c does that even when we die).
 */
#ifndef PK_BENCH_KSM_CTL_H
#define PK_BENCH_KSM_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KSM_DIR "/sys/kernel/mm/ksm"
#define KSM_MAX_SETTINGS 32
#define KSM_NAME_MAX 64
#define KSM_VALUE_MAX 128

struct ksm_setting {
	char name[KSM_NAME_MAX];
	char value[KSM_VALUE_MAX];
};

/* Every writable file of KSM_DIR with its current value, sorted by name. */
struct ksm_settings {
	struct ksm_setting s[KSM_MAX_SETTINGS];
	unsigned n;
};

/* KSM_DIR exists and run is writable.  0 or -errno with a reason in err. */
int ksm_check(char *err, size_t err_len);

/* 0 or -errno. */
int ksm_read_settings(struct ksm_settings *out);

/*
 * Names (comma-separated, into diff) of settings of a whose value in b
 * differs or is missing; true when there are none.
 */
bool ksm_settings_equal(const struct ksm_settings *a, const struct ksm_settings *b,
			char *diff, size_t diff_len);

/* One setting, e.g. ("pages_to_scan", "100").  0 or -errno. */
int ksm_write(const char *name, const char *value);

/* One file's value, reduced as above, without the newline.  0 or -errno. */
int ksm_read(const char *name, char *buf, size_t len);

struct ksm_counters {
	uint64_t pages_sharing;	 /* mappings merged away: the pages saved */
	uint64_t pages_shared;	 /* KSM pages in use */
	uint64_t pages_unshared;
	uint64_t pages_volatile;
	uint64_t full_scans;
	uint64_t pages_scanned;	 /* cumulative; has_pages_scanned false: absent */
	int64_t general_profit;	 /* bytes: savings minus KSM's metadata; 0 absent */
	bool has_pages_scanned;
	bool has_general_profit;
};

/* 0 or -errno (a counter every kernel has is missing). */
int ksm_read_counters(struct ksm_counters *c);

/* ksmd's pid, or -ESRCH when no kernel thread is named ksmd. */
pid_t ksmd_pid(void);

#endif
