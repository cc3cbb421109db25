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

/*
 * Run command with arguments given as JSON text (args_json may be NULL)
 * and drop its result: 0, or a negative errno (-EPROTO for a QMP error,
 * -EINVAL for arguments that are not a JSON object) with q->error set.
 */
int qmp_command(struct qmp_client *q, const char *command,
		const char *args_json, int timeout_ms);

/*
 * The string member key of command's "return" object into out (e.g.
 * query-status "status", query-migrate "status").  -ENOENT, with out "",
 * when the reply has no such member (query-migrate before a migration).
 */
int qmp_query_string(struct qmp_client *q, const char *command,
		     const char *key, char *out, size_t len, int timeout_ms);

/* query-balloon's "actual" (the guest's size now) in bytes. */
int qmp_balloon_actual(struct qmp_client *q, long long *bytes, int timeout_ms);

#endif
