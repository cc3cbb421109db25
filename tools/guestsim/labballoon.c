/*
 * labballoon.c - the lab guest's balloon driver: it serves the lab balloon
 * protocol (balloon-bridge/README.md, version 1) to pagekeeperd.
 *
 * What: a UNIX stream socket the guest registers as its balloon channel
 * (balloon kind lab).  The daemon connects and sends newline-delimited
 * JSON commands: set-target (the guest's new logical size, bytes) and
 * stats.  set-target is answered at once; the balloon then moves in steps
 * of at most 1 MiB through the guest OS (guestos.c), and the driver sends
 * a "balloon" event as actual changes (at most every 100 ms, and always
 * when it reaches the target), or "stalled" with the shortfall when
 * locked pages stop it.  Bad input - a line that is not a JSON object, a
 * line longer than 4096 bytes, an unknown command, a target below zero or
 * above the guest's RAM - gets an {"error": ...} reply and changes
 * nothing; the guest keeps running.
 *
 * How: one thread, a poll() loop over an eventfd (stop), the listening
 * socket and the one daemon connection.  A second connection while one
 * is open is refused with an error line; a new one after the old closed
 * is served (the daemon restarted).  Replies go out with MSG_DONTWAIT: a
 * daemon that does not read its socket is disconnected rather than
 * allowed to stall the balloon.  JSON is parsed and built with json-c
 * only.  Between steps the loop also takes the --json timeline samples,
 * so the timeline covers idle phases too.
 *
 * Why a thread: the balloon must move while the application runs, as a
 * guest's balloon driver does in its own kernel thread; the OS lock is
 * taken per step, never across a poll.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "labballoon.h"

#define STEP_FRAMES 256		  /* 1 MiB per step */
#define EVENT_GAP_NS 100000000ULL /* balloon events at most every 100 ms */
#define IDLE_POLL_MS 100

int gs_lab_balloon_listen(struct gs_lab_balloon *lb, struct gs_os *os,
			  const char *path, double timeline_s, char *err,
			  size_t err_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int rc;

	memset(lb, 0, sizeof(*lb));
	lb->os = os;
	lb->timeline_ns = (uint64_t)(timeline_s * 1e9);
	lb->listen_fd = lb->conn_fd = lb->wake_fd = -1;
	if (!path) {
		const char *tmp = getenv("TMPDIR");
		int n = snprintf(lb->dir, sizeof(lb->dir),
				 "%s/pk-guestsim-balloon-XXXXXX",
				 tmp && *tmp ? tmp : "/tmp");

		/* A $TMPDIR too deep for sun_path (a build tree's): /tmp. */
		if (n < 0 || (size_t)n + sizeof("/balloon.sock") > sizeof(lb->dir))
			snprintf(lb->dir, sizeof(lb->dir),
				 "/tmp/pk-guestsim-balloon-XXXXXX");
		if (!mkdtemp(lb->dir)) {
			rc = -errno;
			snprintf(err, err_len, "mkdtemp %s: %s", lb->dir,
				 strerror(-rc));
			lb->dir[0] = '\0';
			return rc;
		}
		/* Fits: checked above. */
		strcpy(lb->path, lb->dir);
		strcat(lb->path, "/balloon.sock");
	} else {
		if (strlen(path) >= sizeof(lb->path)) {
			snprintf(err, err_len, "--balloon-socket %s: longer "
				 "than %zu bytes", path, sizeof(lb->path) - 1);
			return -ENAMETOOLONG;
		}
		strcpy(lb->path, path);
	}
	strcpy(sa.sun_path, lb->path);
	lb->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	lb->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
			       SOCK_NONBLOCK, 0);
	if (lb->wake_fd < 0 || lb->listen_fd < 0) {
		rc = -errno;
		snprintf(err, err_len, "balloon socket: %s", strerror(-rc));
		goto fail;
	}
	if (bind(lb->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lb->listen_fd, 4) < 0) {
		rc = -errno;
		snprintf(err, err_len, "balloon socket %s: %s", lb->path,
			 strerror(-rc));
		lb->path[0] = '\0'; /* not ours to remove */
		goto fail;
	}
	return 0;
fail:
	gs_lab_balloon_stop(lb);
	return rc;
}

static void drop_conn(struct gs_lab_balloon *lb)
{
	if (lb->conn_fd >= 0)
		close(lb->conn_fd);
	lb->conn_fd = -1;
	lb->len = 0;
	lb->skipping = false;
}

/* Send obj as one line to fd and release it; false when it failed. */
static bool send_obj(int fd, json_object *obj)
{
	const char *s = json_object_to_json_string_ext(obj,
						       JSON_C_TO_STRING_PLAIN);
	size_t n = strlen(s);
	char *line = malloc(n + 1);
	bool ok = false;

	if (line) {
		memcpy(line, s, n);
		line[n] = '\n';
		ok = send(fd, line, n + 1, MSG_NOSIGNAL | MSG_DONTWAIT) ==
		     (ssize_t)(n + 1);
		free(line);
	}
	json_object_put(obj);
	return ok;
}

