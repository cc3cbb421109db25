/*
 * lab.c - `pagekeeper lab --guests N ...`: the quick lab demo.
 *
 * Starts a private pagekeeperd in a temporary directory, runs N lab
 * guests (pk-guestsim) against it, prints the daemon's per-VM view once a
 * second while they run, then checks that every guest verified every page
 * and prints their throughput and latency.  Everything it starts is
 * killed by PID and the temporary directory removed, also on Ctrl-C.
 * Every argument is checked before anything starts: a bad one is exit 2
 * with a message naming it (not a failed guest, exit 1, after a daemon
 * ran for nothing).
 *
 * This is the short version of the lab: `pagekeeper lab [SCENARIO]`
 * (lab/run.c) runs the scenarios and hands the flags above to this demo.
 */
#include "engine/protocol.h"
#include "tools/cli.h"
#include "tools/common/size_parse.h"
#include "tools/lab/lab.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define LAB_MAX_GUESTS 32

struct lab {
	unsigned guests;
	const char *size;
	const char *workload;
	const char *duration;
	int anon;
	char dir[64];
	char run_dir[64]; /* --run-dir: VM records, canonical copies */
	char sock[PATH_MAX];
	char daemon_bin[PATH_MAX];
	char guestsim_bin[PATH_MAX];
	pid_t daemon_pid;
	pid_t guest_pid[LAB_MAX_GUESTS];
	int guest_status[LAB_MAX_GUESTS];
	int guest_done[LAB_MAX_GUESTS];
};

static volatile sig_atomic_t lab_interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	lab_interrupted = 1;
}

