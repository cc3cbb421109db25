/*
 * sys_guard.h - undo the system changes of a benchmark, whatever happens.
 *
 * What: a guardian process that remembers the host state the benchmark
 * changed (an active swap file, a child memory cgroup, a controller it
 * enabled in cgroup.subtree_control, KSM's settings, and its temp dir)
 * and undoes it when told to, or when the benchmark process dies for any
 * reason: normal exit, failure, SIGINT/SIGTERM, the watchdog's _exit,
 * even SIGKILL.  pk-bench-swap uses the swap file and cgroup duties,
 * pk-bench-share the KSM one.
 * How: forked first thing, without PR_SET_PDEATHSIG; it ignores the
 * terminal's signals and reads records from a pipe.  End of file on that
 * pipe means the benchmark is gone: it then removes the cgroup (retrying
 * while the dying child leaves it), restores subtree_control, runs
 * swapoff(2) and unlinks the swap file, restores KSM (run=2 to unmerge
 * every page, run=0, each recorded setting that now differs written
 * back, run last), and removes the temp dir tree.
 * "Release now" requests are answered on a second pipe, so the benchmark
 * can undo things in order on its normal path.
 * Why: cleanup.c knows only child pids and directories, the watchdog
 * leaves with _exit (past atexit), and nothing of ours runs on SIGKILL;
 * yet a swap file left active, or a cgroup left behind, would outlive the
 * benchmark on the host.
 */
#ifndef PK_BENCH_SYS_GUARD_H
#define PK_BENCH_SYS_GUARD_H

#include <stddef.h>

/* Fork the guardian.  0 or -errno. */
int guard_start(char *err, size_t err_len);

/* Records; each returns 0 or -errno (the guardian is gone). */
int guard_tmpdir(const char *path);	   /* removed recursively last */
int guard_swapfile(const char *path);	   /* swapoff + unlink */
int guard_cgroup(const char *path);	   /* rmdir */
int guard_subtree(const char *ctl_path);   /* write "-memory" to it */

/* Messages start with "NAME: cleanup:" (default pk-bench-swap). */
int guard_prog(const char *name);

/*
 * The value a /sys/kernel/mm/ksm file (name relative to that dir) had
 * before the benchmark changed anything, as ksm_ctl.h reads it; record
 * every writable file first, then change them.  At the end the guardian
 * unmerges (run=2), stops KSM (run=0), writes back every recorded value
 * that differs, and the recorded run value last.  At most 32 records.
 */
int guard_ksm_value(const char *name, const char *value);

/* swapoff the registered swap file now (it stays registered).  0 or -errno. */
int guard_swapoff(void);

/*
 * Undo now and wait for it: the swap file, the cgroup, everything.
 * Return 0, or the -errno of the first failing step (already reported
 * on stderr by the guardian).
 */
int guard_release_swapfile(void);
int guard_release_cgroup(void);
int guard_release_ksm(void);	/* the records are dropped once restored */
int guard_finish(void);

/* In a forked child that is not the guardian: drop our pipe ends. */
void guard_close_in_child(void);

#endif
