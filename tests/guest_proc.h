/*
 * guest_proc.h - run pk-guestsim lab guests from Check tests.
 *
 * Guests are real processes (binary from $PK_GUESTSIM) with pipes on
 * stdin (closing it ends --hold) and stdout (JSON result, HOLDING).
 * Failures are Check assertions.
 */
#ifndef PK_TEST_GUEST_PROC_H
#define PK_TEST_GUEST_PROC_H

#include <json-c/json.h>
#include <stdio.h>
#include <sys/types.h>

#include "tests/daemon_fixture.h"

struct guest {
	pid_t pid;
	int in_fd;  /* its stdin: closing it ends --hold */
	FILE *out;  /* its stdout */
	char name[32];
};

/* Start a guest on sock; extra is a NULL-terminated argument list. */
void guest_start(struct guest *g, const char *sock, const char *name,
		 const char *const extra[]);
/* Read stdout until HOLDING; *result gets its JSON line (or NULL). */
void guest_wait_holding(struct guest *g, json_object **result);
/* Read stdout to EOF; the last JSON line (or NULL). */
json_object *guest_read_result(struct guest *g);
/* Close stdin, reap; exit status, or -signal if it was killed. */
int guest_finish(struct guest *g);

/* A numeric field of a JSON object (asserts it exists). */
double jnum(json_object *o, const char *key);
/* Parsed daemon status (asserts success). */
json_object *status_root(struct pk_test_daemon *d);
/* One status figure of one VM; -1 when the VM is not registered. */
double vm_field(struct pk_test_daemon *d, const char *name, const char *key);
/* One string status field of one VM into out ("" when absent). */
void vm_string(struct pk_test_daemon *d, const char *name, const char *key,
	       char *out, size_t len);
void sleep_ms(int ms);
/*
 * RECLAIM bytes of vm; waits up to 60 s for the reply.  Returns its
 * status (0, or -errno with the reason in r->reason when refused).
 */
int pk_test_reclaim(const char *sock, const char *vm, uint64_t bytes,
		    struct pk_reclaim_reply *r);

#endif
