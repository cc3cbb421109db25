/*
 * libvirt.c - the balloon bridge's libvirt driver: a domain's balloon
 * through the libvirt C API, channel "URI|domain".
 *
 * What: virConnectOpen (read-write) and virDomainLookupByName; once
 * connected, virDomainSetMemoryStatsPeriod (AFFECT_LIVE; drivers without
 * it are tolerated), then every cfg.stats_period_ms virDomainMemoryStats
 * (virDomainGetInfo's memory when the stats lack ACTUAL_BALLOON), and
 * virDomainSetMemoryFlags(AFFECT_LIVE) for a target.  libvirt counts KiB;
 * struct pk_balloon_info holds bytes.  Lifecycle, BALLOON_CHANGE and
 * MIGRATION_ITERATION events: a migrating domain gets link
 * PK_BLN_MIGRATING and PK_BLN_EV_MIGRATION (balloon.c then refuses
 * targets with -EBUSY); a domain that stops, or a connection libvirt
 * closes, is PK_BLN_EV_GONE and reconnected.  A URI that does not connect
 * or a domain that is not there (or not running) is GONE with
 * "cannot connect to libvirt at URI: <libvirt's message>" in info.why,
 * retried after 1 s, doubling to 30 s.
 *
 * How: libvirt's calls block (a remote daemon may take any time), so each
 * bridge has a worker thread that alone owns the connection and the
 * domain.  Threads and what they touch:
 *   - the owner's thread (every pk_balloon_* call): b->info, and through
 *     the mutex the shared struct lv: it puts a target into lv's request
 *     slot (a queue of depth one: a newer target replaces one the worker
 *     has not taken yet, the latest target is the one that counts) and
 *     signals lv->cond; pk_balloon_io() reads the eventfd, takes the
 *     whole result list and applies it to b->info, emitting events;
 *   - the worker: waits on lv->cond until a request, the next stats poll
 *     or the next connection attempt is due; makes the libvirt calls with
 *     the mutex dropped; appends results to lv's list and writes the
 *     eventfd (the fd pk_balloon_fd() returns, EPOLLIN).  It never
 *     touches struct pk_balloon;
 *   - libvirt's event loop thread (one per process, see below): the
 *     domain event and close callbacks append results or flag the worker,
 *     under the mutex, and nothing else.
 * struct lv is reference counted (the owner, the worker, each registered
 * domain event callback, released by libvirt's freecb: a callback may
 * still run just after its deregistration), so whichever lets go last
 * frees it.
 *
 * Closing: the owner sets stop, closes its eventfd (so nothing it still
 * watches can fire for a freed bridge) and joins the worker for at most
 * CLOSE_WAIT_MS (100 ms: the longest a close may stall the owner's loop).
 * The worker is either idle on the condition (it closes its connection
 * and exits at once) or inside one libvirt call; if that call, or the
 * closing of a remote connection, outlasts the wait, the worker is
 * detached: it finishes the call, closes its connection and frees what
 * is left when the last reference goes.  What bounds that call: for
 * remote URIs the connection gets virConnectSetKeepAlive(5 s, 3), so a
 * dead or hung libvirtd is declared gone after about 20 s and the call
 * fails; local drivers (test://, qemu:///embed) answer in-process.  A
 * libvirtd that accepts the connection and never answers the open itself
 * (no keepalive yet) keeps the detached worker until the socket closes.
 *
 * Process-wide, because libvirt makes them so: the event loop
 * implementation (virEventRegisterDefaultImpl) and one thread running
 * virEventRunDefaultImpl forever, set up once (pthread_once) by the first
 * bridge, and libvirt's default error printer replaced by a silent one
 * (errors are read with virGetLastErrorMessage() and go to info.why; the
 * printer would write every failed retry to stderr).
 *
 * Why: the owner's loop serves page faults, so a libvirt that hangs,
 * refuses or disappears costs it nothing but a stale info.  Every
 * pk_balloon_* call only takes a mutex the worker never holds across a
 * libvirt call.
 */
#include "balloon-bridge/driver.h"

