/*
 * daemon_fixture.c - spawn/stop a private pagekeeperd and talk to it raw.
 * See daemon_fixture.h for the lifetime rules.
 */
#include "tests/daemon_fixture.h"
#include "engine/uffd_compat.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <check.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

#define MAX_LIVE 8

/* Daemons started by this process and not yet stopped (atexit guard). */
static struct pk_test_daemon *live[MAX_LIVE];
static int guard_installed;

long pk_test_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Append the last part of the daemon's log to buf. */
static void append_log_tail(const char *log, char *buf, size_t len)
{
	char tail[512];
	size_t used = strlen(buf);
	int fd = open(log, O_RDONLY | O_CLOEXEC);
	off_t end;
	ssize_t n;

	if (fd < 0)
		return;
	end = lseek(fd, 0, SEEK_END);
	if (end > (off_t)sizeof(tail) - 1)
		lseek(fd, end - (off_t)sizeof(tail) + 1, SEEK_SET);
	else
		lseek(fd, 0, SEEK_SET);
	n = read(fd, tail, sizeof(tail) - 1);
	close(fd);
	if (n <= 0)
		return;
	tail[n] = '\0';
	snprintf(buf + used, len - used, "; daemon log: %s", tail);
}

static void dump_log(const char *log)
{
	char buf[4096];
	int fd = open(log, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return;
	fprintf(stderr, "---- %s ----\n", log);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stderr);
	fprintf(stderr, "---- end of daemon log ----\n");
	close(fd);
}

static void exit_guard(void)
{
	for (int i = 0; i < MAX_LIVE; i++) {
		struct pk_test_daemon *d = live[i];
		if (!d || d->owner != getpid())
			continue;
		fprintf(stderr,
			"daemon_fixture: the test exited with pagekeeperd pid %d "
			"still running; stopping it\n", (int)d->pid);
		dump_log(d->log);
		pk_test_daemon_stop(d);
	}
}

static void track(struct pk_test_daemon *d, int on)
{
	if (!guard_installed) {
		atexit(exit_guard);
		guard_installed = 1;
	}
	for (int i = 0; i < MAX_LIVE; i++) {
		if (on && !live[i]) {
			live[i] = d;
			return;
		}
		if (!on && live[i] == d)
			live[i] = NULL;
	}
}

static int rm_entry(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	remove(path);
	return 0;
}

static void rm_rf(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int pk_test_main_in_top_dir(struct Suite *s, const char *name, char *top,
			    size_t len)
{
	SRunner *sr;
	int failed;

	snprintf(top, len, "/tmp/pk-%s-XXXXXX", name);
	if (!mkdtemp(top)) {
		fprintf(stderr, "test_%s: mkdtemp %s: %s\n", name, top,
			strerror(errno));
		return EXIT_FAILURE;
	}
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	rm_rf(top); /* outside a test: no Check assertion */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

static int try_connect(const char *sock)
{
	int fd = pk_test_connect(sock);
	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

/* Reap the daemon if it exited; describe how in d->error. */
static int reap_if_exited(struct pk_test_daemon *d)
{
	int status;
	pid_t r = waitpid(d->pid, &status, WNOHANG);

	if (r == 0)
		return 0;
	if (r < 0)
		snprintf(d->error, sizeof(d->error),
			 "pagekeeperd pid %d: waitpid: %s", (int)d->pid,
			 strerror(errno));
	else if (WIFEXITED(status))
		snprintf(d->error, sizeof(d->error),
			 "pagekeeperd pid %d exited with status %d", (int)d->pid,
			 WEXITSTATUS(status));
	else
		snprintf(d->error, sizeof(d->error),
			 "pagekeeperd pid %d killed by signal %d (%s)",
			 (int)d->pid, WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	append_log_tail(d->log, d->error, sizeof(d->error));
	d->exited = d->pid;
	d->pid = 0;
	return 1;
}

/*
 * The daemon's environment: the test's, with detect_leaks=1 appended to
 * ASAN_OPTIONS, so that every daemon of the ASan build runs LeakSanitizer
 * at exit whoever started the test (options later in the string win).
 * Built before fork: the child may only make async-signal-safe calls.
 */
static char **daemon_environ(char *asan_opts, size_t len)
{
	extern char **environ;
	const char *old = getenv("ASAN_OPTIONS");
	size_t n = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	snprintf(asan_opts, len, "ASAN_OPTIONS=%s%sdetect_leaks=1",
		 old ? old : "", old && *old ? ":" : "");
	n = 0;
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "ASAN_OPTIONS=", 13) != 0)
			env[n++] = *e;
	env[n++] = asan_opts;
	env[n] = NULL;
	return env;
}

/* Runs in the forked child: only async-signal-safe calls until execve. */
static void exec_daemon(const struct pk_test_daemon *d, char *const argv[],
			char *const envp[], pid_t parent)
{
	sigset_t none;
	int fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127); /* the starter died before prctl took effect */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0)
		dup2(fd, 0);
	fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	/* Do not hand the test's own fds (Check's, guests') to the daemon. */
	if (syscall(SYS_close_range, 3U, ~0U, 0) < 0)
		for (int i = 3; i < 1024; i++)
			close(i);
	if (envp)
		execve(argv[0], argv, envp);
	else
		execv(argv[0], argv);
	_exit(127); /* the log stays empty; start() reports exit status 127 */
}

