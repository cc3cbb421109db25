/*
 * labballoon.h - the lab guest's balloon driver: the lab balloon protocol
 * server (balloon-bridge/README.md).  See labballoon.c.
 */
#ifndef GS_LABBALLOON_H
#define GS_LABBALLOON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

#include "guestos.h"

#define GS_LAB_LINE_MAX 4096	/* protocol limit on one line, '\n' excluded */

struct gs_lab_balloon {
	struct gs_os *os;
	uint64_t timeline_ns;	/* --json timeline interval */
	int listen_fd, conn_fd, wake_fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* temp dir */
	pthread_t tid;
	bool started;
	atomic_int stop;

	/* The server thread's own. */
	char buf[GS_LAB_LINE_MAX + 1];
	size_t len;
	bool skipping;		/* discarding the rest of a too-long line */
	bool moving;		/* the balloon has not reached its target */
	uint64_t target_bytes;	/* last target, as the daemon gave it */
	uint64_t last_event_ns, last_event_actual;
	atomic_uint_fast64_t stalled_events, errors_sent, connections;
};

/*
 * Listen on path (NULL: a socket in a fresh directory under $TMPDIR),
 * before the guest registers it.  0, or -errno with the reason in err.
 */
int gs_lab_balloon_listen(struct gs_lab_balloon *lb, struct gs_os *os,
			  const char *path, double timeline_s, char *err,
			  size_t err_len);

/* Start serving on a thread of its own.  0 or -errno. */
int gs_lab_balloon_start(struct gs_lab_balloon *lb);

/* Stop the thread, close, remove the socket (and its temp dir). */
void gs_lab_balloon_stop(struct gs_lab_balloon *lb);

#endif
