/*
 * client.c - libpagekeeper-client: hand a process's guest RAM to the daemon.
 *
 * attach: create a userfaultfd here (the guest's mm is the one it serves),
 * enable the features the daemon needs, register every region for MISSING
 * and WP faults, then send the uffd and the RAM fd over the control socket
 * with SCM_RIGHTS and wait for the daemon's verdict.
 *
 * The library keeps its own copy of the uffd open for as long as the
 * attachment lasts.  That copy is the crash-safety guarantee: while any
 * process holds the uffd, a fault with no live handler blocks instead of
 * reading zeros.  With reconnect set, a thread watches the connection;
 * when the daemon goes away it retries every 100 ms and registers again
 * (the new daemon wakes every range, re-raising the blocked faults).
 */
#include "engine/client/pagekeeper-client.h"
#include "engine/protocol.h"
#include "engine/uffd_compat.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

#define PK_RECONNECT_INTERVAL_MS 100
#define PK_REPLY_TIMEOUT_S 30

struct pk_client {
	int uffd;
	int ram_fd;
	int sock;
	int stop_pipe[2];
	pthread_t thread;
	int has_thread;
	char socket_path[108];
	void *reg_msg; /* encoded REGISTER, resent on reconnect */
	int reg_len;
	struct pk_client_region *regions;
	unsigned n_regions;
	_Atomic uint32_t vm_id;	/* written by the reconnect thread */
	_Atomic unsigned generation;
	pthread_mutex_t lock;
};

static int set_err(char *err, size_t err_len, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int set_err(char *err, size_t err_len, int code, const char *fmt, ...)
{
	if (err && err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* userfaultfd(2) first; /dev/userfaultfd where the syscall is refused. */
static int uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0 || (errno != EPERM && errno != ENOSYS))
		return fd >= 0 ? fd : -errno;
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -EPERM;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	int e = errno;
	close(dev);
	return fd >= 0 ? fd : -e;
}

static int uffd_setup(struct pk_client *c, char *err, size_t err_len)
{
	struct uffdio_api api = { .api = UFFD_API, .features = PK_UFFD_FEATURES };
	int fd = uffd_open();

	if (fd < 0)
		return set_err(err, err_len, fd, "userfaultfd: %s", strerror(-fd));
	c->uffd = fd;
	if (ioctl(fd, UFFDIO_API, &api) < 0)
		return set_err(err, err_len, -errno, "UFFDIO_API: %s",
			       strerror(errno));
	for (unsigned i = 0; i < c->n_regions; i++) {
		struct uffdio_register r = {
			.range = { .start = (uint64_t)(uintptr_t)c->regions[i].addr,
				   .len = c->regions[i].length },
			.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
		};
		if (ioctl(fd, UFFDIO_REGISTER, &r) < 0)
			return set_err(err, err_len, -errno,
				       "UFFDIO_REGISTER region %u: %s", i,
				       strerror(errno));
	}
	return 0;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

/*
 * Wait for events on fd until deadline_ms.  0, -ETIMEDOUT, or -errno.
 * EINTR restarts the wait with the time left: in a host process such as
 * QEMU, blocking calls are interrupted without any signal handler of
 * ours (io_uring's ring teardown queues task work that does it), and an
 * attach must not fail for that.
 */
static int wait_fd(int fd, short events, long deadline_ms)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		long left = deadline_ms - now_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int sock_connect(const char *path, long deadline_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), e = 0;
	socklen_t len = sizeof(e);

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = -errno;
		/* Interrupted: the connection goes on; wait for its end. */
		if (e == -EINTR && (e = wait_fd(fd, POLLOUT, deadline_ms)) == 0 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0)
			e = -e;
		if (e) {
			close(fd);
			return e;
		}
	}
	return fd;
}

/* The daemon's reply, waited for until deadline_ms.  Bytes or -errno. */
static ssize_t recv_reply(int fd, void *buf, size_t len, long deadline_ms)
{
	for (;;) {
		int w = wait_fd(fd, POLLIN, deadline_ms);
		ssize_t n;

		if (w < 0)
			return w;
		n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n >= 0)
			return n;
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
}

