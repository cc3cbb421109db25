/*
 * lab.c - the balloon bridge's lab driver: pk-guestsim's balloon socket.
 *
 * What: the daemon's side of the lab balloon protocol (README.md, version
 * 1): connect to the UNIX socket the lab guest listens on (channel = its
 * path), take its greeting {"lab-balloon": 1, "ram", "actual"}, then
 * PK_BLN_EV_UP; "set-target" for a target (a refusal: PK_BLN_EV_FAILED),
 * "stats" every stats period (PK_BLN_EV_STATS), the guest's "balloon"
 * events (PK_BLN_EV_CHANGED) and "stalled" (info.stalled, shortfall,
 * PK_BLN_EV_STALLED).
 *
 * How: the same shape as qmp.c over json_lines.h: IDLE (waiting to
 * retry) -> CONNECTING -> HELLO -> READY.  Replies carry the command's
 * name ("return": "set-target"), so one request is in flight at a time,
 * with a deadline of cfg.timeout_ms; wanted requests wait as flags, the
 * latest target winning.  No greeting in time, a reply too late, garbage
 * (not one JSON object, a line over 4096 bytes, a greeting of another
 * version) or the socket closed closes the channel with info.why and
 * PK_BLN_EV_GONE, and the driver reconnects after a back-off of 1 s
 * doubling to 30 s (reset once READY).
 *
 * Why: the lab guest is a process the owner does not trust to behave:
 * nothing it does may stall the loop that serves its faults.
 */
#include "balloon-bridge/driver.h"
#include "balloon-bridge/json_lines.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define LAB_MAX_LINE 4096u
#define LAB_READS 8
#define BACKOFF_MIN_MS 1000u
#define BACKOFF_MAX_MS 30000u

enum lab_state { L_IDLE, L_CONNECTING, L_HELLO, L_READY };
enum lab_req { LR_NONE, LR_TARGET, LR_STATS };

static const char *const lab_cmd[] = {
	[LR_NONE] = "", [LR_TARGET] = "set-target", [LR_STATS] = "stats",
};

struct lab {
	struct pk_json_lines jl;
	enum lab_state st;
	enum lab_req inflight;
	uint64_t deadline;
	uint64_t retry_at;
	unsigned backoff_ms;
	uint64_t next_poll;
	int want_target, want_stats;
	uint64_t target, sent_target;
	int in_call;
	char broken[160];
};

static struct lab *L(const struct pk_balloon *b)
{
	return b->drv;
}

