/*
 * cleanup.c - kill our helper processes and remove our temp dirs, always.
 *
 * What/how/why: see cleanup.h.
 *
 * GLOBALS: this is the only file with mutable globals.  A signal handler
 * gets no argument, so the pids to kill and the directories to remove must
 * be reachable from static storage; nothing else in the benchmark is.
 * Everything the handler calls is async-signal-safe (kill, waitpid,
 * nanosleep, open, getdents64, unlinkat, close, gettid, _exit, raise).
 */
#include "cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TRACKED 40 /* pk-bench-share: up to 32 lab guests and a daemon */
#define MAX_DIRS 8 /* two per daemon: its state dir and its run dir */

struct tracked {
	volatile pid_t pid; /* 0 = free slot */
	int grace_ms;
};

struct tracked_dir {
	char path[PATH_MAX];
	volatile sig_atomic_t set;
};

static struct tracked g_pids[MAX_TRACKED];
static struct tracked_dir g_dirs[MAX_DIRS];
static int g_installed;

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* SIGTERM, wait up to grace_ms, then SIGKILL; always reaps. */
static void stop_one(pid_t pid, int grace_ms)
{
	int status;

	if (pid <= 0)
		return;
	if (grace_ms > 0) {
		if (kill(pid, SIGTERM) < 0 && errno == ESRCH) {
			waitpid(pid, &status, WNOHANG);
			return;
		}
		for (int waited = 0; waited < grace_ms; waited += 10) {
			pid_t r = waitpid(pid, &status, WNOHANG);
			if (r == pid || (r < 0 && errno == ECHILD))
				return;
			sleep_ms(10);
		}
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

/* Recursive removal with async-signal-safe calls only. */
static void rm_tree_at(int dirfd, const char *name, int depth)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return;
	if (depth > 16)
		return;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	char buf[4096];
	for (;;) {
		long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (long off = 0; off < n;) {
			struct {
				unsigned long long ino;
				long long off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *de = (void *)(buf + off);
			off += de->reclen;
			if (strcmp(de->name, ".") && strcmp(de->name, ".."))
				rm_tree_at(fd, de->name, depth + 1);
		}
	}
	close(fd);
	unlinkat(dirfd, name, AT_REMOVEDIR);
}

bool proc_alive(pid_t pid)
{
	siginfo_t si;

	if (pid <= 0)
		return false;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return false;
	return si.si_pid == 0;
}

static void remove_slot(struct tracked_dir *t)
{
	if (!t->set)
		return;
	t->set = 0;
	rm_tree_at(AT_FDCWD, t->path, 0);
}

void cleanup_remove_dir(const char *path)
{
	for (int i = 0; i < MAX_DIRS; i++)
		if (g_dirs[i].set && !strcmp(g_dirs[i].path, path))
			remove_slot(&g_dirs[i]);
}

/*
 * Teardown runs once.  A second caller (the main thread exiting while the
 * watchdog thread already tears down) waits until the first has finished,
 * so the process cannot _exit halfway through removing the directory.
 * A signal that interrupts the teardown in the thread running it returns
 * at once (the interrupted teardown then completes).
 */
static volatile int g_state;  /* 0 idle, 1 running, 2 done */
static volatile pid_t g_runner; /* tid running the teardown */

static bool teardown_begin(void)
{
	int expected = 0;

	if (__atomic_compare_exchange_n(&g_state, &expected, 1, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		g_runner = (pid_t)syscall(SYS_gettid);
		return true;
	}
	if (g_runner == (pid_t)syscall(SYS_gettid))
		return false; /* signal inside our own teardown */
	while (__atomic_load_n(&g_state, __ATOMIC_ACQUIRE) != 2)
		sleep_ms(5);
	return false;
}

static void teardown(void)
{
	for (int i = 0; i < MAX_TRACKED; i++) {
		pid_t pid = g_pids[i].pid;
		if (pid > 0) {
			g_pids[i].pid = 0;
			stop_one(pid, g_pids[i].grace_ms);
		}
	}
	for (int i = 0; i < MAX_DIRS; i++)
		remove_slot(&g_dirs[i]);
}

void cleanup_all(void)
{
	if (!teardown_begin())
		return;
	teardown();
	__atomic_store_n(&g_state, 2, __ATOMIC_RELEASE);
}

static bool in_own_teardown(void)
{
	return __atomic_load_n(&g_state, __ATOMIC_ACQUIRE) == 1 &&
	       g_runner == (pid_t)syscall(SYS_gettid);
}

static void on_signal(int sig)
{
	if (in_own_teardown())
		return;
	cleanup_all();
	signal(sig, SIG_DFL);
	raise(sig);
	_exit(128 + sig);
}

void cleanup_install(void)
{
	if (g_installed)
		return;
	g_installed = 1;
	atexit(cleanup_all);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

int cleanup_track_pid(pid_t pid, int grace_ms)
{
	for (int i = 0; i < MAX_TRACKED; i++) {
		if (g_pids[i].pid == 0) {
			g_pids[i].grace_ms = grace_ms;
			g_pids[i].pid = pid;
			return 0;
		}
	}
	return -ENOSPC;
}

void cleanup_stop_pid(pid_t pid)
{
	for (int i = 0; i < MAX_TRACKED; i++) {
		if (g_pids[i].pid == pid) {
			g_pids[i].pid = 0;
			stop_one(pid, g_pids[i].grace_ms);
			return;
		}
	}
}

void cleanup_forget_pid(pid_t pid)
{
	for (int i = 0; i < MAX_TRACKED; i++)
		if (g_pids[i].pid == pid)
			g_pids[i].pid = 0;
}

int cleanup_track_dir(const char *path)
{
	size_t n = strlen(path);

	if (n >= PATH_MAX)
		return -ENAMETOOLONG;
	for (int i = 0; i < MAX_DIRS; i++) {
		if (!g_dirs[i].set) {
			memcpy(g_dirs[i].path, path, n + 1);
			g_dirs[i].set = 1;
			return 0;
		}
	}
	return -ENOSPC;
}