#include <errno.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define RETRY_FIRST_MS 1000u
#define RETRY_MAX_MS 30000u
/* After a target, stats every CHASE_MS until actual reaches it (or
 * CHASE_FOR_MS pass), so CHANGED follows the balloon closely. */
#define CHASE_MS 200u
#define CHASE_FOR_MS 10000u
#define CLOSE_WAIT_MS 100u
#define KEEPALIVE_S 5
#define KEEPALIVE_COUNT 3u

enum lv_msg_kind {
	LV_UP,		/* connected, domain found and running */
	LV_DOWN,	/* connection failed or lost: why, retry_ms */
	LV_STATS,	/* fresh figures */
	LV_STATS_FAILED, /* why */
	LV_TARGET_OK,
	LV_TARGET_FAILED, /* why */
	LV_MIGRATING,	/* on */
	LV_BALLOON,	/* BALLOON_CHANGE: actual */
};

struct lv_msg {
	struct lv_msg *next;
	enum lv_msg_kind kind;
	int on;
	unsigned retry_ms;
	uint64_t target_bytes;
	/* LV_STATS (bytes, -1 unknown), LV_BALLOON: actual only */
	int64_t actual, total, free_, avail, swap_in, swap_out, major, minor;
	char why[PK_BALLOON_WHY_MAX];
};

struct lv {
	atomic_int refs;
	pthread_mutex_t mu;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	pthread_t thread;
	/* Owner's side, read-only for the others after open. */
	char uri[256];
	char dom_name[256];
	unsigned period_ms;
	/* Under mu. */
	int efd;	 /* results ready; -1 once the owner closed */
	int stop;
	int have_target; /* the request slot */
	uint64_t target_bytes;
	int lost;	 /* a callback saw the connection or domain go */
	char lost_why[PK_BALLOON_WHY_MAX];
	struct lv_msg *head, *tail;
	/* The worker's alone. */
	virConnectPtr conn;
	virDomainPtr dom;
	int cb_life, cb_balloon, cb_migr, cb_close;
	/* The owner's alone. */
	uint64_t sent_ms;	/* a target the worker has not answered */
	int timeout_told;
	int why_stats;		/* info.why is a stats failure */
};

/* ---- process-wide libvirt set-up ---------------------------------- */

static pthread_once_t ev_once = PTHREAD_ONCE_INIT;
static int ev_rc;

static void quiet_error(void *data, virErrorPtr err)
{
	(void)data;
	(void)err;
}

static void *event_loop(void *arg)
{
	(void)arg;
	for (;;)
		if (virEventRunDefaultImpl() < 0)
			usleep(100000); /* never spin on a broken loop */
	return NULL;
}

static void ev_init(void)
{
	pthread_attr_t a;
	pthread_t t;

	if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
		ev_rc = -EIO;
		return;
	}
	virSetErrorFunc(NULL, quiet_error);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	ev_rc = -pthread_create(&t, &a, event_loop, NULL);
	pthread_attr_destroy(&a);
}

/* ---- shared state ------------------------------------------------- */

static uint64_t now_ms(void)
{
	return pk_balloon_now_ms();
}

static void lv_unref(struct lv *lv)
{
	if (atomic_fetch_sub(&lv->refs, 1) != 1)
		return;
	while (lv->head) {
		struct lv_msg *m = lv->head;
		lv->head = m->next;
		free(m);
	}
	pthread_cond_destroy(&lv->cond);
	pthread_mutex_destroy(&lv->mu);
	free(lv);
}

static void lv_unref_cb(void *opaque)
{
	lv_unref(opaque);
}