static void drop(struct pk_balloon *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void drop(struct pk_balloon *b, const char *fmt, ...)
{
	struct lab *l = L(b);
	int was_open = l->st != L_IDLE;
	char msg[sizeof(b->info.why)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pk_balloon_why(b, "lab balloon %s: %s", b->channel, msg);
	pk_jl_close(&l->jl);
	/* A target sent but not answered is sent again too. */
	if (l->inflight == LR_TARGET && !l->want_target) {
		l->want_target = 1;
		l->target = l->sent_target;
	}
	l->st = L_IDLE;
	l->inflight = LR_NONE;
	l->want_stats = 0;
	l->retry_at = pk_balloon_now_ms() + l->backoff_ms;
	l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
							  : l->backoff_ms * 2;
	if (l->want_target) {
		b->pending_target = l->target;
		l->want_target = 0;
	}
	if (was_open)
		pk_balloon_emit(b, PK_BLN_EV_GONE);
}

static int send_req(struct pk_balloon *b, enum lab_req r, uint64_t bytes)
{
	struct lab *l = L(b);
	json_object *o = json_object_new_object();
	char why[96];
	int rc;

	json_object_object_add(o, "execute",
			       json_object_new_string(lab_cmd[r]));
	if (r == LR_TARGET)
		json_object_object_add(o, "bytes",
				       json_object_new_int64((int64_t)bytes));
	rc = pk_jl_send(&l->jl, o, why, sizeof(why));
	json_object_put(o);
	if (rc < 0) {
		if (l->in_call)
			drop(b, "sending %s: %s", lab_cmd[r], why);
		else	/* io() drops it: the fd asks for EPOLLOUT */
			snprintf(l->broken, sizeof(l->broken),
				 "sending %s: %s", lab_cmd[r], why);
		return rc;
	}
	l->inflight = r;
	l->deadline = pk_balloon_now_ms() + b->cfg.timeout_ms;
	return 0;
}

static void kick(struct pk_balloon *b)
{
	struct lab *l = L(b);

	if (l->inflight != LR_NONE || l->st != L_READY)
		return;
	if (l->want_target) {
		l->want_target = 0;
		l->sent_target = l->target;
		b->info.stalled = 0;
		b->info.shortfall_bytes = 0;
		send_req(b, LR_TARGET, l->target);
	} else if (l->want_stats) {
		l->want_stats = 0;
		send_req(b, LR_STATS, 0);
	}
}

/* A non-negative integer member, else -1. */
static int64_t num(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	return json_object_get_int64(v) < 0 ? -1 : json_object_get_int64(v);
}

static void set_actual(struct pk_balloon *b, int64_t a, int emit)
{
	if (a <= 0 || (uint64_t)a == b->info.actual_bytes)
		return;
	b->info.actual_bytes = (uint64_t)a;
	if (emit)
		pk_balloon_emit(b, PK_BLN_EV_CHANGED);
}

static void on_hello(struct pk_balloon *b, json_object *o)
{
	struct lab *l = L(b);
	int64_t ver = num(o, "lab-balloon");

	if (ver != 1) {
		drop(b, ver < 0 ? "expected the greeting {\"lab-balloon\": 1, "
		     "...}, got %.60s" : "unsupported protocol version "
		     "(%.60s; this daemon speaks 1)",
		     json_object_to_json_string(o));
		return;
	}
	set_actual(b, num(o, "actual"), 0);
	l->st = L_READY;
	l->backoff_ms = BACKOFF_MIN_MS;
	l->want_stats = 1;
	l->next_poll = pk_balloon_now_ms() + b->cfg.stats_period_ms;
	pk_balloon_emit(b, PK_BLN_EV_UP);
	kick(b);
}

static void on_stats(struct pk_balloon *b, json_object *o)
{
	struct pk_balloon_info *in = &b->info;

	set_actual(b, num(o, "actual"), 1);
	in->total_bytes = num(o, "total");
	in->free_bytes = num(o, "free");
	in->available_bytes = num(o, "available");
	in->swap_in_bytes = num(o, "swap_in");
	in->swap_out_bytes = num(o, "swap_out");
	in->major_faults = num(o, "major_faults");
	in->minor_faults = num(o, "minor_faults");
	in->alloc_stalls = num(o, "stalls");
	in->oom_kills = num(o, "oom_kills");
	in->stats_ms = pk_balloon_now_ms();
	pk_balloon_emit(b, PK_BLN_EV_STATS);
}

static void on_message(struct pk_balloon *b, json_object *o)
{
	struct lab *l = L(b);
	json_object *v;
	const char *name;

	if (l->st == L_HELLO) {
		on_hello(b, o);
		return;
	}
	if (json_object_object_get_ex(o, "event", &v) &&
	    json_object_is_type(v, json_type_string)) {
		name = json_object_get_string(v);
		if (!strcmp(name, "balloon")) {
			set_actual(b, num(o, "actual"), 1);
			if (b->info.stalled && b->info.actual_bytes ==
			    b->info.target_bytes) {
				b->info.stalled = 0;
				b->info.shortfall_bytes = 0;
			}
		} else if (!strcmp(name, "stalled")) {
			int64_t s = num(o, "shortfall");

			set_actual(b, num(o, "actual"), 1);
			b->info.stalled = 1;
			b->info.shortfall_bytes = s > 0 ? (uint64_t)s : 0;
			pk_balloon_why(b, "the lab guest's balloon stalled "
				       "%llu MiB short of its target (locked "
				       "pages)", (unsigned long long)
				       (b->info.shortfall_bytes >> 20));
			pk_balloon_emit(b, PK_BLN_EV_STALLED);
		}
		return;
	}
	if (json_object_object_get_ex(o, "return", &v) &&
	    json_object_is_type(v, json_type_string)) {
		name = json_object_get_string(v);
		if (l->inflight == LR_NONE || strcmp(name, lab_cmd[l->inflight]))
			return;	/* not the request in flight: ignored */
		l->inflight = LR_NONE;
		if (!strcmp(name, "stats"))
			on_stats(b, o);
	} else if (json_object_object_get_ex(o, "error", &v) &&
		   json_object_is_type(v, json_type_string)) {
		json_object *d = NULL;

		name = json_object_get_string(v);
		if (l->inflight == LR_NONE || strcmp(name, lab_cmd[l->inflight]))
			return;
		l->inflight = LR_NONE;
		json_object_object_get_ex(o, "desc", &d);
		const char *desc = d && json_object_is_type(d, json_type_string)
				   ? json_object_get_string(d)
				   : "no reason given";
		if (!strcmp(name, "set-target"))
			pk_balloon_why(b, "the lab guest refused the target "
				       "%llu MiB: %s", (unsigned long long)
				       (l->sent_target >> 20), desc);
		else
			pk_balloon_why(b, "the lab guest refused %s: %s",
				       name, desc);
		if (!strcmp(name, "set-target"))
			pk_balloon_emit(b, PK_BLN_EV_FAILED);
	}
	kick(b);
}

static void start_connect(struct pk_balloon *b, uint64_t now)
{
	struct lab *l = L(b);
	char why[sizeof(b->info.why) - 32];
	int fd, rc = pk_jl_connect_unix(b->channel,
					 b->cfg.check_owner ? (long)b->cfg.owner : -1,
					 &fd, why, sizeof(why));

	if (rc < 0) {
		pk_balloon_why(b, "lab balloon: %s (retry in %u ms)", why,
			       l->backoff_ms);
		l->retry_at = now + l->backoff_ms;
		l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ?
				BACKOFF_MAX_MS : l->backoff_ms * 2;
		return;
	}
	pk_jl_attach(&l->jl, fd);
	l->st = rc == 1 ? L_CONNECTING : L_HELLO;
	l->deadline = now + b->cfg.timeout_ms;
	l->inflight = LR_NONE;
	l->broken[0] = '\0';
}

static int lab_open(struct pk_balloon *b, char *err, size_t err_len)
{
	struct lab *l = calloc(1, sizeof(*l));

	if (!l || pk_jl_init(&l->jl, LAB_MAX_LINE) < 0) {
		free(l);
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	if (strlen(b->channel) > 107) {
		pk_jl_free(&l->jl);
		free(l);
		snprintf(err, err_len, "the lab balloon socket path is too "
			 "long (%zu bytes, at most 107)", strlen(b->channel));
		return -EINVAL;
	}
	b->drv = l;
	l->backoff_ms = BACKOFF_MIN_MS;
	start_connect(b, pk_balloon_now_ms());
	return 0;
}

static void lab_close(struct pk_balloon *b)
{
	struct lab *l = L(b);

	if (!l)
		return;
	pk_jl_free(&l->jl);
	free(l);
	b->drv = NULL;
}

static int lab_fd(const struct pk_balloon *b, uint32_t *events)
{
	struct lab *l = L(b);

	*events = 0;
	if (l->st == L_IDLE || l->jl.fd < 0)
		return -1;
	if (l->st == L_CONNECTING) {
		*events = EPOLLOUT;
		return l->jl.fd;
	}
	*events = EPOLLIN | (pk_jl_want_write(&l->jl) || l->broken[0] ?
			     EPOLLOUT : 0);
	return l->jl.fd;
}

static void lab_io_(struct pk_balloon *b, uint32_t events)
{
	struct lab *l = L(b);
	char why[sizeof(b->info.why) - 40];
	json_object *o;

	if (l->broken[0]) {
		drop(b, "%s", l->broken);
		return;
	}
	if (l->st == L_CONNECTING) {
		if (pk_jl_connected(l->jl.fd, why, sizeof(why)) < 0) {
			drop(b, "%s", why);
			return;
		}
		l->st = L_HELLO;
		l->deadline = pk_balloon_now_ms() + b->cfg.timeout_ms;
		return;
	}
	if ((events & EPOLLOUT) && pk_jl_flush(&l->jl, why, sizeof(why)) < 0) {
		drop(b, "%s", why);
		return;
	}
	for (int i = 0; i < LAB_READS; i++) {
		int rc = pk_jl_read(&l->jl, why, sizeof(why)), got;

		while ((got = pk_jl_next(&l->jl, &o, why, sizeof(why))) == 1) {
			on_message(b, o);
			json_object_put(o);
			if (l->st == L_IDLE)
				return;
		}
		if (got < 0) {
			drop(b, "garbage from the guest: %s", why);
			return;
		}
		if (rc == -EPIPE) {
			size_t part = pk_jl_pending_in(&l->jl);

			if (part)
				drop(b, "the guest closed the socket mid-line "
				     "(%zu bytes of a line unfinished)", part);
			else if (l->inflight != LR_NONE)
				drop(b, "the guest closed the socket with %s "
				     "unanswered", lab_cmd[l->inflight]);
			else
				drop(b, "the guest closed the socket");
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

static void lab_io(struct pk_balloon *b, uint32_t events)
{
	struct lab *l = L(b);

	if (l->st == L_IDLE)
		return;
	l->in_call = 1;
	lab_io_(b, events);
	l->in_call = 0;
}

static uint64_t lab_tick_(struct pk_balloon *b, uint64_t now)
{
	struct lab *l = L(b);
	uint64_t next = now + 60000;

	if (l->broken[0] && l->st != L_IDLE) {
		drop(b, "%s", l->broken);
		return l->retry_at;
	}
	if (l->st == L_IDLE && now >= l->retry_at)
		start_connect(b, now);
	if (l->st == L_IDLE)
		return l->retry_at;
	if ((l->st == L_CONNECTING || l->st == L_HELLO) && now >= l->deadline) {
		drop(b, l->st == L_CONNECTING ? "connect took over %u ms" :
		     "no greeting from the guest within %u ms",
		     b->cfg.timeout_ms);
		return l->retry_at;
	}
	if (l->inflight != LR_NONE && now >= l->deadline) {
		drop(b, "no reply to %s within %u ms", lab_cmd[l->inflight],
		     b->cfg.timeout_ms);
		return l->retry_at;
	}
	if (l->st == L_READY && now >= l->next_poll) {
		l->next_poll = now + b->cfg.stats_period_ms;
		l->want_stats = 1;
		kick(b);
		if (l->st == L_IDLE)
			return l->retry_at;
	}
	if (l->st == L_READY && l->next_poll < next)
		next = l->next_poll;
	if ((l->st != L_READY || l->inflight != LR_NONE) && l->deadline < next)
		next = l->deadline;
	return next;
}

static uint64_t lab_tick(struct pk_balloon *b, uint64_t now)
{
	struct lab *l = L(b);
	uint64_t next;

	l->in_call = 1;
	next = lab_tick_(b, now);
	l->in_call = 0;
	return next;
}

static int lab_send_target(struct pk_balloon *b, uint64_t bytes)
{
	struct lab *l = L(b);

	if (l->st != L_READY)
		return -ENOTCONN;
	l->target = bytes;
	l->want_target = 1;
	kick(b);
	return 0;
}

const struct pk_balloon_ops pk_balloon_lab_ops = {
	.open = lab_open,
	.close = lab_close,
	.fd = lab_fd,
	.io = lab_io,
	.tick = lab_tick,
	.send_target = lab_send_target,
};
