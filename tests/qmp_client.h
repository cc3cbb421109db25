/*
 * qmp_client.h - a minimal QEMU Machine Protocol client for tests.
 *
 * Connects to QEMU's `-qmp unix:PATH,server=on,wait=off` socket, reads the
 * greeting, negotiates (qmp_capabilities) and runs one command at a time.
 * Asynchronous events (objects with "event") are skipped.  Every call
 * takes a timeout; nothing blocks for ever.  Errors return NULL or a
 * negative errno and leave a readable message in q->error.
 */
#ifndef PK_TEST_QMP_CLIENT_H
#define PK_TEST_QMP_CLIENT_H

#include <json-c/json.h>
#include <stddef.h>

struct qmp_client {
	int fd;		 /* -1 when closed */
	char *buf;	 /* bytes received, not yet parsed */
	size_t len, cap;
	unsigned long next_id;
	char error[512];
};

/*
 * Connect to path (retrying until the socket exists and accepts, up to
 * timeout_ms), read the greeting and run qmp_capabilities.
 */
int qmp_connect(struct qmp_client *q, const char *path, int timeout_ms);

/*
 * Run command with arguments (may be NULL; not consumed) and return
 * QEMU's reply object, {"return": ...} or {"error": ...}, to be freed
 * with json_object_put().  NULL on I/O error or timeout.
 */
json_object *qmp_execute(struct qmp_client *q, const char *command,
			 json_object *arguments, int timeout_ms);

/*
 * Like qmp_execute, but a reply of "error" is a failure too: returns a
 * new reference to the "return" member (NULL on any failure, with the
 * QMP error's class and description in q->error).
 */
json_object *qmp_return(struct qmp_client *q, const char *command,
			json_object *arguments, int timeout_ms);

void qmp_close(struct qmp_client *q);

#endif