/* Binaries: next to this one in the build tree or the install dir. */
static int find_binary(char *out, const char *env, const char *const *rel)
{
	char self[PATH_MAX / 2];
	ssize_t n;
	const char *v = getenv(env);

	if (v) {
		snprintf(out, PATH_MAX, "%s", v);
		return access(out, X_OK) == 0 ? 0 : -1;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return -1;
	self[n] = '\0';
	*strrchr(self, '/') = '\0';
	for (; *rel; rel++) {
		snprintf(out, PATH_MAX, "%s/%s", self, *rel);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -1;
}

/* Start argv[0]; stdout and stderr go to files when paths are given. */
static pid_t spawn(char *const argv[], const char *out_path,
		   const char *err_path)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int err;

	posix_spawn_file_actions_init(&fa);
	if (out_path)
		posix_spawn_file_actions_addopen(&fa, 1, out_path,
						 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (err_path)
		posix_spawn_file_actions_addopen(&fa, 2, err_path,
						 O_WRONLY | O_CREAT | O_APPEND, 0644);
	err = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (err) {
		fprintf(stderr, "pagekeeper lab: cannot start %s: %s\n", argv[0],
			strerror(err));
		return -1;
	}
	return pid;
}

static void stop_pid(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 40; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(50000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static int rm_entry(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	remove(path);
	return 0;
}

static void rm_tree(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void lab_cleanup(struct lab *lab, int all_ok)
{
	char path[PATH_MAX + 32];

	for (unsigned i = 0; i < lab->guests; i++)
		if (lab->guest_pid[i] > 0 && !lab->guest_done[i])
			stop_pid(lab->guest_pid[i]);
	stop_pid(lab->daemon_pid);
	for (unsigned i = 0; i < lab->guests; i++) {
		snprintf(path, sizeof(path), "%s/guest%u.json", lab->dir, i);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/daemon.log", lab->dir);
	if (!all_ok) {
		/* Show what the daemon said before its log goes away. */
		char cmd[PATH_MAX + 64];
		printf("lab: daemon log:\n");
		fflush(stdout);
		snprintf(cmd, sizeof(cmd), "tail -n 20 '%s'", path);
		(void)!system(cmd);
	}
	unlink(path);
	/* The daemon keeps its state for a next daemon: the lab's goes. */
	rm_tree(lab->dir);
	rm_tree(lab->run_dir);
}

static void print_live(struct lab *lab, double t)
{
	json_object *root = pk_cli_status(lab->sock, 1), *vms;

	if (!root)
		return;
	if (json_object_object_get_ex(root, "vms", &vms)) {
		size_t n = json_object_array_length(vms);
		printf("[%5.1f s]", t);
		for (size_t i = n; i-- > 0;) {
			json_object *vm = json_object_array_get_idx(vms, i), *v;
			const char *name = "?";
			double res = 0, cfg = 0, fps = 0;
			if (json_object_object_get_ex(vm, "name", &v))
				name = json_object_get_string(v);
			if (json_object_object_get_ex(vm, "resident_mib", &v))
				res = json_object_get_double(v);
			if (json_object_object_get_ex(vm, "configured_mib", &v))
				cfg = json_object_get_double(v);
			if (json_object_object_get_ex(vm, "faults_per_s", &v))
				fps = json_object_get_double(v);
			printf("  %s %.0f/%.0f MiB %.0f faults/s", name, res, cfg, fps);
		}
		printf("\n");
		fflush(stdout);
	}
	json_object_put(root);
}

static double json_num(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_double(v) : 0;
}

static int report_guest(struct lab *lab, unsigned i)
{
	char path[PATH_MAX + 32];
	json_object *r;
	int st = lab->guest_status[i];
	int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;

	snprintf(path, sizeof(path), "%s/guest%u.json", lab->dir, i);
	r = json_object_from_file(path);
	if (!r) {
		printf("  lab%-3u %s (no result: exit status %d)\n", i,
		       ok ? "ok" : "FAILED",
		       WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		return 0;
	}
	printf("  lab%-3u %-8s fill %6.2f s (%7.1f MiB/s)  %9.0f ops/s  "
	       "read p99 %7.1f us  write p99 %7.1f us  %8.0f pages verified, "
	       "%0.f mismatches\n",
	       i, ok ? "verified" : "FAILED", json_num(r, "fill_s"),
	       json_num(r, "fill_mib_per_s"), json_num(r, "ops_per_s"),
	       json_num(r, "read_p99_us"), json_num(r, "write_p99_us"),
	       json_num(r, "pages_verified"), json_num(r, "mismatches"));
	json_object_put(r);
	return ok;
}

int pk_lab_demo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "guests", required_argument, NULL, 'g' },
		{ "size", required_argument, NULL, 's' },
		{ "duration", required_argument, NULL, 'd' },
		{ "workload", required_argument, NULL, 'w' },
		{ "anon", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static const char *const daemon_rel[] = { "pagekeeperd", NULL };
	static const char *const guest_rel[] = { "guestsim/pk-guestsim",
						 "pk-guestsim", NULL };
	struct lab lab = { .guests = 4, .size = "256M", .workload = "zipf",
			   .duration = "5" };
	struct timespec t0, t;
	int c, all_ok = 1;
	unsigned running;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'g': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > LAB_MAX_GUESTS) {
				fprintf(stderr, "pagekeeper lab: --guests wants 1..%d\n",
					LAB_MAX_GUESTS);
				return 2;
			}
			lab.guests = (unsigned)v;
			break;
		}
		case 's': {
			uint64_t bytes;
			const char *why = pk_size_parse(optarg, &bytes);
			if (!why && (bytes == 0 || bytes % 4096))
				why = "want a positive multiple of 4096 bytes";
			if (!why && bytes > PK_PROTO_MAX_REGION_BYTES)
				why = "too large (limit 4 TiB)";
			if (why) {
				fprintf(stderr, "pagekeeper lab: bad --size '%s': "
					"%s\n", optarg, why);
				return 2;
			}
			lab.size = optarg;
			break;
		}
		case 'd': {
			char *end;
			double v = strtod(optarg, &end);
			if (end == optarg || *end || !(v >= 0 && v <= 1e7)) {
				fprintf(stderr, "pagekeeper lab: bad --duration "
					"'%s': want seconds, 0..10000000\n", optarg);
				return 2;
			}
			lab.duration = optarg;
			break;
		}
		case 'w':
			if (strcmp(optarg, "idle") && strcmp(optarg, "seq") &&
			    strcmp(optarg, "random") && strcmp(optarg, "zipf") &&
			    strcmp(optarg, "phases")) {
				fprintf(stderr, "pagekeeper lab: bad --workload "
					"'%s': want idle, seq, random, zipf or "
					"phases\n", optarg);
				return 2;
			}
			lab.workload = optarg;
			break;
		case 'a': lab.anon = 1; break;
		case 'h': pk_lab_usage(stdout); return 0;
		default: pk_lab_usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "pagekeeper lab: unexpected argument '%s'\n",
			argv[optind]);
		pk_lab_usage(stderr);
		return 2;
	}
	if (find_binary(lab.daemon_bin, "PK_DAEMON", daemon_rel) < 0 ||
	    find_binary(lab.guestsim_bin, "PK_GUESTSIM", guest_rel) < 0) {
		fprintf(stderr, "pagekeeper lab: cannot find pagekeeperd and "
			"pk-guestsim next to this program (set PK_DAEMON and "
			"PK_GUESTSIM)\n");
		return 1;
	}
	snprintf(lab.dir, sizeof(lab.dir), "/tmp/pagekeeper-lab.XXXXXX");
	snprintf(lab.run_dir, sizeof(lab.run_dir),
		 "/dev/shm/pagekeeper-lab.XXXXXX");
	if (!mkdtemp(lab.dir)) {
		perror("pagekeeper lab: mkdtemp");
		return 1;
	}
	if (!mkdtemp(lab.run_dir)) {
		perror("pagekeeper lab: mkdtemp");
		rmdir(lab.dir);
		return 1;
	}
	snprintf(lab.sock, sizeof(lab.sock), "%s/pk.sock", lab.dir);
	signal(SIGINT, on_interrupt);
	signal(SIGTERM, on_interrupt);

	char state[PATH_MAX + 8];
	snprintf(state, sizeof(state), "%s/state", lab.dir);
	char *dargv[] = { lab.daemon_bin, "--socket", lab.sock, "--state-dir",
			  state, "--run-dir", lab.run_dir, "--foreground",
			  "--quiet", NULL };
	printf("lab: daemon %s, %u guest(s) of %s, %s workload for %s s, %s RAM\n",
	       lab.daemon_bin, lab.guests, lab.size, lab.workload, lab.duration,
	       lab.anon ? "anonymous" : "memfd");
	char dlog[PATH_MAX + 16];
	snprintf(dlog, sizeof(dlog), "%s/daemon.log", lab.dir);
	lab.daemon_pid = spawn(dargv, NULL, dlog);
	for (int i = 0; i < 100 && access(lab.sock, F_OK) != 0; i++)
		usleep(50000);
	if (lab.daemon_pid < 0 || access(lab.sock, F_OK) != 0) {
		fprintf(stderr, "pagekeeper lab: the daemon did not start\n");
		lab_cleanup(&lab, 0);
		return 1;
	}

	for (unsigned i = 0; i < lab.guests; i++) {
		char name[32], out[PATH_MAX + 32];
		snprintf(name, sizeof(name), "lab%u", i);
		snprintf(out, sizeof(out), "%s/guest%u.json", lab.dir, i);
		char *gargv[] = { lab.guestsim_bin, "--socket", lab.sock,
				  "--name", name, "--size", (char *)lab.size,
				  "--seed", "42", "--workload", (char *)lab.workload,
				  "--writers", "1", "--readers", "1",
				  "--duration", (char *)lab.duration, "--verify",
				  "--json", "--quiet", lab.anon ? "--anon" : NULL,
				  NULL };
		lab.guest_pid[i] = spawn(gargv, out, NULL);
		if (lab.guest_pid[i] < 0) {
			lab_cleanup(&lab, 0);
			return 1;
		}
	}

	clock_gettime(CLOCK_MONOTONIC, &t0);
	running = lab.guests;
	while (running && !lab_interrupted) {
		usleep(1000000);
		for (unsigned i = 0; i < lab.guests; i++)
			if (!lab.guest_done[i] &&
			    waitpid(lab.guest_pid[i], &lab.guest_status[i],
				    WNOHANG) == lab.guest_pid[i]) {
				lab.guest_done[i] = 1;
				running--;
			}
		clock_gettime(CLOCK_MONOTONIC, &t);
		print_live(&lab, (double)(t.tv_sec - t0.tv_sec) +
				      (double)(t.tv_nsec - t0.tv_nsec) / 1e9);
	}
	if (lab_interrupted) {
		fprintf(stderr, "pagekeeper lab: interrupted; stopping\n");
		lab_cleanup(&lab, 1);
		return 130;
	}
	printf("lab: results\n");
	for (unsigned i = 0; i < lab.guests; i++)
		all_ok &= report_guest(&lab, i);
	lab_cleanup(&lab, all_ok);
	printf("lab: %s\n", all_ok ? "every guest verified every page"
				   : "FAILED: see above");
	return all_ok ? 0 : 1;
}