int pk_test_pid_running(pid_t pid)
{
	char path[64], buf[256], *p;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* "pid (comm) S ..." */
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/*
 * The cleaner: removes the directory (and dumps the log) if the starter
 * dies without pk_test_daemon_stop().  Runs in its own process group so
 * Check's killpg of a failed test does not take it down.
 */
static void run_cleaner(int rfd, pid_t daemon, const char *dir,
			const char *run_dir, const char *log)
{
	struct stat st;
	char c;

	setpgid(0, 0);
	if (rfd != 0) {
		dup2(rfd, 0);
		close(rfd);
	}
	/* Keep stdin (the pipe) and stderr only: hold nothing of the test's. */
	close(1);
	if (syscall(SYS_close_range, 3U, ~0U, 0) < 0)
		for (int i = 3; i < 1024; i++)
			close(i);
	while (read(0, &c, 1) < 0 && errno == EINTR)
		;
	/* The starter stopped the daemon or is gone: wait for the daemon. */
	for (int i = 0; i < 500 && pk_test_pid_running(daemon); i++)
		sleep_ms(10);
	if (pk_test_pid_running(daemon))
		kill(daemon, SIGKILL); /* PDEATHSIG failed: never leak it */
	if (stat(dir, &st) == 0) {
		fprintf(stderr, "daemon_fixture: the test ended without stopping "
			"pagekeeperd pid %d; removing %s\n", (int)daemon, dir);
		dump_log(log);
		rm_rf(dir);
	}
	rm_rf(run_dir);
	_exit(0);
}

static void start_cleaner(struct pk_test_daemon *d)
{
	int p[2];
	pid_t pid;

	d->cleaner_fd = -1;
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	pid = fork();
	if (pid == 0) {
		close(p[1]);
		run_cleaner(p[0], d->pid, d->dir, d->run_dir, d->log);
	}
	close(p[0]);
	if (pid < 0) {
		close(p[1]);
		return;
	}
	d->cleaner_fd = p[1];
}

/* Fork and exec the daemon on d's directories; wait for its socket. */
static int spawn(struct pk_test_daemon *d, const char *bin)
{
	pid_t self = getpid();
	char *argv[64], *copy, **envp, asan_opts[512];
	int argc = 0;
	long deadline;

	snprintf(d->sock, sizeof(d->sock), "%s/pk.sock", d->dir);
	argv[argc++] = (char *)bin;
	argv[argc++] = "--socket";
	argv[argc++] = d->sock;
	argv[argc++] = "--state-dir";
	argv[argc++] = d->state_dir;
	argv[argc++] = "--run-dir";
	argv[argc++] = d->run_dir;
	argv[argc++] = "--foreground";
	argv[argc++] = "--quiet";
	copy = strdup(d->extra_args);
	for (char *save = NULL, *t = copy ? strtok_r(copy, " \t", &save) : NULL;
	     t && argc < 63; t = strtok_r(NULL, " \t", &save)) {
		/* A later --socket wins in the daemon: wait on that one. */
		if (argc > 0 && strcmp(argv[argc - 1], "--socket") == 0)
			snprintf(d->sock, sizeof(d->sock), "%s", t);
		argv[argc++] = t;
	}
	argv[argc] = NULL;

	envp = daemon_environ(asan_opts, sizeof(asan_opts));
	fflush(NULL); /* no duplicated stdio buffers in the child */
	d->pid = fork();
	if (d->pid == 0)
		exec_daemon(d, argv, envp, self);
	free(copy);
	free(envp);
	if (d->pid < 0) {
		int e = errno;
		snprintf(d->error, sizeof(d->error), "fork: %s", strerror(e));
		d->pid = 0;
		return -e;
	}
	track(d, 1);
	if (d->cleaner_fd < 0)
		start_cleaner(d);

	deadline = pk_test_now_ms() + PK_TEST_SOCKET_WAIT_MS;
	for (;;) {
		if (reap_if_exited(d)) {
			char why[sizeof(d->error)];
			int k;
			memcpy(why, d->error, sizeof(why));
			k = snprintf(d->error, sizeof(d->error),
				     "pagekeeperd never listened on %s: ",
				     d->sock);
			if (k > 0 && (size_t)k < sizeof(d->error))
				memccpy(d->error + k, why, '\0',
					sizeof(d->error) - (size_t)k - 1);
			d->error[sizeof(d->error) - 1] = '\0';
			return -ECHILD;
		}
		if (try_connect(d->sock) == 0)
			return 0;
		if (pk_test_now_ms() > deadline)
			break;
		sleep_ms(10);
	}
	snprintf(d->error, sizeof(d->error),
		 "pagekeeperd (pid %d, %s) did not accept connections on %s "
		 "within %d ms",
		 (int)d->pid, bin, d->sock, PK_TEST_SOCKET_WAIT_MS);
	append_log_tail(d->log, d->error, sizeof(d->error));
	return -ETIMEDOUT;
}

static const char *daemon_bin(struct pk_test_daemon *d)
{
	const char *bin = getenv("PK_DAEMON");

	if (!bin || !*bin) {
		snprintf(d->error, sizeof(d->error),
			 "PK_DAEMON is not set: run this test via `meson test` "
			 "(or set PK_DAEMON to the pagekeeperd binary)");
		return NULL;
	}
	if (access(bin, X_OK) < 0) {
		snprintf(d->error, sizeof(d->error), "PK_DAEMON=%s: %s", bin,
			 strerror(errno));
		return NULL;
	}
	return bin;
}

int pk_test_daemon_start(struct pk_test_daemon *d, const char *extra_args)
{
	const char *bin;
	int err;

	memset(d, 0, sizeof(*d));
	d->cleaner_fd = -1;
	bin = daemon_bin(d);
	if (!bin)
		return -EINVAL;
	snprintf(d->extra_args, sizeof(d->extra_args), "%s",
		 extra_args ? extra_args : "");
	snprintf(d->dir, sizeof(d->dir), "/tmp/pk-test-XXXXXX");
	snprintf(d->run_dir, sizeof(d->run_dir), "/dev/shm/pk-run-XXXXXX");
	if (!mkdtemp(d->dir) || !mkdtemp(d->run_dir)) {
		int e = errno;
		snprintf(d->error, sizeof(d->error), "mkdtemp %s or %s: %s",
			 d->dir, d->run_dir, strerror(e));
		rmdir(d->dir);
		d->dir[0] = d->run_dir[0] = '\0';
		return -e;
	}
	snprintf(d->state_dir, sizeof(d->state_dir), "%s/state", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir);
	d->owner = getpid();
	err = spawn(d, bin);
	if (err) {
		if (d->pid == 0 && !d->exited) {
			rm_rf(d->dir);
			rm_rf(d->run_dir);
			d->dir[0] = d->run_dir[0] = '\0';
		} else {
			char why[sizeof(d->error)];
			memcpy(why, d->error, sizeof(why));
			pk_test_daemon_stop(d);
			memcpy(d->error, why, sizeof(why));
		}
	}
	return err;
}

int pk_test_daemon_restart(struct pk_test_daemon *d, const char *extra_args)
{
	const char *bin = daemon_bin(d);

	if (!bin)
		return -EINVAL;
	if (d->pid > 0 || !d->dir[0]) {
		snprintf(d->error, sizeof(d->error),
			 "pk_test_daemon_restart: %s", d->pid > 0
			 ? "pagekeeperd still runs" : "no daemon was started");
		return -EINVAL;
	}
	if (extra_args)
		snprintf(d->extra_args, sizeof(d->extra_args), "%s", extra_args);
	return spawn(d, bin);
}

/*
 * A sanitizer report in the daemon's log: ASan, LeakSanitizer, UBSan or
 * TSan.  Copies the report's first line to why.  1 if there is one.
 */
static int log_has_report(const char *log, char *why, size_t len)
{
	static const char *const marks[] = {
		"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
		"runtime error:", "SUMMARY: UndefinedBehaviorSanitizer",
		"WARNING: ThreadSanitizer",
	};
	FILE *f = fopen(log, "re");
	char *line = NULL;
	size_t cap = 0;
	int found = 0;

	if (!f)
		return 0;
	while (!found && getline(&line, &cap, f) > 0)
		for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
			if (strstr(line, marks[i])) {
				line[strcspn(line, "\n")] = '\0';
				snprintf(why, len, "%s", line);
				found = 1;
				break;
			}
	free(line);
	fclose(f);
	return found;
}

/*
 * Keep the log of a failed daemon where meson's log points: its tail goes
 * to stderr (meson's test log holds the test's stderr) and the whole file
 * to $PK_TEST_LOGDIR (default: meson-logs/ of the test's working
 * directory, else the working directory).  Appends the path to d->error.
 */
static void keep_log(struct pk_test_daemon *d, pid_t pid)
{
	const char *dir = getenv("PK_TEST_LOGDIR");
	char path[PATH_MAX + 32], abs[PATH_MAX], buf[8192];
	struct stat st;
	int in, out;
	ssize_t n;
	size_t used;

	if (!dir || !*dir)
		dir = stat("meson-logs", &st) == 0 ? "meson-logs" : ".";
	snprintf(path, sizeof(path), "%s/daemon-%d.log",
		 realpath(dir, abs) ? abs : dir, (int)pid);
	in = open(d->log, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return;
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out >= 0) {
		while ((n = read(in, buf, sizeof(buf))) > 0)
			if (write(out, buf, (size_t)n) != n)
				break;
		close(out);
		used = strlen(d->error);
		snprintf(d->error + used, sizeof(d->error) - used,
			 " (whole daemon log kept in %s)", path);
	}
	close(in);
	fprintf(stderr, "daemon_fixture: %s\n", d->error);
	dump_log(d->log);
}

/*
 * Judge how the daemon ended: status from waitpid, expected_sig 0 for
 * "exit status 0".  0 if that is how it ended and its log is clean.
 */
static int judge(struct pk_test_daemon *d, pid_t pid, int status,
		 int expected_sig)
{
	char report[512];

	if (expected_sig == 0 && !(WIFEXITED(status) &&
				   WEXITSTATUS(status) == 0)) {
		if (WIFEXITED(status))
			snprintf(d->error, sizeof(d->error),
				 "pagekeeperd pid %d exited with status %d on "
				 "SIGTERM, not 0", (int)pid,
				 WEXITSTATUS(status));
		else
			snprintf(d->error, sizeof(d->error),
				 "pagekeeperd pid %d died of signal %d (%s) "
				 "instead of exiting 0 on SIGTERM", (int)pid,
				 WTERMSIG(status), strsignal(WTERMSIG(status)));
	} else if (expected_sig != 0 && !(WIFSIGNALED(status) &&
					  WTERMSIG(status) == expected_sig)) {
		snprintf(d->error, sizeof(d->error),
			 "pagekeeperd pid %d did not die of signal %d as "
			 "meant (wait status 0x%x)", (int)pid, expected_sig,
			 status);
	} else if (log_has_report(d->log, report, sizeof(report))) {
		snprintf(d->error, sizeof(d->error),
			 "pagekeeperd pid %d: sanitizer report in its log: %s",
			 (int)pid, report);
	} else {
		return 0;
	}
	keep_log(d, pid);
	return -1;
}

/* SIGTERM, wait up to the scaled deadline; SIGKILL if still there. */
static int terminate(struct pk_test_daemon *d, int *status)
{
	long deadline = pk_test_deadline_ms(PK_TEST_STOP_WAIT_MS);
	pid_t r;

	kill(d->pid, SIGTERM);
	while ((r = waitpid(d->pid, status, WNOHANG)) == 0) {
		if (pk_test_now_ms() > deadline) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, status, 0);
			snprintf(d->error, sizeof(d->error),
				 "pagekeeperd pid %d did not exit within "
				 "%.0f ms of SIGTERM; killed", (int)d->pid,
				 PK_TEST_STOP_WAIT_MS * pk_test_time_scale());
			return -1;
		}
		sleep_ms(5);
	}
	return r < 0 ? -1 : 0;
}

