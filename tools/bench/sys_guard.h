/*
 * sys_guard.h - undo the system changes of pk-bench-swap, whatever happens.
 *
 * What: a guardian process that remembers the host state the benchmark
 * changed (an active swap file, a child memory cgroup, a controller it
 * enabled in cgroup.subtree_control, and its temp dir) and undoes it
 * when told to, or when the benchmark process dies for any reason:
 * normal exit, failure, SIGINT/SIGTERM, the watchdog's _exit, even SIGKILL.
 * How: forked first thing, without PR_SET_PDEATHSIG; it ignores the
 * terminal's signals and reads records from a pipe.  End of file on that
 * pipe means the benchmark is gone: it then removes the cgroup (retrying
 * while the dying child leaves it), restores subtree_control, runs
 * swapoff(2) and unlinks the swap file, and removes the temp dir tree.
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

/* swapoff the registered swap file now (it stays registered).  0 or -errno. */
int guard_swapoff(void);

/*
 * Undo now and wait for it: the swap file, the cgroup, everything.
 * Return 0, or the -errno of the first failing step (already reported
 * on stderr by the guardian).
 */
int guard_release_swapfile(void);
int guard_release_cgroup(void);
int guard_finish(void);

/* In a forked child that is not the guardian: drop our pipe ends. */
void guard_close_in_child(void);

#endif
