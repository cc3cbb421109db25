/*
 * cleanup.h - kill our helper processes and remove our temp dirs, always.
 *
 * What: a registry of the child processes this benchmark started (the
 * floor handler, private pagekeeperds) and of their temporary
 * directories, torn down at exit, on SIGINT/SIGTERM/SIGHUP, and on demand.
 * How: atexit() plus signal handlers that run the same async-signal-safe
 * teardown: SIGTERM, up to 2 s of waitpid(WNOHANG) polling, SIGKILL; then
 * a getdents64/unlinkat walk of the directory.
 * Why: a benchmark that leaves a daemon or a socket behind poisons the
 * next run; pids are killed individually, never by name.
 */
#ifndef PK_BENCH_CLEANUP_H
#define PK_BENCH_CLEANUP_H

#include <stdbool.h>
#include <sys/types.h>

/* Install atexit + signal handlers (idempotent). */
void cleanup_install(void);

/*
 * Track a child.  grace_ms: how long to wait after SIGTERM before SIGKILL
 * (0: SIGKILL at once).  Returns 0, or -ENOSPC when the table is full.
 */
int cleanup_track_pid(pid_t pid, int grace_ms);

/* Stop and reap one tracked child now, with its grace; forget it. */
void cleanup_stop_pid(pid_t pid);

/* Forget a child that was reaped elsewhere. */
void cleanup_forget_pid(pid_t pid);

/*
 * Directory removed recursively at teardown (path copied; up to 4 at a
 * time).  Returns 0, -ENAMETOOLONG or -ENOSPC when the table is full.
 */
int cleanup_track_dir(const char *path);

/* Remove a tracked directory now and forget it (no-op if untracked). */
void cleanup_remove_dir(const char *path);

/* True while pid exists and has not exited; never reaps it. */
bool proc_alive(pid_t pid);

/* Full teardown (what atexit runs); safe to call more than once. */
void cleanup_all(void);

#endif
