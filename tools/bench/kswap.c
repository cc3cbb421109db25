/*
 * kswap.c - the anchor: the kernel's own swap-in on the same disk.
 *
 * What/how/why: see kswap.h.  The child never returns into main(): it
 * leaves with _exit, so no atexit teardown runs in it.
 */
#include "kswap.h"
#include "bench_mem.h"
#include "cleanup.h"
#include "proc_run.h"
#include "swap_touch.h"
#include "sys_guard.h"
#include "timing.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define STEP_TIMEOUT_MS (600 * 1000)
#define SHARED_HDR 1024 /* room for struct kshared, keeps the arrays aligned */

struct kshared {
	int rc;
	int seq;		/* set by the parent: sequential sweep mode */
	char err[512];
	size_t out_after_drop, resident_before;
	long vmswap_kib;
	double pageout_ms;
	uint64_t seq_ns;	/* sequential mode: the sweep's elapsed ns */
};

_Static_assert(sizeof(struct kshared) <= SHARED_HDR, "kshared header too big");

static size_t shared_size(size_t n)
{
	size_t s = SHARED_HDR + n * (sizeof(uint32_t) + sizeof(uint64_t));
	return (s + BENCH_PAGE - 1) & ~(BENCH_PAGE - 1);
}

/* Layout: header, latencies (8-aligned), then the order. */
static uint64_t *sh_lat(struct kshared *s) { return (uint64_t *)(void *)((char *)s + SHARED_HDR); }
static uint32_t *sh_perm(struct kshared *s, size_t n) { return (uint32_t *)(void *)(sh_lat(s) + n); }

int kswap_check(struct kswap *k, char *err, size_t err_len)
{
	char path[PATH_MAX];

	memset(k, 0, sizeof(*k));
	if (geteuid() != 0) {
		snprintf(err, err_len, "the kernel swap-in variant needs root (swapon, "
			 "cgroups); run as root or use --only bandwidth");
		return -EPERM;
	}
	static const char *const tools[] = { "mkswap", "swapon" };
	for (size_t i = 0; i < 2; i++)
		if (find_exe(tools[i], path, sizeof(path)) < 0) {
			snprintf(err, err_len, "%s not found in PATH, /usr/sbin or /sbin "
				 "(Debian package util-linux)", tools[i]);
			return -ENOENT;
		}
	return memcg_find(&k->cg, err, err_len);
}

static unsigned count_swaps(void)
{
	FILE *f = fopen("/proc/swaps", "r");
	char line[1024];
	unsigned n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += line[0] == '/';
	fclose(f);
	return n;
}

static bool swap_listed(const char *path)
{
	FILE *f = fopen("/proc/swaps", "r");
	char line[PATH_MAX + 128], name[PATH_MAX];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%4095s", name) == 1 && !strcmp(name, path);
	fclose(f);
	return found;
}

int kswap_setup(struct kswap *k, const char *dir, size_t bytes, char *err,
		size_t err_len)
{
	char mkswap[PATH_MAX];
	int r;

	k->other_swaps = count_swaps();
	k->swap_bytes = bytes;
	snprintf(k->swapfile, sizeof(k->swapfile), "%s/kswap.swap", dir);
	if ((r = guard_swapfile(k->swapfile)) < 0) {
		snprintf(err, err_len, "cleanup guardian is gone");
		return r;
	}
	int fd = open(k->swapfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || fallocate(fd, 0, 0, (off_t)bytes) < 0 || fchmod(fd, 0600) < 0) {
		r = -errno;
		snprintf(err, err_len, "create swap file %s of %zu MiB: %s", k->swapfile,
			 bytes >> 20, strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	close(fd);
	find_exe("mkswap", mkswap, sizeof(mkswap));
	char *mk_argv[] = { mkswap, "-q", k->swapfile, NULL };
	if ((r = run_cmd(mk_argv, NULL, err, err_len)) != 0)
		return r < 0 ? r : -EIO;
	return 0;
}

/* Active only while a kernel round runs: the host swaps nothing else to it. */
static int swap_on(struct kswap *k, char *err, size_t err_len)
{
	char swapon[PATH_MAX];
	int r;

	find_exe("swapon", swapon, sizeof(swapon));
	char *on_argv[] = { swapon, "-p", "32767", k->swapfile, NULL };
	if ((r = run_cmd(on_argv, NULL, err, err_len)) != 0)
		return r < 0 ? r : -EIO;
	if (!swap_listed(k->swapfile)) {
		snprintf(err, err_len, "swapon %s succeeded but /proc/swaps does not list it",
			 k->swapfile);
		return -EIO;
	}
	return 0;
}

int kswap_on(struct kswap *k, char *err, size_t err_len)
{
	return swap_on(k, err, err_len);
}

int kswap_teardown(struct kswap *k)
{
	if (!k->swapfile[0])
		return 0;
	k->swapfile[0] = '\0';
	return guard_release_swapfile();
}

static long vmswap_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		sscanf(line, "VmSwap: %ld", &v);
	fclose(f);
	return v;
}

static int wait_byte(int fd, int timeout_ms, char *c)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0)
		return -errno;
	return read(fd, c, 1) == 1 ? 0 : -EPIPE;
}