/* Send the registration on a fresh connection; returns socket or -errno. */
static int register_once(struct pk_client *c, char *err, size_t err_len)
{
	int fds[2] = { c->uffd, c->ram_fd };
	int n_fds = c->ram_fd >= 0 ? 2 : 1;
	char cbuf[CMSG_SPACE(sizeof(fds))];
	struct iovec iov = { .iov_base = c->reg_msg, .iov_len = (size_t)c->reg_len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = CMSG_SPACE(n_fds * sizeof(int)) };
	struct cmsghdr *cm;
	struct pk_reply_msg reply;
	char rbuf[sizeof(reply) + 1];
	long deadline = now_ms() + PK_REPLY_TIMEOUT_S * 1000L;
	ssize_t n;
	int fd, rc;

	fd = sock_connect(c->socket_path, deadline);
	if (fd < 0)
		return set_err(err, err_len, fd, "connect %s: %s", c->socket_path,
			       strerror(-fd));
	memset(cbuf, 0, sizeof(cbuf));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, n_fds * sizeof(int));
	/* A SEQPACKET message goes whole or not at all: resend on EINTR. */
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != c->reg_len) {
		rc = set_err(err, err_len, n < 0 ? -errno : -EIO, "send: %s",
			     n < 0 ? strerror(errno) : "short message");
		goto fail;
	}
	n = recv_reply(fd, rbuf, sizeof(rbuf), deadline);
	if (n < 0) {
		rc = set_err(err, err_len, (int)n, "waiting for the daemon: %s",
			     strerror((int)-n));
		goto fail;
	}
	rc = pk_reply_decode(rbuf, (size_t)n, &reply);
	if (rc) {
		rc = set_err(err, err_len, n == 0 ? -ECONNRESET : rc,
			     "bad reply from the daemon (%zd bytes)", n);
		goto fail;
	}
	if (reply.status) {
		rc = set_err(err, err_len, reply.status, "daemon refused: %s",
			     reply.reason);
		goto fail;
	}
	c->vm_id = reply.vm_id;
	c->generation++;
	return fd;
fail:
	close(fd);
	return rc;
}

static int sleep_or_stop(struct pk_client *c, int ms)
{
	struct pollfd p = { .fd = c->stop_pipe[0], .events = POLLIN };
	return poll(&p, 1, ms) > 0;
}

/*
 * Watch the daemon connection.  The daemon never sends on it after the
 * reply, so readability means it closed: the daemon died or stopped.
 */
static void *reconnect_thread(void *arg)
{
	struct pk_client *c = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = c->stop_pipe[0], .events = POLLIN },
			{ .fd = c->sock, .events = POLLIN | POLLRDHUP },
		};
		if (poll(p, 2, -1) < 0)
			continue;
		if (p[0].revents)
			return NULL;
		char b[sizeof(struct pk_reply_msg)];
		if (recv(c->sock, b, sizeof(b), MSG_DONTWAIT) > 0)
			continue; /* stray message: ignore */
		pthread_mutex_lock(&c->lock);
		close(c->sock);
		c->sock = -1;
		pthread_mutex_unlock(&c->lock);
		for (;;) {
			if (sleep_or_stop(c, PK_RECONNECT_INTERVAL_MS))
				return NULL;
			int fd = register_once(c, NULL, 0);
			if (fd >= 0) {
				pthread_mutex_lock(&c->lock);
				c->sock = fd;
				pthread_mutex_unlock(&c->lock);
				break;
			}
		}
	}
}

static void client_free(struct pk_client *c)
{
	if (c->uffd >= 0) {
		for (unsigned i = 0; i < c->n_regions; i++) {
			struct uffdio_range r = {
				.start = (uint64_t)(uintptr_t)c->regions[i].addr,
				.len = c->regions[i].length };
			ioctl(c->uffd, UFFDIO_UNREGISTER, &r);
		}
		close(c->uffd);
	}
	if (c->sock >= 0)
		close(c->sock);
	if (c->stop_pipe[0] >= 0)
		close(c->stop_pipe[0]);
	if (c->stop_pipe[1] >= 0)
		close(c->stop_pipe[1]);
	pthread_mutex_destroy(&c->lock);
	free(c->reg_msg);
	free(c->regions);
	free(c);
}