static void reply(struct gs_lab_balloon *lb, json_object *obj)
{
	if (lb->conn_fd < 0) {
		json_object_put(obj);
		return;
	}
	if (!send_obj(lb->conn_fd, obj))
		drop_conn(lb);
}

static void add_u64(json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

static void reply_error(struct gs_lab_balloon *lb, const char *what,
			const char *desc)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "error", json_object_new_string(what));
	json_object_object_add(o, "desc", json_object_new_string(desc));
	atomic_fetch_add(&lb->errors_sent, 1);
	reply(lb, o);
}

static uint64_t ram_bytes(const struct gs_lab_balloon *lb)
{
	return (uint64_t)lb->os->n_frames * GS_PAGE_SIZE;
}

static uint64_t actual_bytes(const struct gs_lab_balloon *lb,
			     const struct gs_os_counters *c)
{
	return ram_bytes(lb) - c->balloon * GS_PAGE_SIZE;
}

static void send_hello(struct gs_lab_balloon *lb)
{
	json_object *o = json_object_new_object();
	struct gs_os_counters c;

	gs_os_counters(lb->os, &c);
	add_u64(o, "lab-balloon", 1);
	add_u64(o, "ram", ram_bytes(lb));
	add_u64(o, "actual", actual_bytes(lb, &c));
	reply(lb, o);
}

static void send_stats(struct gs_lab_balloon *lb)
{
	json_object *o = json_object_new_object();
	struct gs_os_counters c;

	gs_os_counters(lb->os, &c);
	json_object_object_add(o, "return", json_object_new_string("stats"));
	add_u64(o, "actual", actual_bytes(lb, &c));
	add_u64(o, "total", actual_bytes(lb, &c) -
				    (uint64_t)lb->os->reserve * GS_PAGE_SIZE);
	add_u64(o, "free", c.free_frames * GS_PAGE_SIZE);
	/* Application pages are anonymous: only free frames are available
	 * without paging out. */
	add_u64(o, "available", c.free_frames * GS_PAGE_SIZE);
	add_u64(o, "swap_in", c.page_ins * GS_PAGE_SIZE);
	add_u64(o, "swap_out", c.page_outs * GS_PAGE_SIZE);
	add_u64(o, "major_faults", c.page_ins);
	add_u64(o, "minor_faults", c.minor_faults);
	add_u64(o, "stalls", c.stalls);
	/* The application's runtime (--live): its collections, and what
	 * they gave back to the free list. */
	add_u64(o, "gc_runs", c.gc_runs);
	add_u64(o, "gc_freed", c.gc_pages * GS_PAGE_SIZE);
	reply(lb, o);
}

static void send_event(struct gs_lab_balloon *lb, bool stalled)
{
	json_object *o = json_object_new_object();
	struct gs_os_counters c;
	uint64_t actual;

	gs_os_counters(lb->os, &c);
	actual = actual_bytes(lb, &c);
	json_object_object_add(o, "event", json_object_new_string(
						   stalled ? "stalled" : "balloon"));
	add_u64(o, "actual", actual);
	add_u64(o, "target", lb->target_bytes);
	if (stalled) {
		add_u64(o, "shortfall", actual > lb->target_bytes
						? actual - lb->target_bytes : 0);
		atomic_fetch_add(&lb->stalled_events, 1);
	}
	lb->last_event_ns = gs_now_ns();
	lb->last_event_actual = actual;
	reply(lb, o);
}

static void set_target(struct gs_lab_balloon *lb, json_object *cmd)
{
	json_object *bytes;
	char desc[128];
	int64_t v;

	if (!json_object_object_get_ex(cmd, "bytes", &bytes) ||
	    !json_object_is_type(bytes, json_type_int)) {
		reply_error(lb, "set-target", "\"bytes\" must be an integer "
			    "number of bytes");
		return;
	}
	v = json_object_get_int64(bytes);
	if (v < 0) {
		reply_error(lb, "set-target", "target below zero");
		return;
	}
	if ((uint64_t)v > ram_bytes(lb)) {
		snprintf(desc, sizeof(desc), "target above the guest's RAM "
			 "(%" PRIu64 " bytes)", ram_bytes(lb));
		reply_error(lb, "set-target", desc);
		return;
	}
	lb->target_bytes = (uint64_t)v;
	gs_os_set_target(lb->os, (uint64_t)v);
	lb->moving = true;
	{
		json_object *o = json_object_new_object();

		json_object_object_add(o, "return",
				       json_object_new_string("set-target"));
		add_u64(o, "target", (uint64_t)v);
		reply(lb, o);
	}
}

