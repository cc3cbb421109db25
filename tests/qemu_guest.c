/*
 * qemu_guest.c - run a real QEMU test guest from Check tests: start,
 * stop, and the registry and cleaner that make sure it never outlives its
 * test (see qemu_guest.h).  Reading its serial console: qemu_serial.c.
 */
#include "tests/qemu_guest.h"
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_GUESTS 16
#define MAX_ARGS 96

static struct qemu_guest *registry[MAX_GUESTS];
static int guard_installed;

static void set_error(struct qemu_guest *g, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g->error, sizeof(g->error), fmt, ap);
	va_end(ap);
}

long qemu_guest_elapsed_ms(const struct qemu_guest *g)
{
	return pk_test_now_ms() - g->start_ms;
}

/* ---- registry: stop what this process started ------------------------ */

static void exit_guard(void)
{
	qemu_guest_stop_all();
}

static void register_guest(struct qemu_guest *g)
{
	if (!guard_installed) {
		atexit(exit_guard);
		guard_installed = 1;
	}
	for (int i = 0; i < MAX_GUESTS; i++)
		if (!registry[i]) {
			registry[i] = g;
			return;
		}
}

static void unregister_guest(struct qemu_guest *g)
{
	for (int i = 0; i < MAX_GUESTS; i++)
		if (registry[i] == g)
			registry[i] = NULL;
}

void qemu_guest_stop_all(void)
{
	for (int i = 0; i < MAX_GUESTS; i++)
		if (registry[i] && registry[i]->owner == getpid())
			qemu_guest_stop(registry[i]);
}

/* ---- files ------------------------------------------------------------- */

static void remove_files(const struct qemu_guest *g)
{
	unlink(g->serial);
	unlink(g->qmp);
	unlink(g->qmp_test);
	unlink(g->qemu_log);
	rmdir(g->dir);
}


void qemu_guest_dump_serial(const struct qemu_guest *g, int lines)
{
	fprintf(stderr, "qemu_guest %s: last serial lines (%s):\n", g->name,
		g->serial);
	qemu_log_dump_tail(g->serial, lines, "  | ");
}

/* ---- the cleaner ------------------------------------------------------- */


/* 1 if pid is still our QEMU (its command line has "guest=NAME"). */
static int is_our_qemu(pid_t pid, const char *name)
{
	char buf[8192], want[80];
	size_t n = proc_cmdline(pid, buf, sizeof(buf));

	snprintf(want, sizeof(want), "guest=%s", name);
	for (size_t i = 0; i < n;) {
		if (strcmp(buf + i, want) == 0)
			return 1;
		i += strlen(buf + i) + 1;
	}
	return 0;
}

/*
 * Runs in its own process group (Check's killpg of a failed test does not
 * reach it) until the starter closes the pipe or dies; then makes sure
 * QEMU is gone and its directory too.
 */
static void run_cleaner(int rfd, const struct qemu_guest *g)
{
	struct stat st;
	char c;

	setpgid(0, 0);
	if (rfd != 0) {
		dup2(rfd, 0);
		close(rfd);
	}
	close(1);
	if (syscall(SYS_close_range, 3U, ~0U, 0) < 0)
		for (int i = 3; i < 1024; i++)
			close(i);
	while (read(0, &c, 1) < 0 && errno == EINTR)
		;
	for (int i = 0; i < 500 && pk_test_pid_running(g->pid); i++)
		usleep(10000);
	if (pk_test_pid_running(g->pid) && is_our_qemu(g->pid, g->name))
		kill(g->pid, SIGKILL); /* PDEATHSIG failed: never leak it */
	if (stat(g->dir, &st) == 0) {
		fprintf(stderr, "qemu_guest: the test ended without stopping "
			"QEMU pid %d (guest %s); removing %s\n", (int)g->pid,
			g->name, g->dir);
		qemu_guest_dump_serial(g, 40);
		fprintf(stderr, "qemu_guest %s: QEMU's output (%s):\n",
			g->name, g->qemu_log);
		qemu_log_dump_tail(g->qemu_log, 20, "  | ");
		for (int i = 0; i < 300 && pk_test_pid_running(g->pid); i++)
			usleep(10000);
		remove_files(g);
	}
	_exit(0);
}

