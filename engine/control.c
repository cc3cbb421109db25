/*
 * control.c - the control socket: accept clients, register VMs, answer
 * status, reclaim, drain and balloon requests.
 *
 * The socket is AF_UNIX SOCK_SEQPACKET (see PROTOCOL.md).  A connection
 * carries requests until it closes.  A REGISTER that succeeds hands the
 * connection to the new VM: from then on its closing means the client
 * detached.  Every rejected request gets an ERROR_REPLY or a
 * REGISTER_REPLY with a negative status and a reason, every received fd
 * is closed on every error path, and the daemon goes on serving others.
 *
 * The peer's pid comes from SO_PEERCRED, not from the message: a client
 * cannot claim another process's memory.
 */
#include "engine/engine.h"
#include "engine/protocol.h"
#include "engine/vm.h"
#include "engine/vm_balloon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define PK_MAX_RX_FDS 4

/* An open connection that has not (yet) registered a VM. */
struct pk_conn {
	struct pk_engine *engine;
	int fd;
	struct pk_watch *watch;
	struct pk_conn *prev, *next; /* engine->conns, freed at shutdown */
};

static void conn_close(struct pk_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		c->engine->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pk_watch_del(c->engine->loop, c->watch);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static void send_reply(int fd, uint16_t type, int status, uint32_t vm_id,
		       const char *reason)
{
	struct pk_reply_msg r;

	pk_reply_encode(&r, type, status, vm_id, reason);
	/* MSG_DONTWAIT: a client that never reads must not stall the loop. */
	send(fd, &r, sizeof(r), MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void send_status(struct pk_engine *e, int fd)
{
	char *json = pk_engine_status_json(e);
	size_t len;
	struct pk_msg_header *hdr;

	if (!json) {
		send_reply(fd, PK_MSG_ERROR_REPLY, -ENOMEM, 0,
			   "cannot build status");
		return;
	}
	len = sizeof(*hdr) + strlen(json) + 1;
	hdr = malloc(len);
	if (hdr) {
		pk_msg_header_init(hdr, PK_MSG_STATUS_REPLY, (uint32_t)len);
		memcpy(hdr + 1, json, len - sizeof(*hdr));
		send(fd, hdr, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		free(hdr);
	}
	free(json);
}

static void vm_uffd_ready(struct pk_event_loop *loop, struct pk_watch *w,
			  uint32_t events, void *data)
{
	(void)loop, (void)w, (void)events;
	pk_fault_handle_events(data);
}

static void vm_gone(struct pk_event_loop *loop, struct pk_watch *w,
		    uint32_t events, void *data)
{
	struct pk_vm *vm = data;
	(void)loop, (void)events;

	pk_log(vm->engine, "vm %s (pid %d): %s; freeing its state", vm->name,
	       (int)vm->pid,
	       w == vm->pidfd_watch ? "process exited" : "client detached");
	pk_vm_destroy(vm);
}

/* A registered VM's connection is readable: only EOF is expected. */
static void vm_conn_ready(struct pk_event_loop *loop, struct pk_watch *w,
			  uint32_t events, void *data)
{
	struct pk_vm *vm = data;
	char buf[sizeof(struct pk_msg_header)];

	if (!(events & (EPOLLHUP | EPOLLERR))) {
		ssize_t n = recv(vm->conn_fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0) {
			send_reply(vm->conn_fd, PK_MSG_ERROR_REPLY, -EPROTO, 0,
				   "this connection is bound to a VM; open "
				   "another one for requests");
			return;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
	}
	vm_gone(loop, w, events, data);
}

static void handle_register(struct pk_conn *c, const void *buf, size_t len,
			    int *fds, int n_fds)
{
	struct pk_engine *e = c->engine;
	struct pk_registration reg;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	char reason[PK_PROTO_REASON_MAX] = "";
	struct pk_vm *vm = NULL;
	int err, want_fds;

	err = pk_register_decode(buf, len, &reg, reason, sizeof(reason));
	if (err)
		goto reject;
	want_fds = (reg.flags & PK_REG_ANON) ? 1 : 2;
	if (n_fds != want_fds) {
		err = -EINVAL;
		snprintf(reason, sizeof(reason),
			 "register carries %d fds; expected %d (uffd%s)", n_fds,
			 want_fds, want_fds == 2 ? ", RAM fd" : "");
		goto reject;
	}
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
		err = -errno;
		snprintf(reason, sizeof(reason), "SO_PEERCRED: %s",
			 strerror(errno));
		goto reject;
	}
	err = pk_vm_create(e, &reg, cred.pid, fds[0], n_fds > 1 ? fds[1] : -1,
			   c->fd, &vm, reason, sizeof(reason));
	if (err)
		goto reject;

	/* The VM owns the fds and the connection now. */
	c->fd = -1;
	conn_close(c);
	fcntl(vm->uffd, F_SETFL, fcntl(vm->uffd, F_GETFL) | O_NONBLOCK);
	vm->uffd_watch = pk_watch_add(e->loop, vm->uffd, EPOLLIN,
				      vm_uffd_ready, vm);
	vm->pidfd_watch = pk_watch_add(e->loop, vm->pidfd, EPOLLIN, vm_gone, vm);
	vm->conn_watch = pk_watch_add(e->loop, vm->conn_fd, EPOLLIN | EPOLLRDHUP,
				      vm_conn_ready, vm);
	if (!vm->uffd_watch || !vm->pidfd_watch || !vm->conn_watch) {
		send_reply(vm->conn_fd, PK_MSG_REGISTER_REPLY, -ENOMEM, 0,
			   "cannot watch the VM's fds");
		pk_vm_destroy(vm);
		return;
	}
	pk_log(e, "vm %s registered: id %u, pid %d, %llu MiB in %u region(s), %s RAM",
	       vm->name, vm->id, (int)vm->pid,
	       (unsigned long long)(vm->configured_bytes >> 20), vm->n_regions,
	       vm->anon ? "anonymous" : "shared");
	send_reply(vm->conn_fd, PK_MSG_REGISTER_REPLY, 0, vm->id, "ok");
	return;
reject:
	for (int i = 0; i < n_fds; i++)
		close(fds[i]);
	pk_log(e, "rejected registration: %s", reason);
	send_reply(c->fd, PK_MSG_REGISTER_REPLY, err, 0, reason);
}

/*
 * The VM a RECLAIM or DRAIN names, or NULL after an ERROR_REPLY.  A VM of
 * the previous daemon still waiting for its guest is not there yet.
 */
static struct pk_vm *request_vm(struct pk_conn *c, const char *vm_name)
{
	char name[PK_PROTO_NAME_MAX], reason[PK_PROTO_REASON_MAX];
	struct pk_vm *vm;

	memcpy(name, vm_name, sizeof(name));
	name[sizeof(name) - 1] = '\0';
	vm = pk_vm_find_by_name(c->engine, name);
	if (!vm) {
		snprintf(reason, sizeof(reason), "no VM named '%s'%s", name,
			 c->engine->n_waiting
				 ? " (VMs of the previous daemon are listed "
				   "once their guests reconnect)"
				 : "");
		send_reply(c->fd, PK_MSG_ERROR_REPLY, -ENOENT, 0, reason);
	}
	return vm;
}

typedef int long_request_fn(struct pk_vm *vm, uint64_t arg, int reply_fd,
			    char *reason, size_t reason_len);

/*
 * A request whose reply comes when its work ends: a copy of the
 * connection is handed to the work, which answers on it.
 */
static void start_long_request(struct pk_conn *c, struct pk_vm *vm,
			       long_request_fn *start, uint64_t arg)
{
	char reason[PK_PROTO_REASON_MAX];
	int err, fd = dup(c->fd);

	if (fd < 0) {
		send_reply(c->fd, PK_MSG_ERROR_REPLY, -errno, 0, "dup failed");
		return;
	}
	err = start(vm, arg, fd, reason, sizeof(reason));
	if (err) {
		close(fd);
		send_reply(c->fd, PK_MSG_ERROR_REPLY, err, 0, reason);
	}
}

static int drain_start(struct pk_vm *vm, uint64_t unused, int reply_fd,
		       char *reason, size_t reason_len)
{
	(void)unused;
	return pk_fault_drain_start(vm, reply_fd, reason, reason_len);
}

/* RECLAIM: evict.c answers when the eviction ends. */
static void handle_reclaim(struct pk_conn *c, const struct pk_reclaim_msg *m)
{
	struct pk_vm *vm = request_vm(c, m->vm_name);
	char reason[PK_PROTO_REASON_MAX];

	if (!vm)
		return;
	if (m->bytes == 0 || m->bytes % PK_PAGE_SIZE) {
		snprintf(reason, sizeof(reason),
			 "reclaim size must be a positive multiple of %u bytes",
			 PK_PAGE_SIZE);
		send_reply(c->fd, PK_MSG_ERROR_REPLY, -EINVAL, 0, reason);
		return;
	}
	start_long_request(c, vm, pk_reclaim_start, m->bytes / PK_PAGE_SIZE);
}

/* DRAIN: fault.c answers when every page is back. */
static void handle_drain(struct pk_conn *c, const struct pk_drain_msg *m)
{
	struct pk_vm *vm = request_vm(c, m->vm_name);

	if (vm)
		start_long_request(c, vm, drain_start, 0);
}

/*
 * BALLOON: set the target through the VM's bridge and answer at once with
 * a BALLOON_REPLY, refusals included; the guest moves later (status).  A
 * migrating VM is -EBUSY (the bridge says so).
 */
static void handle_balloon(struct pk_conn *c, const struct pk_balloon_msg *m)
{
	struct pk_balloon_reply r;
	char name[PK_PROTO_NAME_MAX];
	struct pk_vm *vm;
	uint64_t actual = 0;
	int err;

	memset(&r, 0, sizeof(r));
	pk_msg_header_init(&r.hdr, PK_MSG_BALLOON_REPLY, sizeof(r));
	memcpy(name, m->vm_name, sizeof(name));
	name[sizeof(name) - 1] = '\0';
	vm = pk_vm_find_by_name(c->engine, name);
	if (!vm) {
		err = -ENOENT;
		snprintf(r.reason, sizeof(r.reason), "no VM named '%s'%s", name,
			 c->engine->n_waiting
				 ? " (VMs of the previous daemon are listed "
				   "once their guests reconnect)"
				 : "");
	} else {
		err = pk_vm_balloon_set_target(vm, m->target_bytes, &actual,
					       r.reason, sizeof(r.reason));
		if (!err) {
			snprintf(r.reason, sizeof(r.reason), "ok");
			/* An admin's target: the policy gives the balloon
			 * up until memory runs short again (policy.c). */
			vm->policy.balloon_goal = 0;
			vm->policy.balloon_sent = m->target_bytes;
		}
	}
	r.status = err;
	r.target_bytes = err ? 0 : m->target_bytes;
	r.actual_bytes = actual;
	if (err)
		pk_log(c->engine, "balloon request refused: %s", r.reason);
	send(c->fd, &r, sizeof(r), MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* SET: a VM's shares, min and max for the policy; answered at once. */
static void handle_set(struct pk_conn *c, const struct pk_set_msg *m)
{
	struct pk_reply_msg r;
	char name[PK_PROTO_NAME_MAX], why[PK_PROTO_REASON_MAX] = "ok";
	struct pk_vm *vm;
	int err = 0;

	memcpy(name, m->vm_name, sizeof(name));
	name[sizeof(name) - 1] = '\0';
	vm = pk_vm_find_by_name(c->engine, name);
	if (!vm) {
		err = -ENOENT;
		snprintf(why, sizeof(why), "no VM named '%s'", name);
	} else if (m->shares < -1 || m->min_bytes < -1 || m->max_bytes < -1 ||
		   m->no_balloon < -1 || m->no_balloon > 1) {
		err = -EINVAL;
		snprintf(why, sizeof(why), "a figure is out of range");
	} else {
		err = pk_policy_vm_set(vm, m->shares, m->min_bytes, m->max_bytes,
				       m->no_balloon, why, sizeof(why));
	}
	if (err)
		pk_log(c->engine, "set request refused: %s", why);
	pk_reply_encode(&r, PK_MSG_SET_REPLY, err, vm ? vm->id : 0, why);
	send(c->fd, &r, sizeof(r), MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void conn_ready(struct pk_event_loop *loop, struct pk_watch *w,
		       uint32_t events, void *data)
{
	struct pk_conn *c = data;
	char *buf = c->engine->rx_buf;
	char cbuf[CMSG_SPACE(sizeof(int) * PK_MAX_RX_FDS)];
	/* One byte more than the limit so oversize shows as MSG_TRUNC. */
	struct iovec iov = { .iov_base = buf, .iov_len = PK_PROTO_MAX_MSG + 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	char reason[PK_PROTO_REASON_MAX];
	int fds[PK_MAX_RX_FDS], n_fds = 0;
	uint16_t type;
	ssize_t n;
	int err;
	(void)loop, (void)w;

	n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
	     cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (n_fds < PK_MAX_RX_FDS)
				fds[n_fds++] = fd;
			else
				close(fd);
		}
	}
	/* SEQPACKET: 0 bytes is an empty message unless the peer hung up. */
	if (n == 0 && !(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
		err = pk_msg_check_header(buf, 0, &type, reason, sizeof(reason));
		goto reject;
	}
	if (n <= 0 || (events & (EPOLLHUP | EPOLLERR))) {
		for (int i = 0; i < n_fds; i++)
			close(fds[i]);
		conn_close(c);
		return;
	}
	if (mh.msg_flags & MSG_CTRUNC) {
		err = -EMSGSIZE;
		snprintf(reason, sizeof(reason), "too many fds attached");
		goto reject;
	}
	if (mh.msg_flags & MSG_TRUNC)
		n = PK_PROTO_MAX_MSG + 1; /* report as oversized */
	err = pk_msg_check_header(buf, (size_t)n, &type, reason, sizeof(reason));
	if (err)
		goto reject;
	switch (type) {
	case PK_MSG_REGISTER:
		handle_register(c, buf, (size_t)n, fds, n_fds);
		return;
	case PK_MSG_RECLAIM:
		if (n_fds || (size_t)n != sizeof(struct pk_reclaim_msg)) {
			err = -EBADMSG;
			snprintf(reason, sizeof(reason),
				 "reclaim request must be %zu bytes without fds",
				 sizeof(struct pk_reclaim_msg));
			goto reject;
		}
		handle_reclaim(c, (const struct pk_reclaim_msg *)(const void *)buf);
		return;
	case PK_MSG_DRAIN:
		if (n_fds || (size_t)n != sizeof(struct pk_drain_msg)) {
			err = -EBADMSG;
			snprintf(reason, sizeof(reason),
				 "drain request must be %zu bytes without fds",
				 sizeof(struct pk_drain_msg));
			goto reject;
		}
		handle_drain(c, (const struct pk_drain_msg *)(const void *)buf);
		return;
	case PK_MSG_BALLOON:
		if (n_fds || (size_t)n != sizeof(struct pk_balloon_msg)) {
			err = -EBADMSG;
			snprintf(reason, sizeof(reason),
				 "balloon request must be %zu bytes without fds",
				 sizeof(struct pk_balloon_msg));
			goto reject;
		}
		handle_balloon(c, (const struct pk_balloon_msg *)(const void *)buf);
		return;
	case PK_MSG_SET:
		if (n_fds || (size_t)n != sizeof(struct pk_set_msg)) {
			err = -EBADMSG;
			snprintf(reason, sizeof(reason),
				 "set request must be %zu bytes without fds",
				 sizeof(struct pk_set_msg));
			goto reject;
		}
		handle_set(c, (const struct pk_set_msg *)(const void *)buf);
		return;
	case PK_MSG_STATUS:
		if (n_fds) {
			err = -EINVAL;
			snprintf(reason, sizeof(reason),
				 "status request must not carry fds");
			goto reject;
		}
		send_status(c->engine, c->fd);
		return;
	default:
		err = -EOPNOTSUPP;
		snprintf(reason, sizeof(reason), "unknown message type %u", type);
		goto reject;
	}
reject:
	for (int i = 0; i < n_fds; i++)
		close(fds[i]);
	pk_log(c->engine, "rejected request: %s", reason);
	send_reply(c->fd, PK_MSG_ERROR_REPLY, err, 0, reason);
}

static void listen_ready(struct pk_event_loop *loop, struct pk_watch *w,
			 uint32_t events, void *data)
{
	struct pk_engine *e = data;
	(void)w, (void)events;

	for (;;) {
		int fd = accept4(e->listen_fd, NULL, NULL,
				 SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		struct pk_conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->engine = e;
		c->fd = fd;
		c->next = e->conns;
		if (c->next)
			c->next->prev = c;
		e->conns = c;
		c->watch = pk_watch_add(loop, fd, EPOLLIN | EPOLLRDHUP,
					conn_ready, c);
		if (!c->watch)
			conn_close(c);
	}
}

/*
 * Bind the socket.  A socket file left by a dead daemon is replaced; one
 * a live daemon answers on is not (two daemons must not split guests).
 */
int pk_control_listen(struct pk_engine *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(e->cfg.socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, e->cfg.socket_path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EADDRINUSE)
			goto fail;
		int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		int live = probe >= 0 &&
			   connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (probe >= 0)
			close(probe);
		if (live) {
			close(fd);
			return -EADDRINUSE;
		}
		unlink(sa.sun_path);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			goto fail;
	}
	/* Guests may run as other users (QEMU); access is by file mode. */
	chmod(sa.sun_path, 0666);
	if (listen(fd, 64) < 0)
		goto fail;
	e->listen_fd = fd;
	if (!pk_watch_add(e->loop, fd, EPOLLIN, listen_ready, e)) {
		e->listen_fd = -1;
		goto fail;
	}
	return 0;
fail:;
	int err = -errno;
	close(fd);
	return err;
}

void pk_control_close(struct pk_engine *e)
{
	while (e->conns)
		conn_close(e->conns);
	if (e->listen_fd >= 0) {
		close(e->listen_fd);
		unlink(e->cfg.socket_path);
		e->listen_fd = -1;
	}
}