/* Append m and wake the owner; mu held. */
static void push_locked(struct lv *lv, struct lv_msg *m)
{
	uint64_t one = 1;

	m->next = NULL;
	if (lv->tail)
		lv->tail->next = m;
	else
		lv->head = m;
	lv->tail = m;
	if (lv->efd >= 0 && write(lv->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is full, the owner is woken anyway */
	}
}

static struct lv_msg *msg_new(enum lv_msg_kind kind)
{
	struct lv_msg *m = calloc(1, sizeof(*m));

	if (m)
		m->kind = kind;
	return m;
}

static void push(struct lv *lv, struct lv_msg *m)
{
	if (!m)
		return; /* out of memory: this result is lost, the next poll
			 * brings fresh ones */
	pthread_mutex_lock(&lv->mu);
	push_locked(lv, m);
	pthread_mutex_unlock(&lv->mu);
}

static void push_why(struct lv *lv, enum lv_msg_kind kind, const char *fmt,
		     ...) __attribute__((format(printf, 3, 4)));
static void push_why(struct lv *lv, enum lv_msg_kind kind, const char *fmt,
		     ...)
{
	struct lv_msg *m = msg_new(kind);
	va_list ap;

	if (!m)
		return;
	va_start(ap, fmt);
	vsnprintf(m->why, sizeof(m->why), fmt, ap);
	va_end(ap);
	push(lv, m);
}

static const char *lv_err(void)
{
	const char *s = virGetLastErrorMessage();

	return s && s[0] ? s : "unknown libvirt error";
}

/* snprintf for messages that may be cut (info.why is PK_BALLOON_WHY_MAX bytes). */
static void say(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* ---- libvirt callbacks (libvirt's event loop thread) -------------- */

static void flag_lost(struct lv *lv, const char *why)
{
	pthread_mutex_lock(&lv->mu);
	if (!lv->lost) {
		lv->lost = 1;
		say(lv->lost_why, sizeof(lv->lost_why), "%s", why);
	}
	pthread_cond_signal(&lv->cond);
	pthread_mutex_unlock(&lv->mu);
}

static void migrating(struct lv *lv, int on)
{
	struct lv_msg *m = msg_new(LV_MIGRATING);

	if (m)
		m->on = on;
	push(lv, m);
}

static int on_lifecycle(virConnectPtr c, virDomainPtr d, int event,
			int detail, void *opaque)
{
	struct lv *lv = opaque;

	(void)c;
	(void)d;
	switch (event) {
	case VIR_DOMAIN_EVENT_SUSPENDED:
		if (detail == VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED ||
		    detail == VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY)
			migrating(lv, 1);
		break;
	case VIR_DOMAIN_EVENT_STARTED:
		if (detail == VIR_DOMAIN_EVENT_STARTED_MIGRATED)
			migrating(lv, 1);
		break;
	case VIR_DOMAIN_EVENT_RESUMED:
		/* resumed after the migration, here or on failure at the
		 * source: either way it runs here now */
		if (detail != VIR_DOMAIN_EVENT_RESUMED_POSTCOPY)
			migrating(lv, 0);
		break;
	case VIR_DOMAIN_EVENT_STOPPED:
		flag_lost(lv, detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED
				      ? "the domain migrated away"
				      : "the domain stopped");
		break;
	case VIR_DOMAIN_EVENT_UNDEFINED:
		flag_lost(lv, "the domain was undefined");
		break;
	default:
		break;
	}
	return 0;
}

static void on_migration_iteration(virConnectPtr c, virDomainPtr d,
				   int iteration, void *opaque)
{
	(void)c;
	(void)d;
	(void)iteration;
	migrating(opaque, 1);
}

static void on_balloon(virConnectPtr c, virDomainPtr d,
		       unsigned long long actual_kib, void *opaque)
{
	struct lv_msg *m = msg_new(LV_BALLOON);

	(void)c;
	(void)d;
	if (m)
		m->actual = (int64_t)actual_kib * 1024;
	push(opaque, m);
}

static void on_close(virConnectPtr c, int reason, void *opaque)
{
	static const char *const why[] = { "an error", "end of file",
					   "a keepalive timeout",
					   "the client closing it" };

	(void)c;
	char text[96];
	say(text, sizeof(text), "libvirt closed the connection (%s)",
		 (unsigned)reason < 4 ? why[reason] : "unknown reason");
	flag_lost(opaque, text);
}

/* ---- the worker --------------------------------------------------- */

static void disconnect(struct lv *lv)
{
	if (!lv->conn)
		return;
	if (lv->cb_life >= 0)
		virConnectDomainEventDeregisterAny(lv->conn, lv->cb_life);
	if (lv->cb_balloon >= 0)
		virConnectDomainEventDeregisterAny(lv->conn, lv->cb_balloon);
	if (lv->cb_migr >= 0)
		virConnectDomainEventDeregisterAny(lv->conn, lv->cb_migr);
	if (lv->cb_close >= 0)
		virConnectUnregisterCloseCallback(lv->conn, on_close);
	lv->cb_life = lv->cb_balloon = lv->cb_migr = lv->cb_close = -1;
	if (lv->dom)
		virDomainFree(lv->dom);
	lv->dom = NULL;
	virConnectClose(lv->conn);
	lv->conn = NULL;
}

/* A domain event callback holding a reference, or -1. */
static int reg_event(struct lv *lv, int id, virConnectDomainEventGenericCallback cb)
{
	int rc;

	atomic_fetch_add(&lv->refs, 1);
	rc = virConnectDomainEventRegisterAny(lv->conn, lv->dom, id, cb, lv,
					      lv_unref_cb);
	if (rc < 0)
		lv_unref(lv);
	return rc;
}

/* 0 connected, or -1 with why. */
static int try_connect(struct lv *lv, char *why, size_t why_len)
{
	int active;

	lv->cb_life = lv->cb_balloon = lv->cb_migr = lv->cb_close = -1;
	lv->conn = virConnectOpen(lv->uri);
	if (!lv->conn) {
		say(why, why_len, "cannot connect to libvirt at %s: %s",
			 lv->uri, lv_err());
		return -1;
	}
	lv->dom = virDomainLookupByName(lv->conn, lv->dom_name);
	if (!lv->dom) {
		say(why, why_len, "cannot connect to libvirt at %s: "
			 "domain '%s': %s", lv->uri, lv->dom_name, lv_err());
		goto fail;
	}
	active = virDomainIsActive(lv->dom);
	if (active != 1) {
		say(why, why_len, "cannot connect to libvirt at %s: "
			 "domain '%s' %s", lv->uri, lv->dom_name,
			 active == 0 ? "is not running" : lv_err());
		goto fail;
	}
	/* Unsupported by local drivers: they need none. */
	virConnectSetKeepAlive(lv->conn, KEEPALIVE_S, KEEPALIVE_COUNT);
	/* No reference for it: libvirt calls it under the lock that
	 * virConnectUnregisterCloseCallback takes, so it is done with lv
	 * once that returns; and local drivers never keep it (nor call its
	 * freecb), so a reference would never come back. */
	lv->cb_close = virConnectRegisterCloseCallback(lv->conn, on_close, lv,
						       NULL);
	lv->cb_life = reg_event(lv, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
				VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle));
	lv->cb_balloon = reg_event(lv, VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE,
				   VIR_DOMAIN_EVENT_CALLBACK(on_balloon));
	lv->cb_migr = reg_event(lv, VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION,
				VIR_DOMAIN_EVENT_CALLBACK(on_migration_iteration));
	/* Drivers that lack it (or a guest without a balloon) still give
	 * actual; the failure only means no guest figures. */
	virDomainSetMemoryStatsPeriod(lv->dom, (int)((lv->period_ms + 999) / 1000),
				      VIR_DOMAIN_AFFECT_LIVE);
	return 0;
fail:
	disconnect(lv);
	return -1;
}

static int conn_gone(struct lv *lv)
{
	virErrorPtr e = virGetLastError();

	return virConnectIsAlive(lv->conn) != 1 ||
	       (e && e->code == VIR_ERR_NO_DOMAIN);
}

/* Stats into a message; 0, or -1 (why in a pushed message, or lost). */
static int read_stats(struct lv *lv, uint64_t *actual_kib)
{
	virDomainMemoryStatStruct st[VIR_DOMAIN_MEMORY_STAT_NR];
	struct lv_msg *m;
	int n, i;

	n = virDomainMemoryStats(lv->dom, st, VIR_DOMAIN_MEMORY_STAT_NR, 0);
	if (n < 0) {
		if (conn_gone(lv))
			return -1;
		push_why(lv, LV_STATS_FAILED, "reading the memory stats of "
			 "domain '%s' failed: %s", lv->dom_name, lv_err());
		return 0;
	}
	m = msg_new(LV_STATS);
	if (!m)
		return 0;
	m->actual = m->total = m->free_ = m->avail = -1;
	m->swap_in = m->swap_out = m->major = m->minor = -1;
	for (i = 0; i < n; i++) {
		int64_t kib = (int64_t)st[i].val;

		switch (st[i].tag) {
		case VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON:
			m->actual = kib * 1024;
			break;
		case VIR_DOMAIN_MEMORY_STAT_AVAILABLE: /* the guest's MemTotal */
			m->total = kib * 1024;
			break;
		case VIR_DOMAIN_MEMORY_STAT_UNUSED: /* MemFree */
			m->free_ = kib * 1024;
			break;
		case VIR_DOMAIN_MEMORY_STAT_USABLE: /* MemAvailable */
			m->avail = kib * 1024;
			break;
		case VIR_DOMAIN_MEMORY_STAT_SWAP_IN:
			m->swap_in = kib * 1024;
			break;
		case VIR_DOMAIN_MEMORY_STAT_SWAP_OUT:
			m->swap_out = kib * 1024;
			break;
		case VIR_DOMAIN_MEMORY_STAT_MAJOR_FAULT:
			m->major = (int64_t)st[i].val;
			break;
		case VIR_DOMAIN_MEMORY_STAT_MINOR_FAULT:
			m->minor = (int64_t)st[i].val;
			break;
		default:
			break;
		}
	}
	if (m->actual < 0) {
		virDomainInfo info;

		if (virDomainGetInfo(lv->dom, &info) == 0)
			m->actual = (int64_t)info.memory * 1024;
		else if (conn_gone(lv)) {
			free(m);
			return -1;
		}
	}
	*actual_kib = m->actual >= 0 ? (uint64_t)m->actual / 1024 : 0;
	push(lv, m);
	return 0;
}

static void set_target(struct lv *lv, uint64_t bytes)
{
	struct lv_msg *m;

	if (virDomainSetMemoryFlags(lv->dom, (unsigned long)(bytes / 1024),
				    VIR_DOMAIN_AFFECT_LIVE) < 0) {
		push_why(lv, LV_TARGET_FAILED, "libvirt refused the target "
			 "%llu MiB for domain '%s': %s",
			 (unsigned long long)(bytes >> 20), lv->dom_name,
			 lv_err());
		return;
	}
	m = msg_new(LV_TARGET_OK);
	if (m)
		m->target_bytes = bytes;
	push(lv, m);
}

static struct timespec abs_mono(uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000),
			       .tv_nsec = (long)(ms % 1000) * 1000000L };
	return ts;
}

