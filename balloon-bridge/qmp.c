/*
 * qmp.c - the balloon bridge's QMP driver: QEMU's monitor socket.
 *
 * What: drives QEMU's virtio balloon through its QMP monitor (a UNIX
 * stream socket, channel = its path): the greeting, qmp_capabilities,
 * query-balloon (an error there, "No balloon device has been activated",
 * means no balloon: PK_BLN_EV_NO_DRIVER), the device's QOM path (qom-list
 * of /machine/peripheral, then /machine/peripheral-anon, for a child
 * whose type is virtio-balloon-*), qom-set guest-stats-polling-interval
 * (seconds) on it, then PK_BLN_EV_UP.  From then on: `balloon` {value:
 * bytes} for a target, qom-get guest-stats every stats period followed
 * by query-balloon, and the BALLOON_CHANGE event for the actual size
 * (PK_BLN_EV_CHANGED).  The stat names are QEMU's (stat-swap-in,
 * stat-swap-out, stat-major-faults, stat-minor-faults, stat-free-memory,
 * stat-total-memory, stat-available-memory; stat-oom-kills and
 * stat-alloc-stalls only from QEMU 9.1); a figure QEMU leaves out or
 * reports as -1 stays -1.
 *
 * How: a state machine over one non-blocking socket (json_lines.h):
 * IDLE (waiting to retry) -> CONNECTING -> GREETING -> SETUP (one
 * command at a time) -> READY or NO_DRIVER.  Every request carries an
 * "id" and has a deadline of cfg.timeout_ms; at most one is in flight,
 * and the wanted ones (a target, stats, a query) wait as flags, the
 * latest target winning.  A reply late past its deadline, a greeting that
 * does not come, garbage (not one JSON object, a line over 64 KiB) or the
 * socket closed (mid-reply or not) closes the channel with info.why and
 * PK_BLN_EV_GONE; the driver reconnects after a back-off of 1 s doubling
 * to 30 s (reset once READY), which also covers QEMU restarting its
 * monitor.
 *
 * Why: the owner's loop serves page faults; nothing here may wait for
 * QEMU.  Each call does a bounded amount of work: at most QMP_READS recvs
 * per pk_balloon_io(), one connect per tick.
 */
#include "balloon-bridge/driver.h"
#include "balloon-bridge/json_lines.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define QMP_MAX_LINE (64u * 1024u)
#define QMP_READS 8
#define BACKOFF_MIN_MS 1000u
#define BACKOFF_MAX_MS 30000u

enum qmp_state { Q_IDLE, Q_CONNECTING, Q_GREETING, Q_SETUP, Q_READY,
		 Q_NO_DRIVER };

enum qmp_req { R_NONE, R_CAPS, R_QUERY, R_LIST_PERIPH, R_LIST_ANON,
	       R_SET_INTERVAL, R_BALLOON, R_STATS };

static const char *const req_cmd[] = {
	[R_NONE] = "", [R_CAPS] = "qmp_capabilities",
	[R_QUERY] = "query-balloon", [R_LIST_PERIPH] = "qom-list",
	[R_LIST_ANON] = "qom-list", [R_SET_INTERVAL] = "qom-set",
	[R_BALLOON] = "balloon", [R_STATS] = "qom-get",
};

struct qmp {
	struct pk_json_lines jl;
	enum qmp_state st;
	enum qmp_req inflight;
	int64_t id;		/* of the request in flight */
	int64_t next_id;
	uint64_t deadline;	/* connect, greeting or the request in flight */
	uint64_t retry_at;	/* Q_IDLE: when to connect again */
	unsigned backoff_ms;
	uint64_t next_poll;	/* READY: stats; NO_DRIVER: query-balloon */
	char dev[160];		/* QOM path of the balloon device, "" none */
	int no_stats;		/* the device's stats cannot be had */
	int want_target, want_stats, want_query;
	uint64_t target;
	int64_t last_update;	/* guest-stats "last-update" seen */
	int in_call;		/* inside pk_balloon_io() or _tick() */
	char broken[160];	/* a send failed outside them: io drops */
};

