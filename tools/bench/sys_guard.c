/*
 * sys_guard.c - undo the system changes of a benchmark, whatever happens.
 *
 * What/how/why: see sys_guard.h.  Records are fixed 1 KiB messages, below
 * PIPE_BUF, so each arrives whole.  The guardian keeps at most one of
 * each kind, except KSM settings ("name=value", up to 32, the first
 * record of a name wins); everything it undoes is reported on stderr when the
 * benchmark died without asking (so a ^C leaves a visible trace of what
 * was cleaned up).
 */
#include "sys_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/swap.h>
#include <time.h>
#include <unistd.h>

#define REC_PATH 1016
#define CG_RETRY_MS 10000
#define TMPDIR_RETRY_MS 3000
#define KSM_DIR "/sys/kernel/mm/ksm"
#define KSM_RECS 32
#define KSM_NAME 64
#define KSM_VALUE 128

enum op { G_TMPDIR = 1, G_SWAPFILE, G_CGROUP, G_SUBTREE,
	  G_SWAPOFF, G_REL_SWAP, G_REL_CGROUP, G_FINISH,
	  G_PROG, G_KSM, G_REL_KSM };

struct rec {
	int op;
	int pad;
	char path[REC_PATH];
};

/* Benchmark side: command pipe write end, ack pipe read end. */
static int g_cmd = -1, g_ack = -1;

/* Guardian side state. */
struct gstate {
	char tmpdir[REC_PATH], swapfile[REC_PATH], cgroup[REC_PATH], subtree[REC_PATH];
	char prog[64];			/* message prefix */
	char ksm_name[KSM_RECS][KSM_NAME], ksm_value[KSM_RECS][KSM_VALUE];
	int n_ksm;
	int verbose; /* the benchmark died: say what we undo */
};

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int undo_cgroup(struct gstate *s)
{
	int e = 0;

	if (!s->cgroup[0])
		return 0;
	for (int waited = 0;; waited += 50) {
		if (rmdir(s->cgroup) == 0 || errno == ENOENT)
			break;
		e = -errno;
		if (errno != EBUSY || waited >= CG_RETRY_MS) {
			fprintf(stderr, "%s: cleanup: rmdir %s: %s\n", s->prog, s->cgroup,
				strerror(-e));
			return e;
		}
		sleep_ms(50); /* the killed child is still leaving the cgroup */
	}
	if (s->verbose)
		fprintf(stderr, "%s: cleanup: removed cgroup %s\n", s->prog, s->cgroup);
	s->cgroup[0] = '\0';
	return 0;
}

static int undo_subtree(struct gstate *s)
{
	if (!s->subtree[0])
		return 0;
	int fd = open(s->subtree, O_WRONLY | O_CLOEXEC);
	int e = 0;
	if (fd < 0 || write(fd, "-memory", 7) != 7)
		e = -errno;
	if (fd >= 0)
		close(fd);
	if (e)
		fprintf(stderr, "%s: cleanup: write -memory to %s: %s\n", s->prog,
			s->subtree, strerror(-e));
	else if (s->verbose)
		fprintf(stderr, "%s: cleanup: restored %s\n", s->prog, s->subtree);
	s->subtree[0] = '\0';
	return e;
}

/* swapoff when active; EINVAL means it was not. */
static int do_swapoff(struct gstate *s)
{
	if (!s->swapfile[0])
		return 0;
	if (swapoff(s->swapfile) == 0) {
		if (s->verbose)
			fprintf(stderr, "%s: cleanup: swapoff %s\n", s->prog, s->swapfile);
		return 0;
	}
	if (errno == EINVAL)
		return 0;
	int e = -errno;
	fprintf(stderr, "%s: cleanup: swapoff %s: %s\n", s->prog, s->swapfile,
		strerror(-e));
	return e;
}

static int undo_swapfile(struct gstate *s)
{
	if (!s->swapfile[0])
		return 0;
	int e = do_swapoff(s);
	if (e == 0 && unlink(s->swapfile) < 0 && errno != ENOENT) {
		e = -errno;
		fprintf(stderr, "%s: cleanup: unlink %s: %s\n", s->prog, s->swapfile,
			strerror(errno));
	}
	/* an active swap file must not be removed: keep it for the next try */
	if (e == 0)
		s->swapfile[0] = '\0';
	return e;
}