static void *worker(void *arg)
{
	struct lv *lv = arg;
	unsigned backoff = RETRY_FIRST_MS;
	uint64_t retry_at = 0, next_stats = 0, chase_until = 0;
	uint64_t chase_kib = 0;
	char why[PK_BALLOON_WHY_MAX];

	pthread_mutex_lock(&lv->mu);
	while (!lv->stop) {
		uint64_t now = now_ms();

		if (lv->conn && lv->lost) {
			say(why, sizeof(why), "%s", lv->lost_why);
			lv->lost = 0;
			pthread_mutex_unlock(&lv->mu);
			disconnect(lv);
			goto down;
		}
		if (!lv->conn && now >= retry_at) {
			pthread_mutex_unlock(&lv->mu);
			if (try_connect(lv, why, sizeof(why)) < 0)
				goto down;
			backoff = RETRY_FIRST_MS;
			push(lv, msg_new(LV_UP));
			next_stats = 0;
			pthread_mutex_lock(&lv->mu);
			lv->lost = 0;
			continue;
		}
		if (lv->conn && lv->have_target) {
			uint64_t t = lv->target_bytes;

			lv->have_target = 0;
			pthread_mutex_unlock(&lv->mu);
			set_target(lv, t);
			chase_kib = t / 1024;
			chase_until = now_ms() + CHASE_FOR_MS;
			next_stats = 0;
			pthread_mutex_lock(&lv->mu);
			continue;
		}
		if (lv->conn && now >= next_stats) {
			uint64_t actual_kib = 0;
			int rc;

			pthread_mutex_unlock(&lv->mu);
			rc = read_stats(lv, &actual_kib);
			now = now_ms();
			if (rc < 0) {
				say(why, sizeof(why), "lost domain '%s' at "
					 "%s: %s", lv->dom_name, lv->uri,
					 lv_err());
				disconnect(lv);
				goto down;
			}
			if (actual_kib == chase_kib)
				chase_until = 0;
			next_stats = now + (now < chase_until
						    ? CHASE_MS : lv->period_ms);
			pthread_mutex_lock(&lv->mu);
			continue;
		}
		{
			struct timespec ts =
				abs_mono(lv->conn ? next_stats : retry_at);
			pthread_cond_timedwait(&lv->cond, &lv->mu, &ts);
		}
		continue;
down:
		{
			struct lv_msg *m = msg_new(LV_DOWN);

			if (m) {
				say(m->why, sizeof(m->why), "%s", why);
				m->retry_ms = backoff;
			}
			push(lv, m);
		}
		retry_at = now_ms() + backoff;
		backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
		pthread_mutex_lock(&lv->mu);
	}
	pthread_mutex_unlock(&lv->mu);
	disconnect(lv);
	lv_unref(lv);
	return NULL;
}