static struct qmp *Q(const struct pk_balloon *b)
{
	return b->drv;
}

static void start_connect(struct pk_balloon *b, uint64_t now);

/* Close the channel, say why, retry after the back-off. */
static void drop(struct pk_balloon *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void drop(struct pk_balloon *b, const char *fmt, ...)
{
	struct qmp *q = Q(b);
	int was_open = q->st != Q_IDLE;
	va_list ap;
	char msg[sizeof(b->info.why)];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pk_balloon_why(b, "QMP %s: %s", b->channel, msg);
	pk_jl_close(&q->jl);
	/* A target sent but not answered is sent again too. */
	if (q->inflight == R_BALLOON)
		q->want_target = 1;
	q->st = Q_IDLE;
	q->inflight = R_NONE;
	q->want_stats = q->want_query = 0;
	q->retry_at = pk_balloon_now_ms() + q->backoff_ms;
	q->backoff_ms = q->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
							  : q->backoff_ms * 2;
	/* A target not yet sent is sent again once the link is back. */
	if (q->want_target) {
		b->pending_target = q->target;
		q->want_target = 0;
	}
	if (was_open)
		pk_balloon_emit(b, PK_BLN_EV_GONE);
}

static int send_req(struct pk_balloon *b, enum qmp_req r,
		    json_object *args)
{
	struct qmp *q = Q(b);
	json_object *o = json_object_new_object();
	char why[96];
	int rc;

	json_object_object_add(o, "execute",
			       json_object_new_string(req_cmd[r]));
	if (args)
		json_object_object_add(o, "arguments", args);
	q->id = ++q->next_id;
	json_object_object_add(o, "id", json_object_new_int64(q->id));
	rc = pk_jl_send(&q->jl, o, why, sizeof(why));
	json_object_put(o);
	if (rc < 0 && q->in_call) {
		drop(b, "sending %s: %s", req_cmd[r], why);
		return rc;
	}
	if (rc < 0) {
		/* Events come only from io and tick: the fd asks for
		 * EPOLLOUT, which a broken socket reports at once. */
		snprintf(q->broken, sizeof(q->broken), "sending %s: %s",
			 req_cmd[r], why);
		return rc;
	}
	q->inflight = r;
	q->deadline = pk_balloon_now_ms() + b->cfg.timeout_ms;
	return 0;
}

static void send_list(struct pk_balloon *b, enum qmp_req r, const char *path)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, "path", json_object_new_string(path));
	send_req(b, r, a);
}

static void send_interval(struct pk_balloon *b)
{
	struct qmp *q = Q(b);
	json_object *a = json_object_new_object();
	unsigned secs = (b->cfg.stats_period_ms + 999) / 1000;

	json_object_object_add(a, "path", json_object_new_string(q->dev));
	json_object_object_add(a, "property", json_object_new_string(
				       "guest-stats-polling-interval"));
	json_object_object_add(a, "value", json_object_new_int64(secs));
	send_req(b, R_SET_INTERVAL, a);
}

/* The next wanted request, if none is in flight. */
static void kick(struct pk_balloon *b)
{
	struct qmp *q = Q(b);

	if (q->inflight != R_NONE || q->st != Q_READY)
		return;
	if (q->want_target) {
		json_object *a = json_object_new_object();

		q->want_target = 0;
		json_object_object_add(a, "value",
				       json_object_new_int64((int64_t)q->target));
		send_req(b, R_BALLOON, a);
	} else if (q->want_stats && !q->no_stats) {
		json_object *a = json_object_new_object();

		q->want_stats = 0;
		q->want_query = 1;
		json_object_object_add(a, "path", json_object_new_string(q->dev));
		json_object_object_add(a, "property",
				       json_object_new_string("guest-stats"));
		send_req(b, R_STATS, a);
	} else if (q->want_query || q->want_stats) {
		q->want_query = q->want_stats = 0;
		send_req(b, R_QUERY, NULL);
	}
}

