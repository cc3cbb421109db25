/*
 * guest_proc.c - lab guests and status helpers for Check tests (see
 * guest_proc.h).
 */
#include "tests/guest_proc.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Read the guest's stdout until HOLDING; keep its JSON result line. */
void guest_wait_holding(struct guest *g, json_object **result)
{
	char line[4096];

	*result = NULL;
	while (fgets(line, sizeof(line), g->out)) {
		if (strncmp(line, "HOLDING", 7) == 0)
			return;
		if (line[0] == '{') {
			if (*result)
				json_object_put(*result);
			*result = json_tokener_parse(line);
		}
	}
	ck_abort_msg("guest %s ended before HOLDING", g->name);
}

/* Let the guest go and return its exit status (-1: killed). */
int guest_finish(struct guest *g)
{
	int st;

	if (g->in_fd >= 0)
		close(g->in_fd);
	g->in_fd = -1;
	ck_assert_int_eq(waitpid(g->pid, &st, 0), g->pid);
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


json_object *guest_read_result(struct guest *g)
{
	json_object *result = NULL;
	char line[4096];

	while (fgets(line, sizeof(line), g->out))
		if (line[0] == '{') {
			if (result)
				json_object_put(result);
			result = json_tokener_parse(line);
		}
	return result;
}

int pk_test_reclaim(const char *sock, const char *vm, uint64_t bytes,
		   struct pk_reclaim_reply *r)
{
	struct pk_reclaim_msg m;
	char buf[sizeof(*r) + 16];
	int fd = pk_test_connect(sock);
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	memset(&m, 0, sizeof(m));
	pk_msg_header_init(&m.hdr, PK_MSG_RECLAIM, sizeof(m));
	snprintf(m.vm_name, sizeof(m.vm_name), "%s", vm);
	m.bytes = bytes;
	ck_assert_int_eq(pk_test_send(fd, &m, sizeof(m), NULL, 0), 0);
	n = pk_test_recv(fd, buf, sizeof(buf), 60000);
	close(fd);
	memset(r, 0, sizeof(*r));
	if (n == (ssize_t)sizeof(struct pk_reply_msg)) { /* refused */
		struct pk_reply_msg e;
		ck_assert_int_eq(pk_reply_decode(buf, (size_t)n, &e), 0);
		snprintf(r->reason, sizeof(r->reason), "%s", e.reason);
		return e.status;
	}
	ck_assert_msg(n == (ssize_t)sizeof(*r), "reclaim reply of %zd bytes", n);
	memcpy(r, buf, sizeof(*r));
	ck_assert_int_eq(r->hdr.type, PK_MSG_RECLAIM_REPLY);
	return r->status;
}
