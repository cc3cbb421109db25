/*
 * daemon_proc.c - a private pagekeeperd for the benchmark.
 *
 * What/how/why: see daemon_proc.h.
 */
#include "daemon_proc.h"
#include "cleanup.h"
#include "timing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define DAEMON_READY_TIMEOUT_MS 5000
#define DAEMON_GRACE_MS 2000

int daemon_default_path(char *out, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n < 0)
		return -errno;
	self[n] = '\0';
	char *dir = dirname(self); /* .../tools/bench */
	if ((size_t)snprintf(out, len, "%s/../pagekeeperd", dir) >= len)
		return -ENAMETOOLONG;
	return 0;
}

static bool can_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	size_t n = strlen(path);
	bool ok;

	if (fd < 0)
		return false;
	if (n >= sizeof(sa.sun_path)) { /* daemon_start refused such a path */
		close(fd);
		return false;
	}
	memcpy(sa.sun_path, path, n + 1);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

bool daemon_alive(const struct pk_daemon *d)
{
	return proc_alive(d->pid);
}

/* Keep the extra arguments: space-separated for reports, NUL-separated
 * for the argv of every start. */
static int save_extra(struct pk_daemon *d, const char *const *extra, char *err,
		      size_t err_len)
{
	size_t used = 0, aused = 0;

	for (size_t i = 0; extra && extra[i]; i++) {
		size_t n = strlen(extra[i]) + 1;
		if (i >= DAEMON_MAX_EXTRA_ARGS || used + n > sizeof(d->extra)) {
			snprintf(err, err_len, "more than %d extra daemon arguments or "
				 "%zu bytes of them", DAEMON_MAX_EXTRA_ARGS, sizeof(d->extra));
			return -E2BIG;
		}
		memcpy(d->extra + used, extra[i], n);
		used += n;
		d->n_extra++;
		int w = snprintf(d->args + aused, sizeof(d->args) - aused, "%s%s",
				 aused ? " " : "", extra[i]);
		if (w > 0 && (size_t)w < sizeof(d->args) - aused)
			aused += (size_t)w;
	}
	return 0;
}

/* argv for exec, built before fork (no malloc in the child). */
static void build_argv(struct pk_daemon *d, const char **argv)
{
	size_t n = 0;
	const char *x = d->extra;

	argv[n++] = d->exe;
	argv[n++] = "--socket";
	argv[n++] = d->sock;
	argv[n++] = "--state-dir";
	argv[n++] = d->dir;
	argv[n++] = "--run-dir";
	argv[n++] = d->run_dir;
	argv[n++] = "--foreground";
	for (unsigned i = 0; i < d->n_extra; i++, x += strlen(x) + 1)
		argv[n++] = x;
	argv[n] = NULL;
}

/*
 * Fork/exec the daemon on d's dirs (its log truncated, or appended to
 * for a restart) and wait until it accepts a connection.
 */
