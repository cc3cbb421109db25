/*
 * guest_proc.h - run pk-guestsim lab guests from Check tests, and the
 * small helpers every test of a real daemon shares: status figures,
 * waits with build-scaled deadlines, RECLAIM requests.
 *
 * Guests are real processes (binary from $PK_GUESTSIM) with pipes on
 * stdin (closing it ends --hold) and stdout (JSON result, IDLE,
 * DISCARDED, HOLDING).  Failures are Check assertions.
 *
 * Deadlines: every wait here takes either an absolute deadline from
 * pk_test_deadline_ms() or a work_ms that it scales itself by
 * pk_test_time_scale() (daemon_fixture.h); the caller derives work_ms
 * from the work it waits for.  A timeout message names what was awaited.
 * Why one copy: the tests' own copies of these loops had drifted apart
 * (deadline or none, byte reads or stdio); one version keeps them alike.
 */
#ifndef PK_TEST_GUEST_PROC_H
#define PK_TEST_GUEST_PROC_H

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "tests/daemon_fixture.h"

struct guest {
	pid_t pid;
	int in_fd;  /* its stdin: closing it ends --hold */
	FILE *out;  /* its stdout: read only through guest_expect() */
	char name[32];
};

/* Start a guest on sock; extra is a NULL-terminated argument list. */
void guest_start(struct guest *g, const char *sock, const char *name,
		 const char *const extra[]);

/*
 * Read g's stdout until the line `want` (IDLE, DISCARDED, HOLDING) or,
 * with want NULL, until it closes its stdout (it exits).  The last JSON
 * line on the way goes to *result when result is given (NULL if none).
 * Fails at deadline (pk_test_now_ms() time, from pk_test_deadline_ms()),
 * naming `what` was awaited, or when the guest closes its stdout before
 * `want`.  One byte per read(): g->out's stdio buffer is never used, so
 * no line can hide in it.
 */
void guest_expect(struct guest *g, const char *want, json_object **result,
		  long deadline, const char *what);

/*
 * Close g's stdin (ends --hold) and reap it by work_ms (scaled): the
 * guest's run is over, so work_ms is what its exit takes (the tests give
 * their detach or base slack, 2 s).  On timeout it is SIGKILLed and
 * reaped, and the test fails naming it.  Returns its exit status, or
 * -signal if it was killed.
 */
int guest_finish(struct guest *g, long work_ms);

/* A numeric field of a JSON object (asserts it exists). */
double jnum(json_object *o, const char *key);
/* Parsed daemon status (asserts success). */
json_object *status_root(struct pk_test_daemon *d);
/* One number of a top-level status object ("swap", "sharing", "scan");
 * asserts the object and the key exist. */
double status_field(struct pk_test_daemon *d, const char *object,
		    const char *key);
/* A number at the status root, key or key.sub ("states_entered",
 * "soft"); -1 when it is null.  Asserts it exists. */
double status_num(struct pk_test_daemon *d, const char *key, const char *sub);
/* A string at the status root into out (asserts it exists). */
void status_str(struct pk_test_daemon *d, const char *key, char *out,
		size_t len);
/* One status figure of one VM; -1 when the VM is not registered. */
double vm_field(struct pk_test_daemon *d, const char *name, const char *key);
/* Several figures of one VM from one status snapshot, so that figures
 * which sum to a whole (resident + swapped) agree while guests run;
 * keys ends with NULL.  Asserts the VM is registered. */
void vm_fields(struct pk_test_daemon *d, const char *name,
	       const char *const *keys, double *out);
/* One string status field of one VM into out ("" when absent). */
void vm_string(struct pk_test_daemon *d, const char *name, const char *key,
	       char *out, size_t len);
/*
 * Poll (every 50 ms) until d lists VM name (present 1) or not (0), at
 * most timeout_ms (already scaled by the caller).  1 if it did, else 0:
 * callers assert either way (a VM that must not attach, too).
 */
int wait_vm_listed(struct pk_test_daemon *d, const char *name, int present,
		   int timeout_ms);