/* ---- the owner's side --------------------------------------------- */

static int open_(struct pk_balloon *b, char *err, size_t err_len)
{
	const char *bar = strchr(b->channel, '|');
	pthread_condattr_t ca;
	struct lv *lv;
	int rc;

	if (!bar || bar == b->channel || !bar[1] || strchr(bar + 1, '|')) {
		snprintf(err, err_len, "a libvirt balloon channel is "
			 "\"URI|domain\", not \"%s\"", b->channel);
		return -EINVAL;
	}
	pthread_once(&ev_once, ev_init);
	if (ev_rc < 0) {
		snprintf(err, err_len, "libvirt's event loop cannot start: %s",
			 strerror(-ev_rc));
		return ev_rc;
	}
	lv = calloc(1, sizeof(*lv));
	if (!lv)
		return -ENOMEM;
	snprintf(lv->uri, sizeof(lv->uri), "%.*s", (int)(bar - b->channel),
		 b->channel);
	snprintf(lv->dom_name, sizeof(lv->dom_name), "%s", bar + 1);
	lv->period_ms = b->cfg.stats_period_ms;
	lv->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (lv->efd < 0) {
		rc = -errno;
		free(lv);
		snprintf(err, err_len, "eventfd: %s", strerror(-rc));
		return rc;
	}
	pthread_mutex_init(&lv->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&lv->cond, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&lv->refs, 2); /* the owner and the worker */
	rc = -pthread_create(&lv->thread, NULL, worker, lv);
	if (rc < 0) {
		close(lv->efd);
		lv->efd = -1;
		atomic_store(&lv->refs, 1);
		lv_unref(lv);
		snprintf(err, err_len, "cannot start the libvirt thread: %s",
			 strerror(-rc));
		return rc;
	}
	b->drv = lv;
	return 0;
}