int pk_test_daemon_stop(struct pk_test_daemon *d)
{
	int rc = d->result;

	if (d->owner != getpid())
		return 0; /* a forked copy: not ours to stop */
	if (d->pid > 0) {
		int status = 0;
		pid_t pid = d->pid;

		if (terminate(d, &status) < 0) {
			if (!d->error[0])
				snprintf(d->error, sizeof(d->error),
					 "pagekeeperd pid %d: waitpid: %s",
					 (int)pid, strerror(errno));
			keep_log(d, pid);
			rc = -1;
		} else if (judge(d, pid, status, 0) < 0) {
			rc = -1;
		}
		d->pid = 0;
	} else if (d->exited && rc == 0) {
		/* It exited on its own, unasked: reap_if_exited() said how. */
		keep_log(d, d->exited);
		d->exited = 0;
		rc = -1;
	}
	rm_rf(d->dir);
	rm_rf(d->run_dir);
	d->dir[0] = d->run_dir[0] = '\0';
	if (d->cleaner_fd >= 0) {
		close(d->cleaner_fd); /* the cleaner finds nothing left and exits */
		d->cleaner_fd = -1;
	}
	track(d, 0);
	d->result = rc;
	return rc;
}

void pk_test_daemon_stop_ok(struct pk_test_daemon *d)
{
	int rc = pk_test_daemon_stop(d);
	ck_assert_msg(rc == 0, "%s", d->error);
}

