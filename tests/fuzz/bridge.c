/*
 * bridge.c - the harness of the balloon bridge's fuzz targets (qmp.c,
 * lab.c; tests/fuzz/fuzz.h): the peer's bytes into a real driver.
 *
 * Real parts: the real driver (balloon-bridge/qmp.c or lab.c) over its
 * real line framing (json_lines.c) and a real UNIX stream socket.  The
 * harness listens on a socket in a directory of its own (made once,
 * removed at exit); each input opens a bridge on it, takes its
 * connection, and plays the peer (QEMU's monitor, the lab guest): it
 * writes the bytes (greeting, replies, events), then closes its side,
 * while driving the bridge's pk_balloon_io() and reading what the bridge
 * sends, until the bridge drops the channel.  Once the link is READY, a
 * balloon target is asked, so the reply to it runs too; a tick an hour
 * ahead at the end runs the timers.  The QMP driver's request ids start
 * at 1 on each bridge, so a corpus file can answer them.
 */
#include "tests/fuzz/bridge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_INPUT (256u * 1024u)
#define MAX_ROUNDS 4096

static int listener = -1;
static char dir[64], path[96];

static void cleanup(void)
{
	if (listener >= 0)
		close(listener);
	unlink(path);
	rmdir(dir);
}

static void setup(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/pk-fuzz-bln-XXXXXX",
		 tmp && *tmp && strlen(tmp) < 32 ? tmp : "/tmp");
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/peer.sock", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listener < 0 || bind(listener, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(listener, 4))
		abort();
	atexit(cleanup);
}

/* Close connections left queued (a bridge's reconnect from a tick). */
static void drain_backlog(void)
{
	int c;

	while ((c = accept4(listener, NULL, NULL, SOCK_CLOEXEC)) >= 0)
		close(c);
}

static void on_event(struct pk_balloon *b, enum pk_balloon_event ev,
		     void *data)
{
	(void)b, (void)ev, (void)data;
}

int pk_fuzz_bridge(enum pk_balloon_driver driver, const uint8_t *data,
		   size_t size)
{
	struct pk_balloon_cfg cfg = { .driver = driver,
				      .ram_bytes = 1ull << 30,
				      .on_event = on_event };
	struct pk_balloon *b;
	char err[PK_BALLOON_WHY_MAX], sink[4096];
	size_t off = 0;
	int peer, asked = 0, shut = 0;

	if (size > MAX_INPUT)
		return 0;
	if (listener < 0)
		setup();
	drain_backlog();
	cfg.channel = path;
	if (pk_balloon_open(&b, &cfg, err, sizeof(err)) < 0)
		abort();
	/* A UNIX connect completes at once: the connection is queued. */
	peer = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
	if (peer < 0)
		abort();
	for (int round = 0; round < MAX_ROUNDS; round++) {
		uint32_t events;

		if (off < size) {
			ssize_t n = send(peer, data + off, size - off,
					 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0)
				off += (size_t)n;
			else if (n < 0 && errno != EAGAIN)
				off = size; /* the bridge closed its end */
		}
		if (off == size && !shut) {
			shutdown(peer, SHUT_WR);
			shut = 1;
		}
		if (pk_balloon_fd(b, &events) < 0)
			break; /* the bridge dropped the channel */
		pk_balloon_io(b, EPOLLIN | EPOLLOUT);
		while (recv(peer, sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
		if (!asked && pk_balloon_info(b)->link == PK_BLN_READY) {
			asked = 1;
			pk_balloon_set_target(b, 512ull << 20, err, sizeof(err));
		}
	}
	/* The timers: a request past its deadline drops the channel (and a
	 * tick past the back-off connects again: that connection is left
	 * queued, closed by the next input's drain_backlog()). */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts); /* the bridge's clock */
	pk_balloon_tick(b, (uint64_t)ts.tv_sec * 1000 + 3600 * 1000);
	close(peer);
	pk_balloon_close(b);
	drain_backlog();
	return 0;
}