static void become_ready(struct pk_balloon *b)
{
	struct qmp *q = Q(b);

	q->st = Q_READY;
	q->backoff_ms = BACKOFF_MIN_MS;
	q->want_stats = 1;
	q->next_poll = pk_balloon_now_ms() + b->cfg.stats_period_ms;
	pk_balloon_emit(b, PK_BLN_EV_UP);
	kick(b);
}

static void set_actual(struct pk_balloon *b, json_object *v)
{
	int64_t a;

	if (!v || !json_object_is_type(v, json_type_int))
		return;
	a = json_object_get_int64(v);
	if (a <= 0 || (uint64_t)a == b->info.actual_bytes)
		return;
	b->info.actual_bytes = (uint64_t)a;
	if (b->info.link == PK_BLN_READY)
		pk_balloon_emit(b, PK_BLN_EV_CHANGED);
}

/* A QMP error's "class: desc", for why. */
static void error_text(json_object *err, char *out, size_t len,
		       const char **cls)
{
	json_object *c = NULL, *d = NULL;

	json_object_object_get_ex(err, "class", &c);
	json_object_object_get_ex(err, "desc", &d);
	*cls = c && json_object_is_type(c, json_type_string) ?
	       json_object_get_string(c) : "";
	snprintf(out, len, "%s%s%s", *cls, **cls ? ": " : "",
		 d && json_object_is_type(d, json_type_string) ?
		 json_object_get_string(d) : json_object_to_json_string(err));
}

/* A child<virtio-balloon-...> in a qom-list reply, as base/NAME. */
static int find_balloon(json_object *list, const char *base, char *out,
			size_t len)
{
	size_t n;

	if (!json_object_is_type(list, json_type_array))
		return 0;
	n = json_object_array_length(list);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(list, i), *nm, *ty;

		if (!json_object_object_get_ex(e, "name", &nm) ||
		    !json_object_object_get_ex(e, "type", &ty) ||
		    !json_object_is_type(nm, json_type_string) ||
		    !json_object_is_type(ty, json_type_string))
			continue;
		if (strncmp(json_object_get_string(ty), "child<virtio-balloon",
			    strlen("child<virtio-balloon")))
			continue;
		if ((size_t)snprintf(out, len, "%s/%s", base,
				     json_object_get_string(nm)) >= len)
			continue;
		return 1;
	}
	return 0;
}