int pk_test_daemon_kill(struct pk_test_daemon *d, int sig)
{
	int status;
	pid_t pid = d->pid;

	if (pid <= 0) {
		snprintf(d->error, sizeof(d->error),
			 "pk_test_daemon_kill: pagekeeperd is not running");
		return -1;
	}
	if (kill(pid, sig) < 0 || waitpid(pid, &status, 0) < 0) {
		snprintf(d->error, sizeof(d->error), "kill/waitpid %d: %s",
			 (int)pid, strerror(errno));
		return -1;
	}
	d->pid = 0;
	d->exited = 0;
	if (judge(d, pid, status, sig == SIGTERM ? 0 : sig) < 0) {
		d->result = -1;
		return -1;
	}
	return 0;
}

double pk_test_time_scale(void)
{
	const char *env = getenv("PK_TEST_TIME_SCALE");
	double s;

	if (env && *env && (s = strtod(env, NULL)) > 0)
		return s;
#if defined(__SANITIZE_ADDRESS__)
	return 3.0;
#elif defined(__SANITIZE_THREAD__) /* issue 17: tools/test --tsan */
	return 5.0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	return 3.0;
#endif
#endif
	return 1.0;
}

long pk_test_deadline_ms(long work_ms)
{
	return pk_test_now_ms() + (long)((double)work_ms * pk_test_time_scale());
}

