/*
 * proc_run.c - find and run the external tools pk-bench-swap needs.
 *
 * What/how/why: see proc_run.h.
 */
#include "proc_run.h"
#include "cleanup.h"
#include "sys_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int find_exe(const char *name, char *out, size_t len)
{
	const char *env = getenv("PATH");
	char path[8192];

	snprintf(path, sizeof(path), "%s:/usr/local/sbin:/usr/sbin:/sbin",
		 env && *env ? env : "/usr/local/bin:/usr/bin:/bin");
	char *save = NULL;
	for (char *dir = strtok_r(path, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		if ((size_t)snprintf(out, len, "%s/%s", *dir ? dir : ".", name) >= len)
			continue;
		if (access(out, X_OK) == 0)
			return 0;
	}
	out[0] = '\0';
	return -ENOENT;
}

int run_cmd(char *const argv[], const char *out_path, char *err, size_t err_len)
{
	const char *target = out_path ? out_path : "/dev/null";
	int out = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (out < 0) {
		int e = -errno;
		snprintf(err, err_len, "open %s: %s", target, strerror(errno));
		return e;
	}
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		close(out);
		snprintf(err, err_len, "fork: %s", strerror(errno));
		return e;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		guard_close_in_child();
		dup2(out, 1);
		execv(argv[0], argv);
		dprintf(2, "pk-bench-swap: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(out);
	cleanup_track_pid(pid, 1000);
	int status;
	pid_t r;
	while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	cleanup_forget_pid(pid);
	if (r < 0) {
		int e = -errno;
		snprintf(err, err_len, "waitpid %s: %s", argv[0], strerror(errno));
		return e;
	}
	if (WIFSIGNALED(status)) {
		snprintf(err, err_len, "%s died of signal %d", argv[0], WTERMSIG(status));
		return -EINTR;
	}
	if (WEXITSTATUS(status))
		snprintf(err, err_len, "%s exited with status %d", argv[0], WEXITSTATUS(status));
	return WEXITSTATUS(status);
}