static int64_t stat_of(json_object *stats, const char *name)
{
	json_object *v;

	if (!json_object_object_get_ex(stats, name, &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	return json_object_get_int64(v);
}

static void got_stats(struct pk_balloon *b, json_object *ret)
{
	struct qmp *q = Q(b);
	struct pk_balloon_info *in = &b->info;
	json_object *stats = NULL, *lu = NULL;
	int64_t last;

	json_object_object_get_ex(ret, "last-update", &lu);
	json_object_object_get_ex(ret, "stats", &stats);
	last = lu && json_object_is_type(lu, json_type_int) ?
	       json_object_get_int64(lu) : 0;
	/* 0: the guest has not reported yet; the same: nothing new. */
	if (!stats || !json_object_is_type(stats, json_type_object) ||
	    last <= 0 || last == q->last_update)
		return;
	q->last_update = last;
	in->swap_in_bytes = stat_of(stats, "stat-swap-in");
	in->swap_out_bytes = stat_of(stats, "stat-swap-out");
	in->major_faults = stat_of(stats, "stat-major-faults");
	in->minor_faults = stat_of(stats, "stat-minor-faults");
	in->free_bytes = stat_of(stats, "stat-free-memory");
	in->total_bytes = stat_of(stats, "stat-total-memory");
	in->available_bytes = stat_of(stats, "stat-available-memory");
	in->oom_kills = stat_of(stats, "stat-oom-kills");
	in->alloc_stalls = stat_of(stats, "stat-alloc-stalls");
	in->stats_ms = pk_balloon_now_ms();
	pk_balloon_emit(b, PK_BLN_EV_STATS);
}

static void no_driver(struct pk_balloon *b, const char *text)
{
	struct qmp *q = Q(b);
	int news = q->st != Q_NO_DRIVER;

	q->st = Q_NO_DRIVER;
	q->backoff_ms = BACKOFF_MIN_MS;
	q->next_poll = pk_balloon_now_ms() + b->cfg.stats_period_ms;
	pk_balloon_why(b, "QMP %s: query-balloon: %s", b->channel, text);
	if (news)
		pk_balloon_emit(b, PK_BLN_EV_NO_DRIVER);
}

static void on_reply(struct pk_balloon *b, json_object *o)
{
	struct qmp *q = Q(b);
	json_object *id = NULL, *ret = NULL, *err = NULL;
	enum qmp_req r = q->inflight;
	char text[112];
	const char *cls = "";

	json_object_object_get_ex(o, "id", &id);
	json_object_object_get_ex(o, "return", &ret);
	json_object_object_get_ex(o, "error", &err);
	if (r == R_NONE || !id || !json_object_is_type(id, json_type_int) ||
	    json_object_get_int64(id) != q->id)
		return;	/* not ours (QEMU answers errors it cannot tie
			 * to a request without an id): ignored */
	q->inflight = R_NONE;
	if (err)
		error_text(err, text, sizeof(text), &cls);
	switch (r) {
	case R_CAPS:
		if (err) {
			drop(b, "qmp_capabilities: %s", text);
			return;
		}
		send_req(b, R_QUERY, NULL);
		return;
	case R_QUERY: {
		json_object *act = NULL;

		if (err) {
			no_driver(b, text);
			return;
		}
		json_object_object_get_ex(ret, "actual", &act);
		set_actual(b, act);
		if (q->st == Q_SETUP || q->st == Q_NO_DRIVER) {
			q->st = Q_SETUP;
			if (q->dev[0])
				send_interval(b);
			else
				send_list(b, R_LIST_PERIPH, "/machine/peripheral");
			return;
		}
		break;
	}
	case R_LIST_PERIPH:
	case R_LIST_ANON:
		if (!err && find_balloon(ret, r == R_LIST_PERIPH ?
					 "/machine/peripheral" :
					 "/machine/peripheral-anon",
					 q->dev, sizeof(q->dev))) {
			send_interval(b);
			return;
		}
		if (r == R_LIST_PERIPH) {
			send_list(b, R_LIST_ANON, "/machine/peripheral-anon");
			return;
		}
		q->no_stats = 1;
		become_ready(b);
		pk_balloon_why(b, "QMP %s: no virtio-balloon device under "
			       "/machine/peripheral*: no guest stats",
			       b->channel);
		return;
	case R_SET_INTERVAL:
		q->no_stats = !!err;
		become_ready(b);
		if (err)
			pk_balloon_why(b, "QMP %s: qom-set %s "
				       "guest-stats-polling-interval: %s",
				       b->channel, q->dev, text);
		return;
	case R_BALLOON:
		if (err) {
			pk_balloon_why(b, "QMP %s: balloon to %llu MiB: %s",
				       b->channel, (unsigned long long)
				       (q->target >> 20), text);
			pk_balloon_emit(b, PK_BLN_EV_FAILED);
		}
		break;
	case R_STATS:
		if (err) {
			/* The device went (hot-unplugged): find it again on
			 * the next connect; the balloon may still answer. */
			q->no_stats = 1;
			q->dev[0] = '\0';
			pk_balloon_why(b, "QMP %s: qom-get guest-stats: %s",
				       b->channel, text);
		} else {
			got_stats(b, ret);
		}
		break;
	default:
		break;
	}
	kick(b);
}

static void on_message(struct pk_balloon *b, json_object *o)
{
	struct qmp *q = Q(b);
	json_object *v;

	if (q->st == Q_GREETING) {
		if (!json_object_object_get_ex(o, "QMP", &v)) {
			drop(b, "expected the QMP greeting, got %.60s",
			     json_object_to_json_string(o));
			return;
		}
		q->st = Q_SETUP;
		send_req(b, R_CAPS, NULL);
		return;
	}
	if (json_object_object_get_ex(o, "event", &v)) {
		json_object *data = NULL, *act = NULL;

		if (!json_object_is_type(v, json_type_string) ||
		    strcmp(json_object_get_string(v), "BALLOON_CHANGE"))
			return;
		json_object_object_get_ex(o, "data", &data);
		if (data)
			json_object_object_get_ex(data, "actual", &act);
		set_actual(b, act);
		return;
	}
	if (json_object_object_get_ex(o, "return", &v) ||
	    json_object_object_get_ex(o, "error", &v))
		on_reply(b, o);
	/* Anything else: unknown keys are ignored. */
}

static void start_connect(struct pk_balloon *b, uint64_t now)
{
	struct qmp *q = Q(b);
	char why[sizeof(b->info.why) - 32];
	int fd, rc = pk_jl_connect_unix(b->channel,
					 b->cfg.check_owner ? (long)b->cfg.owner : -1,
					 &fd, why, sizeof(why));

	if (rc < 0) {
		pk_balloon_why(b, "QMP: %s (retry in %u ms)", why,
			       q->backoff_ms);
		q->retry_at = now + q->backoff_ms;
		q->backoff_ms = q->backoff_ms * 2 > BACKOFF_MAX_MS ?
				BACKOFF_MAX_MS : q->backoff_ms * 2;
		return;
	}
	pk_jl_attach(&q->jl, fd);
	q->st = rc == 1 ? Q_CONNECTING : Q_GREETING;
	q->deadline = now + b->cfg.timeout_ms;
	q->inflight = R_NONE;
	q->last_update = 0;
	q->no_stats = 0;
	q->broken[0] = '\0';
}

static int qmp_open(struct pk_balloon *b, char *err, size_t err_len)
{
	struct qmp *q = calloc(1, sizeof(*q));

	if (!q || pk_jl_init(&q->jl, QMP_MAX_LINE) < 0) {
		free(q);
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	/* sun_path holds 107 bytes: a longer path can never connect. */
	if (strlen(b->channel) > 107) {
		pk_jl_free(&q->jl);
		free(q);
		snprintf(err, err_len, "the QMP socket path is too long "
			 "(%zu bytes, at most 107)", strlen(b->channel));
		return -EINVAL;
	}
	b->drv = q;
	q->backoff_ms = BACKOFF_MIN_MS;
	start_connect(b, pk_balloon_now_ms());
	return 0;
}

static void qmp_close(struct pk_balloon *b)
{
	struct qmp *q = Q(b);

	if (!q)
		return;
	pk_jl_free(&q->jl);
	free(q);
	b->drv = NULL;
}

static int qmp_fd(const struct pk_balloon *b, uint32_t *events)
{
	struct qmp *q = Q(b);

	*events = 0;
	if (q->st == Q_IDLE || q->jl.fd < 0)
		return -1;
	if (q->st == Q_CONNECTING) {
		*events = EPOLLOUT;
		return q->jl.fd;
	}
	*events = EPOLLIN | (pk_jl_want_write(&q->jl) || q->broken[0] ?
			     EPOLLOUT : 0);
	return q->jl.fd;
}

static void qmp_io_(struct pk_balloon *b, uint32_t events);

static void qmp_io(struct pk_balloon *b, uint32_t events)
{
	struct qmp *q = Q(b);

	if (q->st == Q_IDLE)
		return;
	q->in_call = 1;
	qmp_io_(b, events);
	q->in_call = 0;
}

static void qmp_io_(struct pk_balloon *b, uint32_t events)
{
	struct qmp *q = Q(b);
	char why[sizeof(b->info.why) - 32];
	json_object *o;

	if (q->broken[0]) {
		drop(b, "%s", q->broken);
		return;
	}
	if (q->st == Q_CONNECTING) {
		if (pk_jl_connected(q->jl.fd, why, sizeof(why)) < 0) {
			drop(b, "%s", why);
			return;
		}
		q->st = Q_GREETING;
		q->deadline = pk_balloon_now_ms() + b->cfg.timeout_ms;
		return;
	}
	if ((events & EPOLLOUT) && pk_jl_flush(&q->jl, why, sizeof(why)) < 0) {
		drop(b, "%s", why);
		return;
	}
	for (int i = 0; i < QMP_READS; i++) {
		int rc = pk_jl_read(&q->jl, why, sizeof(why)), got;

		while ((got = pk_jl_next(&q->jl, &o, why, sizeof(why))) == 1) {
			on_message(b, o);
			json_object_put(o);
			if (q->st == Q_IDLE)	/* dropped meanwhile */
				return;
		}
		if (got < 0) {
			drop(b, "garbage from QEMU: %s", why);
			return;
		}
		if (rc == -EPIPE) {
			size_t part = pk_jl_pending_in(&q->jl);

			if (part)
				drop(b, "QEMU closed the socket mid-reply "
				     "(%zu bytes of a line unfinished)", part);
			else if (q->inflight != R_NONE)
				drop(b, "QEMU closed the socket with %s "
				     "unanswered", req_cmd[q->inflight]);
			else
				drop(b, "QEMU closed the socket");
			return;
		}
		if (rc < 0) {
			drop(b, "%s", why);
			return;
		}
		if (rc == 0)
			break;
	}
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t qmp_tick_(struct pk_balloon *b, uint64_t now);

static uint64_t qmp_tick(struct pk_balloon *b, uint64_t now)
{
	struct qmp *q = Q(b);
	uint64_t next;

	q->in_call = 1;
	next = qmp_tick_(b, now);
	q->in_call = 0;
	return next;
}

static uint64_t qmp_tick_(struct pk_balloon *b, uint64_t now)
{
	struct qmp *q = Q(b);
	uint64_t next = now + 60000;

	if (q->broken[0] && q->st != Q_IDLE) {
		drop(b, "%s", q->broken);
		return q->retry_at;
	}
	if (q->st == Q_IDLE && now >= q->retry_at)
		start_connect(b, now);
	if (q->st == Q_IDLE)
		return q->retry_at;
	if ((q->st == Q_CONNECTING || q->st == Q_GREETING) &&
	    now >= q->deadline) {
		drop(b, q->st == Q_CONNECTING ?
		     "connect took over %u ms" :
		     "no QMP greeting within %u ms", b->cfg.timeout_ms);
		return q->retry_at;
	}
	if (q->inflight != R_NONE && now >= q->deadline) {
		drop(b, "no reply to %s within %u ms", req_cmd[q->inflight],
		     b->cfg.timeout_ms);
		return q->retry_at;
	}
	if ((q->st == Q_READY || q->st == Q_NO_DRIVER) && now >= q->next_poll) {
		q->next_poll = now + b->cfg.stats_period_ms;
		if (q->st == Q_READY) {
			q->want_stats = 1;
			kick(b);
		} else if (q->inflight == R_NONE) {
			send_req(b, R_QUERY, NULL);
		}
		if (q->st == Q_IDLE)
			return q->retry_at;
	}
	if (q->st == Q_READY || q->st == Q_NO_DRIVER)
		next = earliest(next, q->next_poll);
	if (q->st == Q_CONNECTING || q->st == Q_GREETING ||
	    q->inflight != R_NONE)
		next = earliest(next, q->deadline);
	return next;
}

static int qmp_send_target(struct pk_balloon *b, uint64_t bytes)
{
	struct qmp *q = Q(b);

	if (q->st != Q_READY)
		return -ENOTCONN;
	q->target = bytes;
	q->want_target = 1;
	kick(b);
	return 0;
}

const struct pk_balloon_ops pk_balloon_qmp_ops = {
	.open = qmp_open,
	.close = qmp_close,
	.fd = qmp_fd,
	.io = qmp_io,
	.tick = qmp_tick,
	.send_target = qmp_send_target,
};