int pk_test_daemon_alive(struct pk_test_daemon *d)
{
	if (d->pid <= 0) {
		if (!d->error[0])
			snprintf(d->error, sizeof(d->error),
				 "pagekeeperd is not running");
		return 0;
	}
	return !reap_if_exited(d);
}

int pk_test_daemon_fd_count(const struct pk_test_daemon *d)
{
	char path[64];
	DIR *dir;
	struct dirent *de;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)d->pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((de = readdir(dir)))
		if (de->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

int pk_test_daemon_settled_fd_count(const struct pk_test_daemon *d)
{
	long deadline = pk_test_now_ms() + 3000, since = pk_test_now_ms();
	int n = pk_test_daemon_fd_count(d);

	while (pk_test_now_ms() - since < 200 && pk_test_now_ms() < deadline) {
		int m;
		sleep_ms(10);
		m = pk_test_daemon_fd_count(d);
		if (m != n) {
			n = m;
			since = pk_test_now_ms();
		}
	}
	return n;
}

int pk_test_daemon_wait_fd_count(const struct pk_test_daemon *d, int want,
				 int timeout_ms)
{
	long deadline = pk_test_now_ms() + timeout_ms;
	int n;

	while ((n = pk_test_daemon_fd_count(d)) != want && pk_test_now_ms() < deadline)
		sleep_ms(5);
	return n;
}

int pk_test_connect(const char *sock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(sock) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

int pk_test_send(int fd, const void *buf, size_t len, const int *fds,
		 int n_fds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (n_fds < 0 || n_fds > 16)
		return -EINVAL;
	if (n_fds) {
		struct cmsghdr *cm;
		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n_fds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n_fds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)n_fds);
	}
	if (len > 200 * 1024) {
		int sz = (int)len * 2;
		setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz));
	}
	n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