static int spawn(struct pk_daemon *d, bool append, char *err, size_t err_len)
{
	const char *argv[8 + DAEMON_MAX_EXTRA_ARGS + 1];

	build_argv(d, argv);
	int logfd = open(d->log, O_WRONLY | O_CREAT | O_CLOEXEC |
			 (append ? O_APPEND : O_TRUNC), 0600);
	if (logfd < 0) {
		int e = -errno;
		snprintf(err, err_len, "open %s: %s", d->log, strerror(errno));
		return e;
	}
	pid_t parent = getpid();
	fflush(NULL);
	d->spawn_ns = now_ns();
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		close(logfd);
		snprintf(err, err_len, "fork: %s", strerror(errno));
		return e;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		signal(SIGINT, SIG_IGN); /* ^C reaches the group; we stop it */
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		execv(d->exe, (char *const *)argv);
		dprintf(2, "pk-bench: exec %s: %s\n", d->exe, strerror(errno));
		_exit(127);
	}
	close(logfd);
	d->pid = pid;
	cleanup_track_pid(pid, DAEMON_GRACE_MS);

	for (;;) {
		if (!daemon_alive(d)) {
			int status = 0;
			waitpid(pid, &status, 0);
			cleanup_forget_pid(pid);
			d->pid = -1;
			snprintf(err, err_len, "pagekeeperd exited before listening (%s %d); "
				 "log follows", WIFEXITED(status) ? "status" : "signal",
				 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
			return -ECHILD;
		}
		struct stat st;
		if (stat(d->sock, &st) == 0 && can_connect(d->sock)) {
			d->ready_ms = (double)(now_ns() - d->spawn_ns) / 1e6;
			return 0;
		}
		if (now_ns() - d->spawn_ns > (uint64_t)DAEMON_READY_TIMEOUT_MS * 1000000ull) {
			snprintf(err, err_len, "pagekeeperd did not accept connections on %s "
				 "within %d s; log follows", d->sock,
				 DAEMON_READY_TIMEOUT_MS / 1000);
			return -ETIMEDOUT;
		}
		usleep(1000);
	}
}

int daemon_start(struct pk_daemon *d, const char *exe, const char *const *extra_args,
		 char *err, size_t err_len)
{
	int r;

	memset(d, 0, sizeof(*d));
	d->pid = -1;
	if (access(exe, X_OK) < 0) {
		int e = -errno;
		snprintf(err, err_len, "daemon %s: %s (build it, or pass --daemon PATH)", exe,
			 strerror(errno));
		return e;
	}
	if (!realpath(exe, d->exe))
		snprintf(d->exe, sizeof(d->exe), "%s", exe);
	const char *tmp = getenv("TMPDIR");
	snprintf(d->dir, sizeof(d->dir), "%s/pk-bench-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(d->dir)) {
		int e = -errno;
		snprintf(err, err_len, "mkdtemp %s: %s", d->dir, strerror(errno));
		return e;
	}
	if ((r = cleanup_track_dir(d->dir)) < 0) {
		snprintf(err, err_len, "cleanup table: %s", strerror(-r));
		rmdir(d->dir);
		return r;
	}
	/* VM records and canonical copies on tmpfs, as in production. */
	snprintf(d->run_dir, sizeof(d->run_dir), "/dev/shm/pk-bench-run-XXXXXX");
	if (!mkdtemp(d->run_dir)) {
		int e = -errno;
		snprintf(err, err_len, "mkdtemp %s: %s", d->run_dir,
			 strerror(errno));
		d->run_dir[0] = '\0';
		return e;
	}
	if ((r = cleanup_track_dir(d->run_dir)) < 0) {
		snprintf(err, err_len, "cleanup table: %s", strerror(-r));
		rmdir(d->run_dir);
		d->run_dir[0] = '\0';
		return r;
	}
	/* The socket next to the records, as pagekeeperd puts it by
	 * default: a /dev/shm path always fits sun_path, however long
	 * $TMPDIR is (a CI checkout deep in a build tree). */
	snprintf(d->sock, sizeof(d->sock), "%s/pk.sock", d->run_dir);
	snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir);
	if (strlen(d->sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		snprintf(err, err_len, "socket path too long: %s", d->sock);
		return -ENAMETOOLONG;
	}
	if ((r = save_extra(d, extra_args, err, err_len)) < 0)
		return r;
	return spawn(d, false, err, err_len);
}

int daemon_restart(struct pk_daemon *d, char *err, size_t err_len)
{
	if (d->pid > 0 || !d->dir[0] || !d->run_dir[0]) {
		snprintf(err, err_len, "daemon_restart: %s", d->pid > 0 ?
			 "pagekeeperd still runs" : "no daemon was started");
		return -EINVAL;
	}
	return spawn(d, true, err, err_len);
}

