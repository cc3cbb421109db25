/*
 * status_json.c - pagekeeperd's STATUS reply as a json-c object.
 *
 * What/how/why: see status_json.h.
 */
#include "status_json.h"
#include "engine/protocol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* One request and its reply in buf (PK_PROTO_MAX_MSG bytes); *len or -errno. */
static int request(const char *sock, int timeout_s, char *buf, size_t *len, char *err,
		   size_t err_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = timeout_s };
	struct pk_msg_header hdr;
	int e = 0;

	if (strlen(sock) >= sizeof(sa.sun_path)) {
		snprintf(err, err_len, "socket path too long: %s", sock);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, sock);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = -errno;
		snprintf(err, err_len, "connect %s: %s", sock, strerror(errno));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	pk_msg_header_init(&hdr, PK_MSG_STATUS, sizeof(hdr));
	if (send(fd, &hdr, sizeof(hdr), MSG_NOSIGNAL) != (ssize_t)sizeof(hdr)) {
		e = -errno;
		snprintf(err, err_len, "send STATUS: %s", strerror(errno));
		goto out;
	}
	ssize_t n = recv(fd, buf, PK_PROTO_MAX_MSG, 0);
	if (n <= 0) {
		e = n < 0 ? -errno : -ECONNRESET;
		snprintf(err, err_len, "no STATUS reply within %d s: %s", timeout_s,
			 strerror(-e));
		goto out;
	}
	*len = (size_t)n;
out:
	if (fd >= 0)
		close(fd);
	return e;
}

int status_fetch(const char *sock, int timeout_s, json_object **root, char *err,
		 size_t err_len)
{
	char *buf = malloc(PK_PROTO_MAX_MSG);
	size_t len = 0;
	uint16_t type;
	int r;

	*root = NULL;
	if (!buf) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	if ((r = request(sock, timeout_s, buf, &len, err, err_len)) < 0)
		goto out;
	if (pk_msg_check_header(buf, len, &type, NULL, 0) < 0 ||
	    type != PK_MSG_STATUS_REPLY || buf[len - 1] != '\0') {
		struct pk_reply_msg e;
		if (pk_reply_decode(buf, len, &e) == 0)
			snprintf(err, err_len, "STATUS refused: %s", e.reason);
		else
			snprintf(err, err_len, "malformed STATUS reply (%zu bytes)", len);
		r = -EPROTO;
		goto out;
	}
	*root = json_tokener_parse(buf + sizeof(struct pk_msg_header));
	if (!*root) {
		snprintf(err, err_len, "STATUS reply is not JSON");
		r = -EBADMSG;
	}
out:
	free(buf);
	return r;
}

json_object *status_find_vm(json_object *root, const char *vm)
{
	json_object *vms, *name;

	if (!json_object_object_get_ex(root, "vms", &vms) ||
	    !json_object_is_type(vms, json_type_array))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *o = json_object_array_get_idx(vms, i);
		if (json_object_object_get_ex(o, "name", &name) &&
		    !strcmp(json_object_get_string(name), vm))
			return o;
	}
	return NULL;
}

double status_num(json_object *o, const char *key, double dflt)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
		return dflt;
	return json_object_get_double(v);
}
