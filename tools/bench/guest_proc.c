/*
 * guest_proc.c - lab guests (pk-guestsim --hold) for the benchmark.
 *
 * What/how/why: see guest_proc.h.
 */
#include "guest_proc.h"
#include "cleanup.h"
#include "sys_guard.h"
#include "timing.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define GUEST_TERM_GRACE_MS 2000

int guest_default_path(char *out, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n < 0)
		return -errno;
	self[n] = '\0';
	if ((size_t)snprintf(out, len, "%s/../guestsim/pk-guestsim", dirname(self)) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int guest_start(struct guest *g, const char *exe, const char *name,
		const char *const *args, char *err, size_t err_len)
{
	const char *argv[GUEST_MAX_ARGS + 2];
	int in[2], out[2];
	size_t n = 0;

	memset(g, 0, sizeof(*g));
	g->pid = -1;
	g->in_fd = g->out_fd = -1;
	snprintf(g->name, sizeof(g->name), "%s", name);
	argv[n++] = exe;
	for (size_t i = 0; args[i]; i++) {
		if (i == GUEST_MAX_ARGS) {
			snprintf(err, err_len, "more than %d guest arguments", GUEST_MAX_ARGS);
			return -E2BIG;
		}
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	if (pipe2(in, O_CLOEXEC) < 0) {
		int e = -errno;
		snprintf(err, err_len, "pipe: %s", strerror(errno));
		return e;
	}
	if (pipe2(out, O_CLOEXEC) < 0) {
		int e = -errno;
		snprintf(err, err_len, "pipe: %s", strerror(errno));
		close(in[0]);
		close(in[1]);
		return e;
	}
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		snprintf(err, err_len, "fork: %s", strerror(errno));
		close(in[0]), close(in[1]), close(out[0]), close(out[1]);
		return e;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		signal(SIGINT, SIG_IGN); /* ^C reaches the group; we stop it */
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		guard_close_in_child();
		dup2(in[0], 0);
		dup2(out[1], 1);
		execv(exe, (char *const *)argv);
		dprintf(2, "pk-bench: exec %s: %s\n", exe, strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	g->pid = pid;
	g->in_fd = in[1];
	g->out_fd = out[0];
	fcntl(g->out_fd, F_SETFL, O_NONBLOCK);
	if (cleanup_track_pid(pid, GUEST_TERM_GRACE_MS) < 0) {
		snprintf(err, err_len, "cleanup table full");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(g->in_fd), close(g->out_fd);
		g->pid = -1;
		return -ENOSPC;
	}
	return 0;
}

bool guest_alive(const struct guest *g)
{
	return proc_alive(g->pid);
}

/* Read what the guest printed, noting HOLDING and IDLE.  -EPIPE on EOF. */
static int read_lines(struct guest *g)
{
	char buf[512];

	for (;;) {
		ssize_t n = read(g->out_fd, buf, sizeof(buf));
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		if (n == 0)
			return -EPIPE;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (g->line_len < sizeof(g->line) - 1)
					g->line[g->line_len++] = buf[i];
				continue;
			}
			g->line[g->line_len] = '\0';
			if (!strcmp(g->line, "HOLDING"))
				g->holding = true;
			else if (!strcmp(g->line, "IDLE"))
				g->idle = true;
			g->line_len = 0;
		}
	}
}

static void describe_exit(struct guest *g, char *err, size_t err_len)
{
	int status = 0;
	pid_t r = waitpid(g->pid, &status, WNOHANG);

	if (r == g->pid) {
		cleanup_forget_pid(g->pid);
		g->pid = -1;
		if (WIFEXITED(status))
			snprintf(err, err_len, "guest %s exited with status %d before it had "
				 "filled its RAM (its stderr above says why)", g->name,
				 WEXITSTATUS(status));
		else
			snprintf(err, err_len, "guest %s died of signal %d before it had "
				 "filled its RAM", g->name, WTERMSIG(status));
	} else {
		snprintf(err, err_len, "guest %s closed its stdout before HOLDING", g->name);
	}
}

/* Wait for HOLDING, or with idle for IDLE, from every guest. */
static int wait_line(struct guest *g, unsigned n, bool idle, double timeout_s,
		     const struct pk_daemon *daemon, const char *label,
		     double progress_s, char *err, size_t err_len)
{
	uint64_t t0 = now_ns(), next_note = t0 + (uint64_t)(progress_s * 1e9);
	struct pollfd pfd[64];

	if (n > 64) {
		snprintf(err, err_len, "too many guests");
		return -E2BIG;
	}
	for (;;) {
		unsigned done = 0, np = 0;
		for (unsigned i = 0; i < n; i++) {
			bool *seen = idle ? &g[i].idle : &g[i].holding;
			if (!*seen) {
				int r = read_lines(&g[i]);
				if (r < 0 && !*seen) {
					describe_exit(&g[i], err, err_len);
					return -ECHILD;
				}
			}
			if (*seen)
				done++;
			else
				pfd[np++] = (struct pollfd){ .fd = g[i].out_fd, .events = POLLIN };
		}
		if (done == n)
			return 0;
		if (daemon && !daemon_alive(daemon)) {
			snprintf(err, err_len, "pagekeeperd died while the guests were filling "
				 "their RAM");
			return -ECHILD;
		}
		uint64_t now = now_ns();
		double el = (double)(now - t0) / 1e9;
		if (el > timeout_s) {
			snprintf(err, err_len, "only %u of %u guests had filled their RAM after "
				 "%.0f s", done, n, timeout_s);
			return -ETIMEDOUT;
		}
		if (now >= next_note) {
			fprintf(stderr, "bench: %s: filling guest RAM: %u of %u guests done, "
				"%.1f s\n", label, done, n, el);
			next_note = now + (uint64_t)(progress_s * 1e9);
		}
		poll(pfd, np, 100);
	}
}

int guests_wait_holding(struct guest *g, unsigned n, double timeout_s,
			const struct pk_daemon *daemon, const char *label,
			double progress_s, char *err, size_t err_len)
{
	return wait_line(g, n, false, timeout_s, daemon, label, progress_s, err, err_len);
}

int guests_wait_idle(struct guest *g, unsigned n, double timeout_s,
		     const struct pk_daemon *daemon, const char *label,
		     double progress_s, char *err, size_t err_len)
{
	return wait_line(g, n, true, timeout_s, daemon, label, progress_s, err, err_len);
}

int guest_wait_exit(struct guest *g, double timeout_s, int *status)
{
	uint64_t t0 = now_ns();

	while (g->pid > 0) {
		pid_t r = waitpid(g->pid, status, WNOHANG);
		if (r == g->pid || (r < 0 && errno == ECHILD)) {
			cleanup_forget_pid(g->pid);
			g->pid = -1;
			return r < 0 ? -ECHILD : 0; /* ECHILD: reaped elsewhere */
		}
		if ((double)(now_ns() - t0) / 1e9 > timeout_s)
			return -ETIMEDOUT;
		usleep(1000);
	}
	return -ECHILD;
}

void guests_stop(struct guest *g, unsigned n, int grace_ms)
{
	for (unsigned i = 0; i < n; i++) {
		if (g[i].in_fd >= 0)
			close(g[i].in_fd); /* ends --hold: detach and exit */
		g[i].in_fd = -1;
	}
	uint64_t t0 = now_ns();
	for (unsigned i = 0; i < n; i++) {
		while (g[i].pid > 0) {
			int status;
			pid_t r = waitpid(g[i].pid, &status, WNOHANG);
			if (r == g[i].pid || (r < 0 && errno == ECHILD)) {
				cleanup_forget_pid(g[i].pid);
				g[i].pid = -1;
			} else if (now_ns() - t0 > (uint64_t)grace_ms * 1000000ull) {
				cleanup_stop_pid(g[i].pid); /* SIGTERM, SIGKILL */
				g[i].pid = -1;
			} else {
				usleep(10000);
			}
		}
		if (g[i].out_fd >= 0)
			close(g[i].out_fd);
		g[i].out_fd = -1;
	}
}