int daemon_kill(struct pk_daemon *d, int sig, int timeout_ms, int *status, char *err,
		size_t err_len)
{
	uint64_t t0 = now_ns();
	int r = 0;

	if (d->pid <= 0) {
		snprintf(err, err_len, "daemon_kill: no daemon runs");
		return -ESRCH;
	}
	if (kill(d->pid, sig) < 0) {
		r = -errno;
		snprintf(err, err_len, "kill(%d, %s): %s", (int)d->pid, strsignal(sig),
			 strerror(errno));
		return r;
	}
	for (;;) {
		pid_t w = waitpid(d->pid, status, WNOHANG);
		if (w == d->pid)
			break;
		if (w < 0 && errno != EINTR) {
			r = -errno;
			snprintf(err, err_len, "waitpid(%d): %s", (int)d->pid, strerror(errno));
			break;
		}
		if (now_ns() - t0 > (uint64_t)timeout_ms * 1000000ull) {
			snprintf(err, err_len, "pagekeeperd did not exit within %d ms of %s; "
				 "killed", timeout_ms, strsignal(sig));
			kill(d->pid, SIGKILL);
			waitpid(d->pid, status, 0);
			r = -ETIMEDOUT;
			break;
		}
		usleep(1000);
	}
	cleanup_forget_pid(d->pid);
	d->pid = -1;
	return r;
}

int daemon_log_uint(const struct pk_daemon *d, const char *prefix, int wait_ms,
		    unsigned *out)
{
	uint64_t t0 = now_ns();
	char buf[1024];

	for (;;) {
		FILE *f = fopen(d->log, "r");
		while (f && fgets(buf, sizeof(buf), f)) {
			const char *p = strstr(buf, prefix);
			if (p && sscanf(p + strlen(prefix), "%u", out) == 1) {
				fclose(f);
				return 0;
			}
		}
		if (f)
			fclose(f);
		if (now_ns() - t0 >= (uint64_t)wait_ms * 1000000ull)
			return -ENOENT;
		usleep(10000);
	}
}

void daemon_log_tail(const struct pk_daemon *d, FILE *out, int lines)
{
	FILE *f = fopen(d->log, "r");
	char **ring, buf[512];
	int n = 0;

	if (!f)
		return;
	ring = calloc((size_t)lines, sizeof(*ring));
	if (!ring) {
		fclose(f);
		return;
	}
	while (fgets(buf, sizeof(buf), f)) {
		free(ring[n % lines]);
		ring[n % lines] = strdup(buf);
		n++;
	}
	fclose(f);
	int first = n > lines ? n - lines : 0;
	if (n == 0)
		fprintf(out, "  | (daemon log is empty)\n");
	for (int i = first; i < n; i++) {
		const char *s = ring[i % lines];
		fprintf(out, "  | %s%s", s ? s : "", s && strchr(s, '\n') ? "" : "\n");
	}
	for (int i = 0; i < lines; i++)
		free(ring[i]);
	free(ring);
}

void daemon_usage(const struct pk_daemon *d, struct daemon_usage *u)
{
	char path[64], line[256];

	*u = (struct daemon_usage){ -1, -1, -1, -1 };
	if (d->pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)d->pid);
	FILE *f = fopen(path, "r");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			sscanf(line, "VmRSS: %ld", &u->rss_kib);
			sscanf(line, "RssShmem: %ld", &u->rss_shmem_kib);
			sscanf(line, "Threads: %ld", &u->threads);
		}
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)d->pid);
	DIR *dir = opendir(path);
	if (dir) {
		long n = 0;
		struct dirent *de;
		while ((de = readdir(dir)))
			if (de->d_name[0] != '.')
				n++;
		closedir(dir);
		u->fds = n;
	}
}

void daemon_stop(struct pk_daemon *d)
{
	if (d->pid > 0)
		cleanup_stop_pid(d->pid);
	d->pid = -1;
	if (d->dir[0])
		cleanup_remove_dir(d->dir);
	if (d->run_dir[0])
		cleanup_remove_dir(d->run_dir);
}