static void start_cleaner(struct qemu_guest *g)
{
	int p[2];
	pid_t pid;

	g->cleaner_fd = -1;
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	pid = fork();
	if (pid == 0) {
		close(p[1]);
		run_cleaner(p[0], g);
	}
	close(p[0]);
	if (pid < 0) {
		close(p[1]);
		return;
	}
	g->cleaner_fd = p[1];
}

/* ---- start ------------------------------------------------------------- */

/* The value of the kernel command line word KEY=VALUE in append, or dflt. */
static unsigned append_uint(const char *append, const char *key,
			    unsigned dflt)
{
	size_t klen = strlen(key);

	for (const char *p = append; p && *p;) {
		p += strspn(p, " ");
		if (!strncmp(p, key, klen) && p[klen] == '=')
			return (unsigned)strtoul(p + klen + 1, NULL, 0);
		p += strcspn(p, " ");
	}
	return dflt;
}

/* Absolute path of an executable: as given if it has a '/', else PATH. */
static int find_exe(const char *exe, char *out, size_t len)
{
	const char *path = getenv("PATH");

	if (strchr(exe, '/')) {
		snprintf(out, len, "%s", exe);
		return access(out, X_OK) == 0 ? 0 : -ENOENT;
	}
	while (path && *path) {
		size_t n = strcspn(path, ":");
		snprintf(out, len, "%.*s/%s", (int)n, path, exe);
		if (n && access(out, X_OK) == 0)
			return 0;
		path += n + (path[n] == ':');
	}
	return -ENOENT;
}

static int image_file(struct qemu_guest *g, const char *given,
		      const char *env, const char *base, char *out, size_t len)
{
	const char *dir = getenv("PK_GUEST_IMAGE");

	if (!given)
		given = getenv(env);
	if (given && *given)
		snprintf(out, len, "%s", given);
	else if (dir && *dir)
		snprintf(out, len, "%s/%s", dir, base);
	else {
		set_error(g, "no guest image: %s and PK_GUEST_IMAGE are not set; "
			  "run `meson test -C build --suite qemu` (it builds the "
			  "image) or tools/guest-image/build-image and set "
			  "PK_GUEST_IMAGE=build/guest-image", env);
		return -EINVAL;
	}
	if (access(out, R_OK) < 0) {
		int e = errno;
		set_error(g, "guest image file %s: %s (build it with "
			  "tools/guest-image/build-image)", out, strerror(e));
		return -e;
	}
	return 0;
}