static void close_(struct pk_balloon *b)
{
	struct lv *lv = b->drv;
	struct timespec ts;
	int rc;

	pthread_mutex_lock(&lv->mu);
	lv->stop = 1;
	close(lv->efd);
	lv->efd = -1;
	pthread_cond_signal(&lv->cond);
	pthread_mutex_unlock(&lv->mu);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)(CLOSE_WAIT_MS % 1000) * 1000000L;
	ts.tv_sec += CLOSE_WAIT_MS / 1000 + ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	rc = pthread_timedjoin_np(lv->thread, NULL, &ts);
	if (rc)
		pthread_detach(lv->thread); /* see the top of the file */
	lv_unref(lv);
	b->drv = NULL;
}

static int fd_(const struct pk_balloon *b, uint32_t *events)
{
	const struct lv *lv = b->drv;

	*events = EPOLLIN;
	return lv->efd; /* written on the owner's thread only */
}

static void set_actual(struct pk_balloon *b, int64_t actual)
{
	if (actual < 0 || (uint64_t)actual == b->info.actual_bytes)
		return;
	b->info.actual_bytes = (uint64_t)actual;
	pk_balloon_emit(b, PK_BLN_EV_CHANGED);
}

static void apply(struct pk_balloon *b, struct lv *lv, struct lv_msg *m)
{
	struct pk_balloon_info *in = &b->info;

	switch (m->kind) {
	case LV_UP:
		pk_balloon_emit(b, PK_BLN_EV_UP);
		break;
	case LV_DOWN:
		pk_balloon_why(b, "%s (retry in %u s)", m->why,
			       m->retry_ms / 1000);
		lv->sent_ms = 0;
		lv->why_stats = 0;
		pk_balloon_emit(b, PK_BLN_EV_GONE);
		break;
	case LV_STATS:
		in->total_bytes = m->total;
		in->free_bytes = m->free_;
		in->available_bytes = m->avail;
		in->swap_in_bytes = m->swap_in;
		in->swap_out_bytes = m->swap_out;
		in->major_faults = m->major;
		in->minor_faults = m->minor;
		in->stats_ms = now_ms();
		if (lv->why_stats) /* the stats failure is over */
			in->why[0] = '\0';
		lv->why_stats = 0;
		set_actual(b, m->actual);
		pk_balloon_emit(b, PK_BLN_EV_STATS);
		break;
	case LV_STATS_FAILED:
		pk_balloon_why(b, "%s", m->why);
		lv->why_stats = 1;
		break;
	case LV_TARGET_OK:
		lv->sent_ms = 0;
		if (!lv->why_stats) /* a refused target's why is over */
			in->why[0] = '\0';
		break;
	case LV_TARGET_FAILED:
		lv->sent_ms = 0;
		pk_balloon_why(b, "%s", m->why);
		lv->why_stats = 0;
		pk_balloon_emit(b, PK_BLN_EV_FAILED);
		break;
	case LV_MIGRATING:
		if (m->on && in->link == PK_BLN_READY) {
			in->link = PK_BLN_MIGRATING;
			pk_balloon_emit(b, PK_BLN_EV_MIGRATION);
		} else if (!m->on && in->link == PK_BLN_MIGRATING) {
			in->link = PK_BLN_READY;
			pk_balloon_emit(b, PK_BLN_EV_MIGRATION);
		}
		break;
	case LV_BALLOON:
		set_actual(b, m->actual);
		break;
	}
}