static int ksm_file(const char *name, const char *value, bool write_it, char *out,
		    size_t out_len)
{
	char path[KSM_NAME + sizeof(KSM_DIR) + 2];
	int fd, e = 0;

	snprintf(path, sizeof(path), "%s/%s", KSM_DIR, name);
	fd = open(path, (write_it ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write_it) {
		size_t n = strlen(value);
		if (write(fd, value, n) != (ssize_t)n)
			e = errno ? -errno : -EIO;
	} else {
		ssize_t n = read(fd, out, out_len - 1);
		if (n < 0)
			e = -errno;
		else
			out[n] = '\0';
	}
	close(fd);
	return e;
}

/* The value as ksm_ctl.c reduces it: "[a] b" -> "a", no trailing blanks. */
static void ksm_reduce(char *v)
{
	char *open = strchr(v, '['), *close = open ? strchr(open, ']') : NULL;
	size_t n;

	if (open && close) {
		n = (size_t)(close - open - 1);
		memmove(v, open + 1, n);
		v[n] = '\0';
	}
	n = strlen(v);
	while (n && (v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
		v[--n] = '\0';
}

static int ksm_put(struct gstate *s, const char *name, const char *value)
{
	int e = ksm_file(name, value, true, NULL, 0);

	if (e)
		fprintf(stderr, "%s: cleanup: write %s to %s/%s: %s\n", s->prog, value,
			KSM_DIR, name, strerror(-e));
	return e;
}

/* Unmerge, stop, and put every recorded setting back, run last. */
static int undo_ksm(struct gstate *s)
{
	const char *run = NULL;
	int first = 0, e;

	if (!s->n_ksm)
		return 0;
	/* run=2 returns once every KSM page is unmerged */
	if ((e = ksm_put(s, "run", "2")))
		first = e;
	if ((e = ksm_put(s, "run", "0")) && !first)
		first = e;
	for (int i = 0; i < s->n_ksm; i++) {
		char now[KSM_VALUE];
		if (!strcmp(s->ksm_name[i], "run")) {
			run = s->ksm_value[i];
			continue;
		}
		if (ksm_file(s->ksm_name[i], NULL, false, now, sizeof(now)) == 0) {
			ksm_reduce(now);
			if (!strcmp(now, s->ksm_value[i]))
				continue;
		}
		if ((e = ksm_put(s, s->ksm_name[i], s->ksm_value[i])) && !first)
			first = e;
		else if (!e && s->verbose)
			fprintf(stderr, "%s: cleanup: restored %s/%s=%s\n", s->prog, KSM_DIR,
				s->ksm_name[i], s->ksm_value[i]);
	}
	if (run && strcmp(run, "0") && (e = ksm_put(s, "run", run)) && !first)
		first = e;
	if (s->verbose)
		fprintf(stderr, "%s: cleanup: KSM unmerged (run=2) and its settings restored "
			"(run=%s)\n", s->prog, run ? run : "0");
	s->n_ksm = 0;
	return first;
}

static void ksm_record(struct gstate *s, const char *rec)
{
	const char *eq = strchr(rec, '=');
	size_t n = eq ? (size_t)(eq - rec) : 0;

	if (!eq || n == 0 || n >= KSM_NAME || strlen(eq + 1) >= KSM_VALUE)
		return;
	for (int i = 0; i < s->n_ksm; i++)
		if (!strncmp(s->ksm_name[i], rec, n) && s->ksm_name[i][n] == '\0')
			return; /* the first value recorded is the original */
	if (s->n_ksm == KSM_RECS)
		return;
	memcpy(s->ksm_name[s->n_ksm], rec, n);
	s->ksm_name[s->n_ksm][n] = '\0';
	strcpy(s->ksm_value[s->n_ksm], eq + 1);
	s->n_ksm++;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static int undo_all(struct gstate *s)
{
	int first = 0, r;

	if ((r = undo_ksm(s)) && !first)
		first = r;
	if ((r = undo_cgroup(s)) && !first)
		first = r;
	if ((r = undo_subtree(s)) && !first)
		first = r;
	if ((r = undo_swapfile(s)) && !first)
		first = r;
	if (s->tmpdir[0] && !s->swapfile[0]) {
		/* a dying daemon may still write its log: retry a little */
		for (int waited = 0;; waited += 100) {
			nftw(s->tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
			if (access(s->tmpdir, F_OK) < 0 || waited >= TMPDIR_RETRY_MS)
				break;
			sleep_ms(100);
		}
		if (access(s->tmpdir, F_OK) == 0) {
			fprintf(stderr, "%s: cleanup: could not remove %s\n", s->prog,
				s->tmpdir);
			if (!first)
				first = -ENOTEMPTY;
		} else if (s->verbose) {
			fprintf(stderr, "%s: cleanup: removed %s\n", s->prog, s->tmpdir);
		}
		s->tmpdir[0] = '\0';
	}
	return first;
}

static void ack(int fd, int v)
{
	if (write(fd, &v, sizeof(v)) != sizeof(v))
		_exit(1);
}

static void __attribute__((noreturn)) guardian(int cmd, int ackfd)
{
	static struct gstate s;
	struct rec r;

	snprintf(s.prog, sizeof(s.prog), "pk-bench-swap");
	prctl(PR_SET_NAME, "pk-swap-guard");
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		ssize_t n = read(cmd, &r, sizeof(r));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(r)) { /* EOF: the benchmark is gone */
			s.verbose = 1;
			_exit(undo_all(&s) ? 1 : 0);
		}
		r.path[REC_PATH - 1] = '\0';
		switch (r.op) {
		case G_TMPDIR: memcpy(s.tmpdir, r.path, REC_PATH); break;
		case G_SWAPFILE: memcpy(s.swapfile, r.path, REC_PATH); break;
		case G_CGROUP: memcpy(s.cgroup, r.path, REC_PATH); break;
		case G_SUBTREE: memcpy(s.subtree, r.path, REC_PATH); break;
		case G_SWAPOFF: ack(ackfd, do_swapoff(&s)); break;
		case G_REL_SWAP: ack(ackfd, undo_swapfile(&s)); break;
		case G_REL_CGROUP: ack(ackfd, undo_cgroup(&s)); break;
		case G_PROG:
			snprintf(s.prog, sizeof(s.prog), "%.63s", r.path);
			prctl(PR_SET_NAME, "pk-bench-guard");
			break;
		case G_KSM: ksm_record(&s, r.path); break;
		case G_REL_KSM: ack(ackfd, undo_ksm(&s)); break;
		case G_FINISH:
			ack(ackfd, undo_all(&s));
			_exit(0);
		default: break;
		}
	}
}

int guard_start(char *err, size_t err_len)
{
	int cmd[2], ackp[2];

	if (pipe2(cmd, O_CLOEXEC) < 0 || pipe2(ackp, O_CLOEXEC) < 0) {
		int e = -errno;
		snprintf(err, err_len, "pipe: %s", strerror(errno));
		return e;
	}
	signal(SIGPIPE, SIG_IGN); /* a dead guardian must be an error, not a kill */
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		snprintf(err, err_len, "fork guardian: %s", strerror(errno));
		return e;
	}
	if (pid == 0) {
		close(cmd[1]);
		close(ackp[0]);
		guardian(cmd[0], ackp[1]);
	}
	/* Not reaped by us on purpose: it must outlive us; init reaps it. */
	close(cmd[0]);
	close(ackp[1]);
	g_cmd = cmd[1];
	g_ack = ackp[0];
	return 0;
}

static int send_rec(int op, const char *path)
{
	struct rec r;

	if (g_cmd < 0)
		return -EPIPE;
	memset(&r, 0, sizeof(r));
	r.op = op;
	if (path) {
		if (strlen(path) >= REC_PATH)
			return -ENAMETOOLONG;
		strcpy(r.path, path);
	}
	return write(g_cmd, &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : -EPIPE;
}

static int request(int op)
{
	int v, r = send_rec(op, NULL);

	if (r < 0)
		return r;
	for (;;) {
		ssize_t n = read(g_ack, &v, sizeof(v));
		if (n < 0 && errno == EINTR)
			continue;
		return n == (ssize_t)sizeof(v) ? v : -EPIPE;
	}
}

int guard_tmpdir(const char *path) { return send_rec(G_TMPDIR, path); }
int guard_swapfile(const char *path) { return send_rec(G_SWAPFILE, path); }
int guard_cgroup(const char *path) { return send_rec(G_CGROUP, path); }
int guard_subtree(const char *ctl_path) { return send_rec(G_SUBTREE, ctl_path); }
int guard_prog(const char *name) { return send_rec(G_PROG, name); }
int guard_swapoff(void) { return request(G_SWAPOFF); }
int guard_release_ksm(void) { return request(G_REL_KSM); }

int guard_ksm_value(const char *name, const char *value)
{
	char rec[REC_PATH];

	if (!*name || strchr(name, '=') || strchr(name, '/'))
		return -EINVAL;
	if ((size_t)snprintf(rec, sizeof(rec), "%s=%s", name, value) >= sizeof(rec) ||
	    strlen(name) >= KSM_NAME || strlen(value) >= KSM_VALUE)
		return -ENAMETOOLONG;
	return send_rec(G_KSM, rec);
}
int guard_release_swapfile(void) { return request(G_REL_SWAP); }
int guard_release_cgroup(void) { return request(G_REL_CGROUP); }

int guard_finish(void)
{
	int r = request(G_FINISH);

	close(g_cmd);
	close(g_ack);
	g_cmd = g_ack = -1;
	return r;
}

void guard_close_in_child(void)
{
	if (g_cmd >= 0)
		close(g_cmd);
	if (g_ack >= 0)
		close(g_ack);
	g_cmd = g_ack = -1;
}