static void __attribute__((noreturn)) child_fail(struct kshared *s, int wfd,
						 const char *what, int e)
{
	s->rc = e;
	snprintf(s->err, sizeof(s->err), "%s: %s", what, strerror(-e));
	if (write(wfd, "E", 1) < 0)
		_exit(2);
	_exit(1);
}

static void __attribute__((noreturn)) child_main(struct kshared *s, size_t pages,
						 size_t n, uint64_t seed, int rfd, int wfd)
{
	size_t len = pages * BENCH_PAGE;
	uint64_t *lat = sh_lat(s);
	const uint32_t *perm = sh_perm(s, n);
	char c;

	if (wait_byte(rfd, STEP_TIMEOUT_MS, &c) < 0)
		_exit(1);
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		child_fail(s, wfd, "mmap", -errno);
	madvise(p, len, MADV_NOHUGEPAGE);
	content_fill(p, 0, pages, seed);
	memset(lat, 0, n * sizeof(*lat)); /* map the result pages now */
	uint64_t t0 = now_ns();
	if (madvise(p, len, MADV_PAGEOUT) < 0)
		child_fail(s, wfd, "madvise(MADV_PAGEOUT)", -errno);
	s->pageout_ms = (double)(now_ns() - t0) / 1e6;
	if (write(wfd, "P", 1) != 1 || wait_byte(rfd, STEP_TIMEOUT_MS, &c) < 0 || c != 'G')
		_exit(1);
	long res = resident_pages(p, pages);
	if (res < 0)
		child_fail(s, wfd, "mincore", (int)res);
	s->out_after_drop = pages - (size_t)res;
	s->vmswap_kib = vmswap_kib();
	if (s->seq) {
		s->seq_ns = touch_read_seq(p, pages, NULL);
		perm = NULL;
		n = pages;
	} else {
		int r = touch_read_random(p, perm, n, lat, &s->resident_before, NULL);
		if (r < 0)
			child_fail(s, wfd, "mincore", r);
	}
	size_t bad = content_verify(p, perm, n, seed, s->err, sizeof(s->err));
	if (bad) {
		char why[sizeof(s->err)];
		snprintf(why, sizeof(why), "content check: %zu of %zu touched pages wrong, "
			 "first: %.400s", bad, n, s->err);
		snprintf(s->err, sizeof(s->err), "%s", why);
		s->rc = -EIO;
		if (write(wfd, "E", 1) < 0)
			_exit(2);
		_exit(1);
	}
	s->rc = 0;
	_exit(write(wfd, "D", 1) == 1 ? 0 : 1);
}

int kswap_round(struct kswap *k, unsigned round, size_t region_pages,
		const uint32_t *perm, size_t n, uint64_t seed,
		double min_out_pct, uint64_t *lat_ns,
		struct kswap_round_info *info, char *err, size_t err_len)
{
	if (!perm)
		n = 0; /* sequential: no order, no per-touch latencies */
	size_t ssz = shared_size(n);
	int p2c[2] = { -1, -1 }, c2p[2] = { -1, -1 }, r;
	pid_t pid = -1;
	char name[64], c;

