/*
 * guest_proc.c - lab guests, status figures, waits and RECLAIM requests
 * for Check tests (what, how and why: guest_proc.h).
 */
#include "tests/guest_proc.h"

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *guestsim_path(void)
{
	const char *p = getenv("PK_GUESTSIM");
	ck_assert_msg(p && access(p, X_OK) == 0,
		      "PK_GUESTSIM must name the pk-guestsim binary");
	return p;
}

void guest_start(struct guest *g, const char *sock, const char *name,
		 const char *const extra[])
{
	const char *argv[40];
	int in[2], out[2], n = 0;

	argv[n++] = guestsim_path();
	argv[n++] = "--socket";
	argv[n++] = sock;
	argv[n++] = "--name";
	argv[n++] = name;
	argv[n++] = "--quiet";
	for (; *extra; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	/* CLOEXEC: later guests must not inherit this one's stdin pipe. */
	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->pid = fork();
	ck_assert_int_ge(g->pid, 0);
	if (g->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	g->in_fd = in[1];
	g->out = fdopen(out[0], "r");
}

void guest_expect(struct guest *g, const char *want, json_object **result,
		  long deadline, const char *what)
{
	/* A --json result with a long run's timeline is far over 8 KiB. */
	static char line[1 << 20];
	size_t len = 0;
	int fd = fileno(g->out);
	long t0 = pk_test_now_ms();

	if (result)
		*result = NULL;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left = deadline - pk_test_now_ms();
		ssize_t n;
		char c;

		ck_assert_msg(left > 0, "guest %s: timed out after %ld ms "
			      "waiting for %s (its %s)", g->name,
			      pk_test_now_ms() - t0, want ? want : "exit",
			      what);
		if (poll(&p, 1, (int)left) <= 0)
			continue; /* timeout or EINTR: the check above */
		n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		ck_assert_msg(n >= 0, "guest %s: read stdout: %s", g->name,
			      strerror(errno));
		if (n == 0) {
			ck_assert_msg(!want, "guest %s ended before %s "
				      "(its %s)", g->name, want, what);
			return;
		}
		if (c != '\n') {
			if (len < sizeof(line) - 1)
				line[len++] = c;
			continue;
		}
		line[len] = '\0';
		len = 0;
		if (result && line[0] == '{') {
			if (*result)
				json_object_put(*result);
			*result = json_tokener_parse(line);
			ck_assert_msg(*result, "guest %s: bad JSON (%zu bytes): "
				      "%.300s", g->name, strlen(line), line);
		}
		if (want && strcmp(line, want) == 0)
			return;
	}
}

int guest_finish(struct guest *g, long work_ms)
{
	long deadline = pk_test_deadline_ms(work_ms);
	int st;
	pid_t r;

	if (g->in_fd >= 0)
		close(g->in_fd);
	g->in_fd = -1;
	while ((r = waitpid(g->pid, &st, WNOHANG)) == 0) {
		if (pk_test_now_ms() > deadline) {
			kill(g->pid, SIGKILL);
			waitpid(g->pid, &st, 0);
			ck_abort_msg("guest %s did not exit within %d ms "
				     "of the end of its run (SIGKILLed)",
				     g->name, scaled_ms(work_ms));
		}
		sleep_ms(5);
	}
	ck_assert_int_eq(r, g->pid);
	if (g->out)
		fclose(g->out);
	g->out = NULL;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

double jnum(json_object *o, const char *key)
{
	json_object *v;
	ck_assert_msg(json_object_object_get_ex(o, key, &v),
		      "status lacks \"%s\"", key);
	return json_object_get_double(v);
}

json_object *status_root(struct pk_test_daemon *d)
{
	char *text = NULL;
	ck_assert_int_eq(pk_test_status_json(d->sock, &text), 0);
	json_object *root = json_tokener_parse(text);
	ck_assert_msg(root, "status is not JSON: %s", text);
	free(text);
	return root;
}

double status_field(struct pk_test_daemon *d, const char *object,
		    const char *key)
{
	json_object *root = status_root(d), *o;
	double v;

	ck_assert_msg(json_object_object_get_ex(root, object, &o),
		      "status has no \"%s\" object", object);
	v = jnum(o, key);
	json_object_put(root);
	return v;
}

double status_num(struct pk_test_daemon *d, const char *key, const char *sub)
{
	json_object *root = status_root(d), *o = NULL, *x = NULL;
	double v = -1;

	ck_assert_msg(json_object_object_get_ex(root, key, &o),
		      "status has no %s", key);
	if (sub && o)
		ck_assert_msg(json_object_object_get_ex(o, sub, &x),
			      "status %s has no %s", key, sub);
	else
		x = o;
	if (x)
		v = json_object_get_double(x);
	json_object_put(root);
	return v;
}

void status_str(struct pk_test_daemon *d, const char *key, char *out,
		size_t len)
{
	json_object *root = status_root(d), *o;

	ck_assert_msg(json_object_object_get_ex(root, key, &o), "status has "
		      "no %s", key);
	snprintf(out, len, "%s", json_object_get_string(o));
	json_object_put(root);
}

char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return '?';
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	return p && p[1] ? p[2] : '?';
}

void pid_stop(pid_t pid, const char *what)
{
	ck_assert_int_eq(kill(pid, SIGSTOP), 0);
	WAIT_FOR(proc_state(pid) == 'T', 1000, 5, "%s (pid %d) to stop on "
		 "SIGSTOP", what, (int)pid);
}

/* One status figure of one VM; -1 when the VM is not registered. */
double vm_field(struct pk_test_daemon *d, const char *name,
		       const char *key)
{
	json_object *root = status_root(d), *vms, *v;
	double f = -1;

	json_object_object_get_ex(root, "vms", &vms);
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		if (json_object_object_get_ex(vm, "name", &v) &&
		    strcmp(json_object_get_string(v), name) == 0)
			f = jnum(vm, key);
	}
	json_object_put(root);
	return f;
}

