/*
 * event_loop.c - epoll dispatch with deferred watch deletion.
 *
 * epoll_wait hands back a batch of events whose data points at watches.
 * A handler early in the batch may tear down a VM whose watches appear
 * later in the same batch, so pk_watch_del only unhooks the fd and parks
 * the watch on a graveyard list; dispatch skips dead watches and the
 * graveyard is freed when the batch is done.  The loop owns every watch:
 * live ones hang on a list, so pk_event_loop_destroy frees those their
 * owners never deleted (the engine's own, at shutdown).
 */
#include "engine/event_loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define PK_EVENT_BATCH 64

struct pk_watch {
	int fd; /* -1 once deleted */
	pk_watch_fn *fn;
	void *data;
	struct pk_watch *next_dead;
	struct pk_watch *prev, *next; /* the live list */
};

struct pk_event_loop {
	int epfd;
	struct pk_watch *graveyard;
	struct pk_watch *live;
};

struct pk_event_loop *pk_event_loop_create(void)
{
	struct pk_event_loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		free(loop);
		return NULL;
	}
	return loop;
}

static void free_graveyard(struct pk_event_loop *loop)
{
	while (loop->graveyard) {
		struct pk_watch *w = loop->graveyard;
		loop->graveyard = w->next_dead;
		free(w);
	}
}

void pk_event_loop_destroy(struct pk_event_loop *loop)
{
	if (!loop)
		return;
	free_graveyard(loop);
	while (loop->live) {
		struct pk_watch *w = loop->live;
		loop->live = w->next;
		free(w);
	}
	close(loop->epfd);
	free(loop);
}

struct pk_watch *pk_watch_add(struct pk_event_loop *loop, int fd,
			      uint32_t events, pk_watch_fn *fn, void *data)
{
	struct pk_watch *w = calloc(1, sizeof(*w));
	struct epoll_event ev = { .events = events };

	if (!w)
		return NULL;
	w->fd = fd;
	w->fn = fn;
	w->data = data;
	ev.data.ptr = w;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = errno;
		free(w);
		errno = err;
		return NULL;
	}
	w->next = loop->live;
	if (loop->live)
		loop->live->prev = w;
	loop->live = w;
	return w;
}

void pk_watch_del(struct pk_event_loop *loop, struct pk_watch *w)
{
	if (!w || w->fd < 0)
		return;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->fd = -1;
	if (w->prev)
		w->prev->next = w->next;
	else
		loop->live = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->next_dead = loop->graveyard;
	loop->graveyard = w;
}

int pk_event_loop_pending(struct pk_event_loop *loop)
{
	struct epoll_event ev;

	return epoll_wait(loop->epfd, &ev, 1, 0) > 0;
}

int pk_event_loop_run_once(struct pk_event_loop *loop, int timeout_ms)
{
	struct epoll_event evs[PK_EVENT_BATCH];
	int n = epoll_wait(loop->epfd, evs, PK_EVENT_BATCH, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct pk_watch *w = evs[i].data.ptr;
		if (w->fd >= 0)
			w->fn(loop, w, evs[i].events, w->data);
	}
	free_graveyard(loop);
	return n;
}