void sleep_ms(int ms);
/* work_ms times pk_test_time_scale(): a budget to wait or to print. */
int scaled_ms(double work_ms);
/* 1 if a line of the file at path contains text; 0 if none, or no file. */
int file_has(const char *path, const char *text);
/* The state letter of /proc/PID/stat (R, S, D, T...), or '?' if gone. */
char proc_state(pid_t pid);
/* SIGSTOP pid and wait until it is stopped (asserts); what names it. */
void pid_stop(pid_t pid, const char *what);
/* How many lines of the file at path contain text (0 if no file). */
int file_count(const char *path, const char *text);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int free_port(void);
/* pid's argv (/proc/PID/cmdline, NUL-separated) into buf, terminated by
 * one more NUL; its length, 0 if pid is gone. */
size_t proc_cmdline(pid_t pid, char *buf, size_t len);
/* 1 if one of pid's open files (/proc/PID/fd/N) has a target containing
 * needle, its /proc/PID/fd/N then into path (unless NULL); else 0 (none,
 * or no such process). */
int proc_fd_find(pid_t pid, const char *needle, char *path, size_t len);

/*
 * Poll cond every poll_ms until it holds.  After work_ms (times the
 * build's pk_test_time_scale()) fail with "timed out after S s waiting
 * for WHAT", WHAT formatted from the remaining arguments at that moment,
 * so it can show the figures it waited on.  (Its user includes <check.h>.)
 */
#define WAIT_FOR(cond, work_ms, poll_ms, ...)				\
	do {								\
		long wf_work_ = (long)(work_ms);			\
		long wf_end_ = pk_test_deadline_ms(wf_work_);		\
		char wf_what_[512];					\
		while (!(cond)) {					\
			if (pk_test_now_ms() > wf_end_) {		\
				snprintf(wf_what_, sizeof(wf_what_),	\
					 __VA_ARGS__);			\
				ck_abort_msg("timed out after %.1f s "	\
					     "waiting for %s",		\
					     wf_work_ *			\
					     pk_test_time_scale() / 1e3, \
					     wf_what_);			\
			}						\
			sleep_ms(poll_ms);				\
		}							\
	} while (0)

/*
 * RECLAIM deadlines: a reclaim evicts 15,000-80,000 pages/s of a quiet
 * guest here, about 7,000/s while writers race it (test_swap.c); the
 * floor is PK_TEST_EVICT_PAGES_PER_S, plus PK_TEST_RECLAIM_BASE_MS for
 * the request's round trip.
 */
#define PK_TEST_EVICT_PAGES_PER_S 1000
#define PK_TEST_RECLAIM_BASE_MS 2000

/* The work (ms, before scaling) of evicting bytes at the floor rate. */
long pk_test_reclaim_work_ms(uint64_t bytes);

/* Send RECLAIM of bytes of vm on a new connection, which is returned:
 * the reply comes on it when the eviction ends. */
int pk_test_reclaim_send(const char *sock, const char *vm, uint64_t bytes);

/*
 * The reply to a RECLAIM of vm on conn (closed here), awaited until
 * deadline (pk_test_deadline_ms() time).  Returns its status (0, or
 * -errno); an ERROR_REPLY leaves its reason in r->reason and zero
 * counters.
 */
int pk_test_reclaim_recv(int conn, const char *vm, struct pk_reclaim_reply *r,
			 long deadline);

/*
 * RECLAIM bytes of vm and wait for the reply by
 * pk_test_reclaim_work_ms(bytes), scaled.  Returns its status (0, or
 * -errno with the reason in r->reason when refused).
 */
int pk_test_reclaim(const char *sock, const char *vm, uint64_t bytes,
		    struct pk_reclaim_reply *r);

/*
 * Run argv (execvp) and wait for it: its stdout, and its stderr too with
 * both, into out (NUL-terminated, cut at len - 1; the rest is read and
 * dropped).  With uid >= 0 the child becomes that uid (and gid) first.
 * Returns the exit status, -1 when it did not exit (a signal).
 */
int pk_test_run_capture(char *const argv[], char *out, size_t len, int both,
			long uid);

#endif