int pk_client_attach(const struct pk_client_opts *o, struct pk_client **out,
		     char *err, size_t err_len)
{
	return pk_client_attach_settings(o, NULL, out, err, err_len);
}

int pk_client_attach_settings(const struct pk_client_opts *o,
			      const struct pk_client_settings *set,
			      struct pk_client **out, char *err,
			      size_t err_len)
{
	struct pk_region_desc descs[PK_PROTO_MAX_REGIONS];
	struct pk_registration reg;
	struct pk_client *c;
	int rc;

	if (!o || !out || !o->vm_name || !o->regions || o->n_regions == 0 ||
	    o->n_regions > PK_PROTO_MAX_REGIONS)
		return set_err(err, err_len, -EINVAL,
			       "attach needs a VM name and 1 to %u regions",
			       PK_PROTO_MAX_REGIONS);
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->uffd = c->sock = -1;
	c->stop_pipe[0] = c->stop_pipe[1] = -1;
	c->ram_fd = o->ram_fd;
	pthread_mutex_init(&c->lock, NULL);
	snprintf(c->socket_path, sizeof(c->socket_path), "%s",
		 o->socket_path ? o->socket_path : PK_DEFAULT_SOCKET);
	c->n_regions = o->n_regions;
	c->regions = calloc(o->n_regions, sizeof(*c->regions));
	c->reg_msg = calloc(1, pk_register_msg_size_flags(o->n_regions,
							  PK_REG_SETTINGS));
	if (!c->regions || !c->reg_msg) {
		client_free(c);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < o->n_regions; i++) {
		c->regions[i] = o->regions[i];
		descs[i] = (struct pk_region_desc){
			.host_addr = (uint64_t)(uintptr_t)o->regions[i].addr,
			.length = o->regions[i].length,
			.file_offset = o->regions[i].file_offset,
			.page_size = PK_PAGE_SIZE,
		};
	}
	reg = (struct pk_registration){
		.vm_name = o->vm_name,
		.share_domain = o->share_domain ? o->share_domain : "",
		.balloon_kind = (uint32_t)o->balloon_kind,
		.balloon_channel = o->balloon_channel ? o->balloon_channel : "",
		.flags = o->ram_fd < 0 ? PK_REG_ANON : 0,
		.n_regions = o->n_regions,
		.regions = descs,
	};
	if (set) {
		/* Sent with every registration, reconnects included. */
		reg.flags |= PK_REG_SETTINGS;
		reg.settings = (struct pk_register_settings){
			.shares = set->shares,
			.flags = set->no_balloon ? PK_REGSET_NO_BALLOON : 0,
			.min_bytes = set->min_bytes,
			.max_bytes = set->max_bytes,
		};
	}
	rc = pk_register_encode(c->reg_msg,
				pk_register_msg_size_flags(o->n_regions,
							   PK_REG_SETTINGS),
				&reg);
	if (rc < 0) {
		client_free(c);
		return set_err(err, err_len, rc, "cannot encode registration: %s",
			       strerror(-rc));
	}
	c->reg_len = rc;

	rc = uffd_setup(c, err, err_len);
	if (rc < 0)
		goto fail;
	rc = register_once(c, err, err_len);
	if (rc < 0)
		goto fail;
	c->sock = rc;
	if (o->reconnect) {
		if (pipe2(c->stop_pipe, O_CLOEXEC) < 0) {
			rc = set_err(err, err_len, -errno, "pipe: %s", strerror(errno));
			goto fail;
		}
		rc = -pthread_create(&c->thread, NULL, reconnect_thread, c);
		if (rc) {
			set_err(err, err_len, rc, "reconnect thread: %s",
				strerror(-rc));
			goto fail;
		}
		c->has_thread = 1;
	}
	*out = c;
	return 0;
fail:
	client_free(c);
	return rc;
}

uint32_t pk_client_vm_id(const struct pk_client *c)
{
	return c->vm_id;
}

unsigned pk_client_generation(const struct pk_client *c)
{
	return c->generation;
}

void pk_client_detach(struct pk_client *c)
{
	if (!c)
		return;
	if (c->has_thread) {
		(void)!write(c->stop_pipe[1], "x", 1);
		pthread_join(c->thread, NULL);
	}
	client_free(c);
}
