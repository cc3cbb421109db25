/*
 * status_req.c - one VM's swap-in counters from pagekeeperd (PK_MSG_STATUS).
 *
 * What/how/why: see status_req.h.
 */
#include "status_req.h"
#include "engine/protocol.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* The reply's JSON text in a malloc'd buffer (*buf), or -errno. */
static int fetch(const char *sock, int timeout_s, char **buf, size_t *len, char *err,
		 size_t err_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = timeout_s };
	struct pk_msg_header hdr;
	int fd, e;

	if (strlen(sock) >= sizeof(sa.sun_path)) {
		snprintf(err, err_len, "socket path too long");
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, sock);
	*buf = malloc(PK_PROTO_MAX_MSG);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (!*buf || fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = *buf ? -errno : -ENOMEM;
		snprintf(err, err_len, "connect %s: %s", sock, strerror(-e));
		goto fail;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	pk_msg_header_init(&hdr, PK_MSG_STATUS, sizeof(hdr));
	if (send(fd, &hdr, sizeof(hdr), MSG_NOSIGNAL) != (ssize_t)sizeof(hdr)) {
		e = -errno;
		snprintf(err, err_len, "send STATUS: %s", strerror(errno));
		goto fail;
	}
	ssize_t n = recv(fd, *buf, PK_PROTO_MAX_MSG, 0);
	if (n <= 0) {
		e = n < 0 ? -errno : -ECONNRESET;
		snprintf(err, err_len, "no STATUS reply within %d s: %s", timeout_s,
			 strerror(-e));
		goto fail;
	}
	close(fd);
	*len = (size_t)n;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	free(*buf);
	*buf = NULL;
	return e;
}

static uint64_t get_u64(json_object *o, const char *key, bool *ok)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int)) {
		*ok = false;
		return 0;
	}
	return (uint64_t)json_object_get_int64(v);
}

/* The VM object named vm in root's "vms", or NULL. */
static json_object *find_vm(json_object *root, const char *vm)
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

int vm_swap_counters(const char *sock, const char *vm, int timeout_s,
		     struct vm_swap_counters *out, char *err, size_t err_len)
{
	char *buf, reason[PK_PROTO_REASON_MAX];
	size_t len = 0;
	uint16_t type;
	int r = fetch(sock, timeout_s, &buf, &len, err, err_len);

	memset(out, 0, sizeof(*out));
	out->direct_io = -1;
	if (r < 0)
		return r;
	if (pk_msg_check_header(buf, len, &type, reason, sizeof(reason)) < 0 ||
	    type != PK_MSG_STATUS_REPLY || buf[len - 1] != '\0') {
		struct pk_reply_msg e;
		if (pk_reply_decode(buf, len, &e) == 0)
			snprintf(err, err_len, "STATUS refused: %s", e.reason);
		else
			snprintf(err, err_len, "malformed STATUS reply (%zu bytes)", len);
		free(buf);
		return -EPROTO;
	}
	json_object *root = json_tokener_parse(buf + sizeof(struct pk_msg_header));
	free(buf);
	if (!root) {
		snprintf(err, err_len, "STATUS reply is not JSON");
		return -EBADMSG;
	}
	json_object *o = find_vm(root, vm), *sw, *d;
	bool ok = o != NULL;
	if (o) {
		out->swapins = get_u64(o, "swapins", &ok);
		out->swapins_readahead = get_u64(o, "swapins_readahead", &ok);
	}
	if (json_object_object_get_ex(root, "swap", &sw) &&
	    json_object_object_get_ex(sw, "direct_io", &d))
		out->direct_io = json_object_get_boolean(d);
	json_object_put(root);
	if (!o) {
		snprintf(err, err_len, "STATUS lists no VM named %s", vm);
		return -ENOENT;
	}
	if (!ok) {
		snprintf(err, err_len, "STATUS of VM %s lacks swapins or swapins_readahead "
			 "(a daemon without swap-in counters?)", vm);
		return -EBADMSG;
	}
	return 0;
}