static void exec_qemu(struct qemu_guest *g, char *const argv[],
		      const char *const *env, pid_t owner, int err_fd)
{
	int fd, e;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != owner)
		_exit(127);
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0 && fd != 0) {
		dup2(fd, 0);
		close(fd);
	}
	fd = open(g->qemu_log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	for (; env && *env; env++)
		putenv((char *)*env);
	execv(argv[0], argv);
	e = errno;
	if (write(err_fd, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

int qemu_guest_start(struct qemu_guest *g, const struct qemu_guest_opts *o)
{
	char qemu[1024], kernel[1024], initrd[1024], mem[32], backend[128];
	char append[2048], serial[160], qmp[192], qmp_test[192], name[96];
	const char *qemu_name = o->qemu ? o->qemu : getenv("PK_QEMU");
	unsigned mib = o->mem_mib ? o->mem_mib : 256;
	char *argv[MAX_ARGS];
	int argc = 0, p[2], e = 0, rc;
	ssize_t n;

	memset(g, 0, sizeof(*g));
	g->cleaner_fd = -1;
	g->exit_status = -1;
	if (!o->name || !*o->name || strlen(o->name) >= sizeof(g->name) ||
	    strpbrk(o->name, ", ")) {
		set_error(g, "guest name missing, too long or with ',' or ' '");
		return -EINVAL;
	}
	snprintf(g->name, sizeof(g->name), "%s", o->name);
	g->check_mib = append_uint(o->append, "pkcheck.mib", 64);
	g->release_mib = append_uint(o->append, "pkcheck.release-mib", 0);
	g->interval_ms = append_uint(o->append, "pkcheck.interval-ms", 0);
	if (!qemu_name || !*qemu_name)
		qemu_name = "qemu-system-x86_64";
	if (find_exe(qemu_name, qemu, sizeof(qemu)) < 0) {
		set_error(g, "%s not found (PATH or $PK_QEMU): install the "
			  "Debian package qemu-system-x86", qemu_name);
		return -ENOENT;
	}
	rc = image_file(g, o->kernel, "PK_GUEST_KERNEL", "vmlinuz", kernel,
			sizeof(kernel));
	if (!rc)
		rc = image_file(g, o->initrd, "PK_GUEST_INITRD",
				"initramfs.cpio.gz", initrd, sizeof(initrd));
	if (rc)
		return rc;

	snprintf(g->dir, sizeof(g->dir), "/tmp/pk-qemu-XXXXXX");
	if (!mkdtemp(g->dir)) {
		e = errno;
		set_error(g, "mkdtemp %s: %s", g->dir, strerror(e));
		return -e;
	}
	snprintf(g->serial, sizeof(g->serial), "%s/serial.log", g->dir);
	snprintf(g->qmp, sizeof(g->qmp), "%s/qmp.sock", g->dir);
	snprintf(g->qmp_test, sizeof(g->qmp_test), "%s/qmp-test.sock", g->dir);
	snprintf(g->qemu_log, sizeof(g->qemu_log), "%s/qemu.log", g->dir);
	snprintf(mem, sizeof(mem), "%uM", mib);
	snprintf(backend, sizeof(backend),
		 "memory-backend-memfd,id=ram,size=%uM,share=on", mib);
	snprintf(append, sizeof(append), "console=ttyS0 panic=-1 %s",
		 o->append ? o->append : "");
	snprintf(serial, sizeof(serial), "file:%s", g->serial);
	snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", g->qmp);
	snprintf(qmp_test, sizeof(qmp_test), "unix:%s,server=on,wait=off",
		 g->qmp_test);
	snprintf(name, sizeof(name), "guest=%s", g->name);
	{
		const char *fixed[] = {
			qemu, "-accel", "tcg", "-nodefaults", "-nographic",
			"-no-reboot", "-m", mem, "-object", backend,
			"-machine", "q35,memory-backend=ram",
			"-kernel", kernel, "-initrd", initrd, "-append", append,
			"-serial", serial, "-qmp", qmp, "-qmp", qmp_test,
			"-device", "virtio-balloon-pci,id=balloon0",
			"-name", name, NULL };
		for (int i = 0; fixed[i]; i++)
			argv[argc++] = (char *)fixed[i];
		for (int i = 0; o->args && o->args[i]; i++) {
			if (argc >= MAX_ARGS - 1) {
				set_error(g, "too many QEMU arguments");
				rmdir(g->dir);
				return -E2BIG;
			}
			argv[argc++] = (char *)o->args[i];
		}
		argv[argc] = NULL;
	}

	if (pipe2(p, O_CLOEXEC) < 0) {
		e = errno;
		set_error(g, "pipe: %s", strerror(e));
		rmdir(g->dir);
		return -e;
	}
	g->owner = getpid();
	g->start_ms = pk_test_now_ms();
	fflush(NULL);
	g->pid = fork();
	if (g->pid < 0) {
		e = errno;
		set_error(g, "fork: %s", strerror(e));
		g->pid = 0;
		close(p[0]);
		close(p[1]);
		rmdir(g->dir);
		return -e;
	}
	if (g->pid == 0) {
		close(p[0]);
		exec_qemu(g, argv, o->env, g->owner, p[1]);
	}
	close(p[1]);
	/* EOF: the exec worked (the pipe is close-on-exec). */
	while ((n = read(p[0], &e, sizeof(e))) < 0 && errno == EINTR)
		;
	close(p[0]);
	if (n == sizeof(e)) {
		waitpid(g->pid, NULL, 0);
		g->pid = 0;
		set_error(g, "cannot run %s: %s", qemu, strerror(e));
		remove_files(g);
		return -e;
	}
	register_guest(g);
	start_cleaner(g);
	fprintf(stderr, "qemu_guest %s: started QEMU pid %d, %u MiB, "
		"append '%s', dir %s\n", g->name, (int)g->pid, mib, append,
		g->dir);
	return 0;
}

/* ---- running or not --------------------------------------------------- */

int qemu_guest_alive(struct qemu_guest *g)
{
	int status;

	if (!g->pid || g->exit_status >= 0)
		return 0;
	if (waitpid(g->pid, &status, WNOHANG) != g->pid)
		return 1;
	g->exit_status = status;
	if (WIFEXITED(status))
		set_error(g, "QEMU exited with status %d",
			  WEXITSTATUS(status));
	else
		set_error(g, "QEMU was killed by signal %d",
			  WTERMSIG(status));
	return 0;
}

/* ---- stop -------------------------------------------------------------- */

void qemu_guest_stop(struct qemu_guest *g)
{
	if (!g->pid || g->owner != getpid())
		return;
	if (qemu_guest_alive(g)) {
		kill(g->pid, SIGTERM);
		for (int i = 0; i < 300 && qemu_guest_alive(g); i++)
			usleep(10000);
		if (qemu_guest_alive(g)) {
			kill(g->pid, SIGKILL);
			while (qemu_guest_alive(g))
				usleep(10000);
		}
	}
	g->pid = 0;
	remove_files(g);
	if (g->cleaner_fd >= 0) {
		close(g->cleaner_fd); /* the cleaner finds nothing and exits */
		g->cleaner_fd = -1;
	}
	unregister_guest(g);
}

int qemu_guest_build_image(char *err, size_t len)
{
	const char *script = getenv("PK_BUILD_IMAGE");
	const char *checker = getenv("PK_GUESTCHECK");
	const char *dir = getenv("PK_GUEST_IMAGE");
	long t0 = pk_test_now_ms();
	int status;
	pid_t pid;

	if (len)
		err[0] = '\0';
	if (!script || !*script)
		return 0; /* an image made by hand: qemu_guest_start checks it */
	if (!checker || !*checker || !dir || !*dir) {
		snprintf(err, len, "PK_BUILD_IMAGE is set but PK_GUESTCHECK or "
			 "PK_GUEST_IMAGE is not");
		return -EINVAL;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		dup2(2, 1);
		execl(script, script, "--checker", checker, dir, (char *)NULL);
		perror(script);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid ||
	    !WIFEXITED(status) || WEXITSTATUS(status)) {
		snprintf(err, len, "the guest image could not be built: %s "
			 "failed (its output is above in the test log)", script);
		return -EIO;
	}
	fprintf(stderr, "qemu_guest: guest image in %s ready after %ld ms\n",
		dir, pk_test_now_ms() - t0);
	return 0;
}

struct preload_acc {
	char *out;
	size_t len;
	int overflow;
};

static int add_sanitizer(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct preload_acc *a = arg;
	size_t used = strlen(a->out), n = strlen(info->dlpi_name);

	(void)size;
	if (!strstr(info->dlpi_name, "/libasan.so") &&
	    !strstr(info->dlpi_name, "/libubsan.so"))
		return 0;
	if (used + n + 2 > a->len) {
		a->overflow = 1;
		return 0;
	}
	memcpy(a->out + used, info->dlpi_name, n);
	a->out[used + n] = ':';
	a->out[used + n + 1] = '\0';
	return 0;
}

int qemu_guest_preload_value(const char *shim, char *out, size_t len)
{
	struct preload_acc a = { .out = out, .len = len };

	if (!len)
		return -ENAMETOOLONG;
	out[0] = '\0';
	dl_iterate_phdr(add_sanitizer, &a);
	if (a.overflow || strlen(out) + strlen(shim) + 1 > len)
		return -ENAMETOOLONG;
	strcat(out, shim);
	return 0;
}