ssize_t pk_test_recv(int fd, void *buf, size_t len, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;
	int r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	n = recv(fd, buf, len, MSG_DONTWAIT);
	return n < 0 ? -errno : n;
}

int pk_test_recv_reply(int fd, struct pk_reply_msg *reply)
{
	char buf[sizeof(*reply) + 1];
	ssize_t n = pk_test_recv(fd, buf, sizeof(buf), PK_TEST_REPLY_WAIT_MS);

	if (n < 0)
		return (int)n;
	if (n == 0)
		return -ECONNRESET; /* the daemon closed without replying */
	return pk_reply_decode(buf, (size_t)n, reply);
}

int pk_test_request(const char *sock, const void *buf, size_t len,
		    const int *fds, int n_fds, struct pk_reply_msg *reply,
		    int *conn_out)
{
	int fd = pk_test_connect(sock), err;

	if (conn_out)
		*conn_out = -1;
	if (fd < 0)
		return fd;
	err = pk_test_send(fd, buf, len, fds, n_fds);
	if (!err)
		err = pk_test_recv_reply(fd, reply);
	if (!err && conn_out)
		*conn_out = fd;
	else
		close(fd);
	return err;
}

int pk_test_status_json(const char *sock, char **json)
{
	struct pk_msg_header req;
	char *buf = malloc(PK_PROTO_MAX_MSG + 1);
	uint16_t type;
	ssize_t n;
	int fd, err;

	*json = NULL;
	if (!buf)
		return -ENOMEM;
	fd = pk_test_connect(sock);
	if (fd < 0) {
		free(buf);
		return fd;
	}
	pk_msg_header_init(&req, PK_MSG_STATUS, sizeof(req));
	err = pk_test_send(fd, &req, sizeof(req), NULL, 0);
	if (err)
		goto out;
	n = pk_test_recv(fd, buf, PK_PROTO_MAX_MSG + 1, PK_TEST_REPLY_WAIT_MS);
	if (n <= 0) {
		err = n < 0 ? (int)n : -ECONNRESET;
		goto out;
	}
	err = pk_msg_check_header(buf, (size_t)n, &type, NULL, 0);
	if (err)
		goto out;
	if (type == PK_MSG_ERROR_REPLY) {
		struct pk_reply_msg r;
		err = pk_reply_decode(buf, (size_t)n, &r);
		err = err ? err : (r.status ? r.status : -EPROTO);
		goto out;
	}
	if (type != PK_MSG_STATUS_REPLY || (size_t)n <= sizeof(req) ||
	    buf[n - 1] != '\0') {
		err = -EBADMSG;
		goto out;
	}
	*json = strdup(buf + sizeof(req));
	err = *json ? 0 : -ENOMEM;
out:
	close(fd);
	free(buf);
	return err;
}

