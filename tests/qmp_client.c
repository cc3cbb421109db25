/*
 * qmp_client.c - a minimal QMP client for tests (see qmp_client.h).
 *
 * QMP is one JSON object per line over a stream socket.  We keep the
 * bytes received in q->buf and cut it at newlines; every command carries
 * an "id", and the reply with that id is the answer (events, which have
 * no id, are skipped).
 */
#include "tests/qmp_client.h"
#include "tests/daemon_fixture.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void set_error(struct qmp_client *q, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q->error, sizeof(q->error), fmt, ap);
	va_end(ap);
}

/* Next complete line as a JSON object (NULL: timeout, EOF or error). */
static json_object *read_object(struct qmp_client *q, long deadline)
{
	for (;;) {
		char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - q->buf) + 1;
			json_object *o;
			*nl = '\0';
			o = json_tokener_parse(q->buf);
			memmove(q->buf, q->buf + n, q->len - n);
			q->len -= n;
			if (!o) {
				set_error(q, "QMP sent a line that is not JSON");
				return NULL;
			}
			return o;
		}
		if (q->cap - q->len < 4096) {
			size_t cap = q->cap ? q->cap * 2 : 16384;
			char *b = realloc(q->buf, cap);
			if (!b) {
				set_error(q, "out of memory");
				return NULL;
			}
			q->buf = b;
			q->cap = cap;
		}
		long left = deadline - pk_test_now_ms();
		struct pollfd p = { .fd = q->fd, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			set_error(q, "QMP: no reply in time");
			return NULL;
		}
		ssize_t r = read(q->fd, q->buf + q->len, q->cap - q->len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			set_error(q, "QMP: connection %s",
				  r ? strerror(errno) : "closed by QEMU");
			return NULL;
		}
		q->len += (size_t)r;
	}
}

static int write_all(struct qmp_client *q, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(q->fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			set_error(q, "QMP: write: %s", strerror(errno));
			return -errno;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

json_object *qmp_execute(struct qmp_client *q, const char *command,
			 json_object *arguments, int timeout_ms)
{
	long deadline = pk_test_now_ms() + timeout_ms;
	unsigned long id = ++q->next_id;
	json_object *req = json_object_new_object(), *o;
	const char *text;
	int rc;

	if (q->fd < 0) {
		set_error(q, "QMP: not connected");
		json_object_put(req);
		return NULL;
	}
	json_object_object_add(req, "execute", json_object_new_string(command));
	if (arguments)
		json_object_object_add(req, "arguments",
				       json_object_get(arguments));
	json_object_object_add(req, "id", json_object_new_int64((int64_t)id));
	text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	rc = write_all(q, text, strlen(text));
	if (!rc)
		rc = write_all(q, "\n", 1);
	json_object_put(req);
	if (rc)
		return NULL;
	while ((o = read_object(q, deadline))) {
		json_object *jid;
		if (json_object_object_get_ex(o, "id", &jid) &&
		    (unsigned long)json_object_get_int64(jid) == id &&
		    (json_object_object_get_ex(o, "return", NULL) ||
		     json_object_object_get_ex(o, "error", NULL)))
			return o;
		json_object_put(o); /* an event, or a stale reply */
	}
	return NULL;
}

json_object *qmp_return(struct qmp_client *q, const char *command,
			json_object *arguments, int timeout_ms)
{
	json_object *reply = qmp_execute(q, command, arguments, timeout_ms);
	json_object *ret, *err, *cls, *desc;

	if (!reply)
		return NULL;
	if (json_object_object_get_ex(reply, "error", &err)) {
		json_object_object_get_ex(err, "class", &cls);
		json_object_object_get_ex(err, "desc", &desc);
		set_error(q, "QMP %s failed: %s: %s", command,
			  cls ? json_object_get_string(cls) : "?",
			  desc ? json_object_get_string(desc) : "?");
		json_object_put(reply);
		return NULL;
	}
	json_object_object_get_ex(reply, "return", &ret);
	json_object_get(ret);
	json_object_put(reply);
	return ret;
}

int qmp_connect(struct qmp_client *q, const char *path, int timeout_ms)
{
	long deadline = pk_test_now_ms() + timeout_ms;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	json_object *o, *ret;

	memset(q, 0, sizeof(*q));
	q->fd = -1;
	if (strlen(path) >= sizeof(a.sun_path)) {
		set_error(q, "QMP socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(a.sun_path, path);
	for (;;) {
		q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (q->fd < 0) {
			set_error(q, "socket: %s", strerror(errno));
			return -errno;
		}
		if (connect(q->fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			break;
		int e = errno;
		close(q->fd);
		q->fd = -1;
		if (pk_test_now_ms() >= deadline) {
			set_error(q, "QMP: cannot connect to %s in %d ms: %s",
				  path, timeout_ms, strerror(e));
			return -e;
		}
		usleep(20000);
	}
	o = read_object(q, deadline);
	if (!o || !json_object_object_get_ex(o, "QMP", NULL)) {
		if (o)
			set_error(q, "QMP: greeting without \"QMP\": %s",
				  json_object_to_json_string(o));
		json_object_put(o);
		qmp_close(q);
		return -EPROTO;
	}
	json_object_put(o);
	ret = qmp_return(q, "qmp_capabilities", NULL,
			 (int)(deadline - pk_test_now_ms() > 1000 ?
			       deadline - pk_test_now_ms() : 1000));
	if (!ret) {
		qmp_close(q);
		return -EPROTO;
	}
	json_object_put(ret);
	return 0;
}

void qmp_close(struct qmp_client *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
	free(q->buf);
	q->buf = NULL;
	q->len = q->cap = 0;
}

int qmp_command(struct qmp_client *q, const char *command,
		const char *args_json, int timeout_ms)
{
	json_object *args = NULL, *ret;

	if (args_json) {
		args = json_tokener_parse(args_json);
		if (!args || !json_object_is_type(args, json_type_object)) {
			set_error(q, "QMP %s: arguments are not a JSON object: "
				  "%s", command, args_json);
			json_object_put(args);
			return -EINVAL;
		}
	}
	ret = qmp_return(q, command, args, timeout_ms);
	json_object_put(args);
	if (!ret && q->fd >= 0 && strstr(q->error, " failed: "))
		return -EPROTO;
	if (!ret)
		return -EIO;
	json_object_put(ret);
	return 0;
}

int qmp_query_string(struct qmp_client *q, const char *command,
		     const char *key, char *out, size_t len, int timeout_ms)
{
	json_object *ret = qmp_return(q, command, NULL, timeout_ms), *v;

	if (len)
		out[0] = '\0';
	if (!ret)
		return -EIO;
	if (!json_object_object_get_ex(ret, key, &v)) {
		set_error(q, "QMP %s: no \"%s\" in %s", command, key,
			  json_object_to_json_string(ret));
		json_object_put(ret);
		return -ENOENT;
	}
	snprintf(out, len, "%s", json_object_get_string(v));
	json_object_put(ret);
	return 0;
}

int qmp_balloon_actual(struct qmp_client *q, long long *bytes, int timeout_ms)
{
	json_object *ret = qmp_return(q, "query-balloon", NULL, timeout_ms), *v;

	if (!ret)
		return -EIO;
	if (!json_object_object_get_ex(ret, "actual", &v)) {
		set_error(q, "query-balloon without \"actual\": %s",
			  json_object_to_json_string(ret));
		json_object_put(ret);
		return -ENOENT;
	}
	*bytes = json_object_get_int64(v);
	json_object_put(ret);
	return 0;
}
