/*
 * proc_run.h - find and run the external tools pk-bench-swap needs.
 *
 * What: look a program up in PATH (plus /usr/sbin and /sbin, where
 * mkswap and swapon live), and run one to completion with its stdout
 * sent to a file or /dev/null, its stderr to ours.
 * How: fork + execv; the child gets PR_SET_PDEATHSIG(SIGKILL) and is
 * tracked by cleanup.c until reaped, so a ^C never leaves it running.
 * Why: mkswap, swapon and fio are separate programs; they must be
 * checked for up front and fail clearly, never be skipped.
 */
#ifndef PK_BENCH_PROC_RUN_H
#define PK_BENCH_PROC_RUN_H

#include <stddef.h>

/* Full path of name, or -ENOENT. */
int find_exe(const char *name, char *out, size_t len);

/*
 * Run argv (argv[0] a full path); stdout to out_path (NULL: /dev/null).
 * Returns the exit status (0..255), or -errno with a reason in err when
 * it could not run or died of a signal.
 */
int run_cmd(char *const argv[], const char *out_path, char *err, size_t err_len);

#endif