void vm_fields(struct pk_test_daemon *d, const char *name,
	       const char *const *keys, double *out)
{
	json_object *root = status_root(d), *vms, *v;
	int found = 0;

	json_object_object_get_ex(root, "vms", &vms);
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		if (!json_object_object_get_ex(vm, "name", &v) ||
		    strcmp(json_object_get_string(v), name) != 0)
			continue;
		for (size_t k = 0; keys[k]; k++)
			out[k] = jnum(vm, keys[k]);
		found = 1;
	}
	json_object_put(root);
	ck_assert_msg(found, "vm %s is not in the status", name);
}

void vm_string(struct pk_test_daemon *d, const char *name, const char *key,
	       char *out, size_t len)
{
	json_object *root = status_root(d), *vms, *v;

	out[0] = '\0';
	json_object_object_get_ex(root, "vms", &vms);
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		if (json_object_object_get_ex(vm, "name", &v) &&
		    !strcmp(json_object_get_string(v), name) &&
		    json_object_object_get_ex(vm, key, &v))
			snprintf(out, len, "%s", json_object_get_string(v));
	}
	json_object_put(root);
}

void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}


int scaled_ms(double work_ms)
{
	return (int)(work_ms * pk_test_time_scale());
}

int wait_vm_listed(struct pk_test_daemon *d, const char *name, int present,
		   int timeout_ms)
{
	long deadline = pk_test_now_ms() + timeout_ms;

	for (;;) {
		if ((vm_field(d, name, "configured_mib") >= 0) == present)
			return 1;
		if (pk_test_now_ms() > deadline)
			return 0;
		sleep_ms(50);
	}
}

int file_count(const char *path, const char *text)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	int hits = 0;

	if (!f)
		return 0;
	while (getline(&line, &cap, f) > 0)
		hits += strstr(line, text) != NULL;
	free(line);
	fclose(f);
	return hits;
}