int pk_test_vm_count(const char *sock)
{
	char *json;
	json_object *root, *vms;
	int err = pk_test_status_json(sock, &json), n;

	if (err)
		return err;
	root = json_tokener_parse(json);
	free(json);
	if (!root)
		return -EBADMSG;
	if (!json_object_object_get_ex(root, "vms", &vms) ||
	    !json_object_is_type(vms, json_type_array))
		n = -EBADMSG;
	else
		n = (int)json_object_array_length(vms);
	json_object_put(root);
	return n;
}

int pk_test_wait_vm_count(const char *sock, int want, int timeout_ms)
{
	long deadline = pk_test_now_ms() + timeout_ms;
	int n;

	while ((n = pk_test_vm_count(sock)) != want && pk_test_now_ms() < deadline)
		sleep_ms(10);
	return n;
}

int pk_test_uffd_open(uint64_t features, char *err, size_t err_len)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		int e = errno;
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (dev < 0) {
			if (err)
				snprintf(err, err_len,
					 "no userfaultfd: syscall failed (%s) and "
					 "/dev/userfaultfd cannot be opened (%s)",
					 strerror(e), strerror(errno));
			return -e;
		}
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		e = errno;
		close(dev);
		if (fd < 0) {
			if (err)
				snprintf(err, err_len,
					 "USERFAULTFD_IOC_NEW on /dev/userfaultfd: %s",
					 strerror(e));
			return -e;
		}
	}
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int e = errno;
		if (err)
			snprintf(err, err_len,
				 "UFFDIO_API with features 0x%llx failed (%s): "
				 "the kernel lacks userfaultfd features pagekeeper "
				 "needs",
				 (unsigned long long)features, strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}

int pk_test_uffd_register(int uffd, void *addr, size_t len)
{
	struct uffdio_register r = {
		.range = { .start = (uint64_t)(uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};
	return ioctl(uffd, UFFDIO_REGISTER, &r) < 0 ? -errno : 0;
}

int pk_test_guest_create(struct pk_test_guest *g, size_t map_len,
			 size_t file_len)
{
	memset(g, 0, sizeof(*g));
	g->memfd = g->uffd = -1;
	g->memfd = memfd_create("pk-test-guest", MFD_CLOEXEC);
	if (g->memfd < 0)
		return -errno;
	if (ftruncate(g->memfd, (off_t)file_len) < 0)
		goto fail;
	g->addr = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       g->memfd, 0);
	if (g->addr == MAP_FAILED) {
		g->addr = NULL;
		goto fail;
	}
	g->map_len = map_len;
	g->file_len = file_len;
	return 0;
fail:;
	int e = -errno;
	pk_test_guest_destroy(g);
	return e;
}

int pk_test_guest_add_uffd(struct pk_test_guest *g, uint64_t features)
{
	int err;

	g->uffd = pk_test_uffd_open(features, NULL, 0);
	if (g->uffd < 0) {
		err = g->uffd;
		g->uffd = -1;
		return err;
	}
	err = pk_test_uffd_register(g->uffd, g->addr, g->map_len);
	if (err) {
		close(g->uffd);
		g->uffd = -1;
	}
	return err;
}

void pk_test_guest_destroy(struct pk_test_guest *g)
{
	if (g->uffd >= 0)
		close(g->uffd); /* unregisters the mapping */
	if (g->addr)
		munmap(g->addr, g->map_len);
	if (g->memfd >= 0)
		close(g->memfd);
	memset(g, 0, sizeof(*g));
	g->memfd = g->uffd = -1;
}