static void handle_line(struct gs_lab_balloon *lb, const char *line,
			size_t len)
{
	json_tokener *tok = json_tokener_new();
	json_object *cmd = NULL, *exec;
	const char *what;
	size_t end;

	if (!tok)
		return;
	while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (len)
		cmd = json_tokener_parse_ex(tok, line, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (!cmd || json_tokener_get_error(tok) != json_tokener_success ||
	    end != len || !json_object_is_type(cmd, json_type_object)) {
		reply_error(lb, "parse", "not a JSON object on one line");
		goto out;
	}
	if (!json_object_object_get_ex(cmd, "execute", &exec) ||
	    !json_object_is_type(exec, json_type_string)) {
		reply_error(lb, "parse", "no \"execute\" string");
		goto out;
	}
	what = json_object_get_string(exec);
	if (!strcmp(what, "set-target"))
		set_target(lb, cmd);
	else if (!strcmp(what, "stats"))
		send_stats(lb);
	else
		reply_error(lb, what, "unknown command");
out:
	json_object_put(cmd);
	json_tokener_free(tok);
}

static void read_conn(struct gs_lab_balloon *lb)
{
	ssize_t n = recv(lb->conn_fd, lb->buf + lb->len,
			 sizeof(lb->buf) - lb->len, MSG_DONTWAIT);
	char *nl;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		drop_conn(lb);
		return;
	}
	lb->len += (size_t)n;
	while (lb->conn_fd >= 0 && (nl = memchr(lb->buf, '\n', lb->len))) {
		size_t ll = (size_t)(nl - lb->buf);

		if (lb->skipping)
			lb->skipping = false;
		else
			handle_line(lb, lb->buf, ll);
		if (lb->conn_fd < 0)
			return;
		memmove(lb->buf, nl + 1, lb->len - ll - 1);
		lb->len -= ll + 1;
	}
	if (lb->len == sizeof(lb->buf)) {
		if (!lb->skipping)
			reply_error(lb, "parse", "line longer than 4096 bytes");
		lb->skipping = true;
		lb->len = 0;
	}
}

static void take_conn(struct gs_lab_balloon *lb)
{
	int fd = accept4(lb->listen_fd, NULL, NULL,
			 SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	if (lb->conn_fd >= 0) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "error",
				       json_object_new_string("connect"));
		json_object_object_add(o, "desc", json_object_new_string(
			"another daemon is connected to this balloon"));
		send_obj(fd, o);
		close(fd);
		return;
	}
	lb->conn_fd = fd;
	atomic_fetch_add(&lb->connections, 1);
	send_hello(lb);
}

static void move_balloon(struct gs_lab_balloon *lb)
{
	bool stalled;
	long moved = gs_os_balloon_step(lb->os, STEP_FRAMES, &stalled);
	struct gs_os_counters c;

	if (moved < 0) {
		fprintf(stderr, "pk-guestsim: balloon: %s; holding at the "
			"current size\n", strerror((int)-moved));
		lb->moving = false;
		send_event(lb, true);
		return;
	}
	if (stalled) {
		lb->moving = false;
		send_event(lb, true);
		return;
	}
	gs_os_counters(lb->os, &c);
	if (c.balloon == c.balloon_target) {
		lb->moving = false;
		send_event(lb, false);
	} else if (gs_now_ns() - lb->last_event_ns >= EVENT_GAP_NS &&
		   actual_bytes(lb, &c) != lb->last_event_actual) {
		send_event(lb, false);
	}
}

static void *serve(void *arg)
{
	struct gs_lab_balloon *lb = arg;

	while (!atomic_load(&lb->stop)) {
		struct pollfd p[3] = {
			{ .fd = lb->wake_fd, .events = POLLIN },
			{ .fd = lb->listen_fd, .events = POLLIN },
			{ .fd = lb->conn_fd, .events = POLLIN },
		};
		int n = poll(p, lb->conn_fd >= 0 ? 3 : 2,
			     lb->moving ? 0 : IDLE_POLL_MS);

		if (atomic_load(&lb->stop))
			break;
		/* The old connection first: a daemon that closed and
		 * connected again must find its old place free. */
		if (n > 0 && lb->conn_fd >= 0 && p[2].fd == lb->conn_fd &&
		    p[2].revents)
			read_conn(lb);
		if (n > 0 && (p[1].revents & POLLIN))
			take_conn(lb);
		if (lb->moving)
			move_balloon(lb);
		gs_os_sample(lb->os, lb->timeline_ns, false);
	}
	return NULL;
}

int gs_lab_balloon_start(struct gs_lab_balloon *lb)
{
	int rc = pthread_create(&lb->tid, NULL, serve, lb);

	if (rc)
		return -rc;
	lb->started = true;
	return 0;
}

void gs_lab_balloon_stop(struct gs_lab_balloon *lb)
{
	if (lb->started) {
		uint64_t one = 1;

		atomic_store(&lb->stop, 1);
		if (write(lb->wake_fd, &one, sizeof(one)) < 0)
			perror("pk-guestsim: balloon: waking the driver");
		pthread_join(lb->tid, NULL);
		lb->started = false;
	}
	drop_conn(lb);
	if (lb->listen_fd >= 0)
		close(lb->listen_fd);
	if (lb->wake_fd >= 0)
		close(lb->wake_fd);
	lb->listen_fd = lb->wake_fd = -1;
	if (lb->path[0])
		unlink(lb->path);
	if (lb->dir[0])
		rmdir(lb->dir);
	lb->path[0] = lb->dir[0] = '\0';
}
