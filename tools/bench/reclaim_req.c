/*
 * reclaim_req.c - ask pagekeeperd to evict a VM's RAM (PK_MSG_RECLAIM).
 *
 * What/how/why: see reclaim_req.h.
 */
#include "reclaim_req.h"
#include "engine/protocol.h"
#include "timing.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

int reclaim_request(const char *sock, const char *vm, uint64_t bytes,
		    int timeout_s, struct reclaim_result *out, char *err,
		    size_t err_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct pk_reclaim_msg m;
	union {
		struct pk_reclaim_reply r;
		struct pk_reply_msg e;
		char raw[sizeof(struct pk_reclaim_reply) + 64];
	} buf;
	struct timeval tv = { .tv_sec = timeout_s };
	uint16_t type;
	int fd, e;

	memset(out, 0, sizeof(*out));
	if (strlen(vm) >= sizeof(m.vm_name) || strlen(sock) >= sizeof(sa.sun_path)) {
		snprintf(err, err_len, "VM name or socket path too long");
		return -ENAMETOOLONG;
	}
	memset(&m, 0, sizeof(m));
	pk_msg_header_init(&m.hdr, PK_MSG_RECLAIM, sizeof(m));
	strcpy(m.vm_name, vm);
	m.bytes = bytes;
	strcpy(sa.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = -errno;
		snprintf(err, err_len, "connect %s: %s", sock, strerror(errno));
		if (fd >= 0)
			close(fd);
		return e;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	uint64_t t0 = now_ns();
	if (send(fd, &m, sizeof(m), MSG_NOSIGNAL) != (ssize_t)sizeof(m)) {
		e = -errno;
		snprintf(err, err_len, "send RECLAIM: %s", strerror(errno));
		close(fd);
		return e;
	}
	ssize_t n = recv(fd, &buf, sizeof(buf), 0);
	out->wall_ns = now_ns() - t0;
	e = n < 0 ? -errno : 0;
	close(fd);
	if (n < 0) {
		snprintf(err, err_len, "no RECLAIM reply within %d s: %s", timeout_s,
			 strerror(-e));
		return e;
	}
	if (n == 0) {
		snprintf(err, err_len, "pagekeeperd closed the connection without a reply");
		return -ECONNRESET;
	}
	if (pk_msg_check_header(&buf, (size_t)n, &type, NULL, 0) < 0) {
		snprintf(err, err_len, "malformed reply (%zd bytes)", n);
		return -EBADMSG;
	}
	if (type == PK_MSG_RECLAIM_REPLY && n == (ssize_t)sizeof(buf.r)) {
		out->status = buf.r.status;
		out->pages_swapped = buf.r.pages_swapped;
		out->pages_zero = buf.r.pages_zero;
		out->pages_aborted = buf.r.pages_aborted;
		out->elapsed_us = buf.r.elapsed_us;
		memcpy(out->reason, buf.r.reason, sizeof(out->reason));
		out->reason[sizeof(out->reason) - 1] = '\0';
		return 0;
	}
	struct pk_reply_msg r;
	if (pk_reply_decode(&buf, (size_t)n, &r) == 0) {
		snprintf(err, err_len, "RECLAIM refused: %s (%s)", r.reason,
			 strerror(r.status < 0 ? -r.status : EPROTO));
		return r.status < 0 ? r.status : -EPROTO;
	}
	snprintf(err, err_len, "unexpected reply type %u, %zd bytes", type, n);
	return -EPROTO;
}
