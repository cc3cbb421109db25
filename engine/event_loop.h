/*
 * event_loop.h - one epoll loop per thread (in the spirit of Redis ae.c).
 *
 * A watch binds an fd to a handler.  Handlers may delete any watch,
 * including their own and ones with events still pending in the current
 * batch: deletion marks the watch dead and frees it after the batch, so
 * a stale event is never delivered to freed state.
 */
#ifndef PK_EVENT_LOOP_H
#define PK_EVENT_LOOP_H

#include <stdint.h>

struct pk_event_loop;
struct pk_watch;

typedef void pk_watch_fn(struct pk_event_loop *loop, struct pk_watch *w,
			 uint32_t events, void *data);

struct pk_event_loop *pk_event_loop_create(void);
void pk_event_loop_destroy(struct pk_event_loop *loop);

/* Watch fd for events (EPOLLIN, ...).  NULL on failure, errno set. */
struct pk_watch *pk_watch_add(struct pk_event_loop *loop, int fd,
			      uint32_t events, pk_watch_fn *fn, void *data);
/* Stop watching; the fd is not closed.  NULL is accepted. */
void pk_watch_del(struct pk_event_loop *loop, struct pk_watch *w);

/*
 * Is any watched fd ready now?  Dispatches nothing: every watch is
 * level-triggered, so the event is still there for the next batch.  Long
 * handlers (the sharing scanner) use it to give way.
 */
int pk_event_loop_pending(struct pk_event_loop *loop);

/* Wait up to timeout_ms (-1: forever) and dispatch one batch. */
int pk_event_loop_run_once(struct pk_event_loop *loop, int timeout_ms);

#endif