static void io_(struct pk_balloon *b, uint32_t events)
{
	struct lv *lv = b->drv;
	struct lv_msg *list;
	uint64_t n;

	(void)events;
	if (read(lv->efd, &n, sizeof(n)) < 0) {
		/* EAGAIN: nothing new, or already drained */
	}
	pthread_mutex_lock(&lv->mu);
	list = lv->head;
	lv->head = lv->tail = NULL;
	pthread_mutex_unlock(&lv->mu);
	while (list) {
		struct lv_msg *m = list;

		list = m->next;
		apply(b, lv, m);
		free(m);
	}
}

static uint64_t tick_(struct pk_balloon *b, uint64_t now)
{
	struct lv *lv = b->drv;

	if (!lv->sent_ms)
		return now + b->cfg.timeout_ms;
	if (now >= lv->sent_ms + b->cfg.timeout_ms) {
		if (!lv->timeout_told) {
			lv->timeout_told = 1;
			pk_balloon_why(b, "libvirt has not answered the target "
				       "for %llu ms",
				       (unsigned long long)(now - lv->sent_ms));
			pk_balloon_emit(b, PK_BLN_EV_FAILED);
		}
		return now + b->cfg.timeout_ms;
	}
	return lv->sent_ms + b->cfg.timeout_ms;
}

static int send_(struct pk_balloon *b, uint64_t bytes)
{
	struct lv *lv = b->drv;

	pthread_mutex_lock(&lv->mu);
	lv->target_bytes = bytes;
	lv->have_target = 1;
	pthread_cond_signal(&lv->cond);
	pthread_mutex_unlock(&lv->mu);
	lv->sent_ms = now_ms();
	lv->timeout_told = 0;
	return 0;
}

const struct pk_balloon_ops pk_balloon_libvirt_ops = {
	.open = open_,
	.close = close_,
	.fd = fd_,
	.io = io_,
	.tick = tick_,
	.send_target = send_,
};