int file_has(const char *path, const char *text)
{
	return file_count(path, text) > 0;
}

int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

long pk_test_reclaim_work_ms(uint64_t bytes)
{
	return PK_TEST_RECLAIM_BASE_MS +
	       (long)(bytes / 4096 * 1000 / PK_TEST_EVICT_PAGES_PER_S);
}

int pk_test_reclaim_send(const char *sock, const char *vm, uint64_t bytes)
{
	struct pk_reclaim_msg m;
	int fd = pk_test_connect(sock);

	ck_assert_msg(fd >= 0, "connect %s: %s", sock, strerror(-fd));
	memset(&m, 0, sizeof(m));
	pk_msg_header_init(&m.hdr, PK_MSG_RECLAIM, sizeof(m));
	snprintf(m.vm_name, sizeof(m.vm_name), "%s", vm);
	m.bytes = bytes;
	ck_assert_int_eq(pk_test_send(fd, &m, sizeof(m), NULL, 0), 0);
	return fd;
}

int pk_test_reclaim_recv(int conn, const char *vm, struct pk_reclaim_reply *r,
			 long deadline)
{
	char buf[sizeof(*r) + 16];
	long left = deadline - pk_test_now_ms();
	ssize_t n = pk_test_recv(conn, buf, sizeof(buf),
				 left > 0 ? (int)left : 0);

	close(conn);
	ck_assert_msg(n != -ETIMEDOUT, "timed out waiting for the reply to "
		      "RECLAIM of %s", vm);
	ck_assert_msg(n > 0, "RECLAIM of %s: no reply (%zd)", vm, n);
	memset(r, 0, sizeof(*r));
	if (n == (ssize_t)sizeof(struct pk_reply_msg)) { /* refused */
		struct pk_reply_msg e;
		ck_assert_int_eq(pk_reply_decode(buf, (size_t)n, &e), 0);
		ck_assert_int_eq(e.hdr.type, PK_MSG_ERROR_REPLY);
		snprintf(r->reason, sizeof(r->reason), "%s", e.reason);
		return e.status;
	}
	ck_assert_msg(n == (ssize_t)sizeof(*r), "RECLAIM of %s: reply of %zd "
		      "bytes", vm, n);
	memcpy(r, buf, sizeof(*r));
	ck_assert_int_eq(r->hdr.type, PK_MSG_RECLAIM_REPLY);
	return r->status;
}

int pk_test_reclaim(const char *sock, const char *vm, uint64_t bytes,
		    struct pk_reclaim_reply *r)
{
	int conn = pk_test_reclaim_send(sock, vm, bytes);

	return pk_test_reclaim_recv(conn, vm, r, pk_test_deadline_ms(
					    pk_test_reclaim_work_ms(bytes)));
}

size_t proc_cmdline(pid_t pid, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	return (size_t)n;
}

int proc_fd_find(pid_t pid, const char *needle, char *path, size_t len)
{
	char dir[64], link[320], target[PATH_MAX];
	struct dirent *de;
	int hit = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d)
		return 0;
	while (!hit && (de = readdir(d))) {
		ssize_t n;
		snprintf(link, sizeof(link), "%s/%s", dir, de->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		hit = strstr(target, needle) != NULL;
	}
	closedir(d);
	if (hit && path)
		snprintf(path, len, "%s", link);
	return hit;
}

int pk_test_run_capture(char *const argv[], char *out, size_t len, int both,
			long uid)
{
	int p[2], status;
	size_t n = 0;
	ssize_t r;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], 1);
		if (both)
			dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		if (uid >= 0 && (setgroups(0, NULL) < 0 ||
				 setgid((gid_t)uid) < 0 || setuid((uid_t)uid) < 0)) {
			fprintf(stderr, "cannot become uid %ld: %s\n", uid,
				strerror(errno));
			_exit(126);
		}
		execvp(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	while (n + 1 < len && (r = read(p[0], out + n, len - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	while (read(p[0], &(char){ 0 }, 1) > 0)
		;
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