	memset(info, 0, sizeof(*info));
	info->region_pages = region_pages;
	struct kshared *s = mmap(NULL, ssz, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s == MAP_FAILED) {
		snprintf(err, err_len, "mmap shared results: %s", strerror(errno));
		return -errno;
	}
	memset(s, 0, ssz); /* charged to our cgroup, not the child's */
	s->seq = !perm;
	if (perm)
		memcpy(sh_perm(s, n), perm, n * sizeof(*perm));
	snprintf(name, sizeof(name), "pk-bench-swap-%d-r%u", (int)getpid(), round);
	if ((r = swap_on(k, err, err_len)) < 0)
		goto out;
	if ((r = memcg_create(&k->cg, name, err, err_len)) < 0)
		goto out;
	if (pipe2(p2c, O_CLOEXEC) < 0 || pipe2(c2p, O_CLOEXEC) < 0) {
		r = -errno;
		snprintf(err, err_len, "pipe: %s", strerror(errno));
		goto out;
	}
	pid_t parent = getpid();
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		r = -errno;
		snprintf(err, err_len, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		guard_close_in_child();
		child_main(s, region_pages, n, seed, p2c[0], c2p[1]);
	}
	cleanup_track_pid(pid, 0);
	if ((r = memcg_add_pid(&k->cg, pid, err, err_len)) < 0)
		goto out;
	if (write(p2c[1], "S", 1) != 1 || (r = wait_byte(c2p[0], STEP_TIMEOUT_MS, &c)) < 0) {
		snprintf(err, err_len, "kernel child: no answer after start (%s)",
			 strerror(r < 0 ? -r : EPIPE));
		r = r < 0 ? r : -EPIPE;
		goto out;
	}
	if (c != 'P') {
		snprintf(err, err_len, "kernel child: %s", s->err);
		r = s->rc ? s->rc : -EIO;
		goto out;
	}
	info->pageout_ms = s->pageout_ms;
	uint64_t t0 = now_ns();
	if ((r = memcg_drop_cache(&k->cg, region_pages * BENCH_PAGE + (64ul << 20), err,
				  err_len)) < 0)
		goto out;
	info->drop_ms = (double)(now_ns() - t0) / 1e6;
	memcg_read_stat(&k->cg, &info->st);
	if (write(p2c[1], "G", 1) != 1 || (r = wait_byte(c2p[0], STEP_TIMEOUT_MS, &c)) < 0) {
		snprintf(err, err_len, "kernel child: no answer while touching (%s)",
			 strerror(r < 0 ? -r : EPIPE));
		r = r < 0 ? r : -EPIPE;
		goto out;
	}
	info->out_after_drop = s->out_after_drop;
	info->resident_before = s->resident_before;
	info->vmswap_kib = s->vmswap_kib;
	if (c != 'D') {
		snprintf(err, err_len, "kernel child: %s", s->err);
		r = s->rc ? s->rc : -EIO;
		goto out;
	}
	if ((double)s->out_after_drop < min_out_pct / 100.0 * (double)region_pages) {
		snprintf(err, err_len, "only %zu of %zu pages were out of memory and swap "
			 "cache after the drop (%.1f %%, need %.0f %%): the kernel variant "
			 "would not measure device reads", s->out_after_drop, region_pages,
			 100.0 * (double)s->out_after_drop / (double)region_pages, min_out_pct);
		r = -EAGAIN;
		goto out;
	}
	if (perm)
		memcpy(lat_ns, sh_lat(s), n * sizeof(*lat_ns));
	info->seq_ns = s->seq_ns;
	r = 0;
out:
	if (pid > 0)
		cleanup_stop_pid(pid); /* SIGKILL + reap (already exited when done) */
	for (int i = 0; i < 2; i++) {
		if (p2c[i] >= 0)
			close(p2c[i]);
		if (c2p[i] >= 0)
			close(c2p[i]);
	}
	int rr = memcg_remove(&k->cg);
	if (r == 0 && rr < 0) {
		snprintf(err, err_len, "could not remove the child cgroup: %s", strerror(-rr));
		r = rr;
	}
	rr = guard_swapoff();
	if (r == 0 && rr < 0) {
		snprintf(err, err_len, "swapoff %s: %s", k->swapfile, strerror(-rr));
		r = rr;
	}
	munmap(s, ssz);
	return r;
}
