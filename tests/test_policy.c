/*
 * test_policy.c - the memory states (engine/mem_state.c) under synthetic
 * free-memory curves, and the memory sources (engine/mem_source.c)
 * against the real files they read: /proc/meminfo and a real memory
 * cgroup v1 with a process charged to it.
 *
 *  - thresholds: a ramp from 10% free down to 0.5% and back up gives
 *    exactly high, soft, hard, low on the way down and low, hard, soft,
 *    high on the way up, each up move only at threshold + hysteresis
 *    and after the dwell time;
 *  - wobble: free memory wobbling +-0.5% around each threshold for a
 *    minute costs one transition;
 *  - skip_down: 10% to 1% in one reading is one transition, to low; up
 *    again is one state per reading;
 *  - psi: PSI at or above its level holds soft while free memory looks
 *    fine, until it falls below its release level; unknown PSI holds
 *    nothing;
 *  - parse: good and bad --state-thresholds strings, each bad one with
 *    a message naming the problem;
 *  - source_budget, source_host: the arithmetic of a budget, and the
 *    host's figures within MemTotal;
 *  - source_cgroup: a real memory cgroup (v1 where its controller is
 *    mounted, as on this machine, else v2) with a 64 MiB limit and a
 *    child that touches 32 MiB in it: used within a tolerance of the
 *    child's memory, free = limit - used; a missing cgroup names the
 *    paths tried.  Needs root and a memory controller: fails,
 *    saying so, without them.  The cgroup is removed and the child
 *    killed by PID even when the test fails (the runner's teardown).
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/mem_source.h"
#include "engine/mem_state.h"

#define MIB (1024.0 * 1024.0)

/* Feed one reading every 1 s of fake time; the new state. */
static enum pk_mem_state feed(struct pk_mem_states *m, double free_pct,
			      uint64_t *now)
{
	*now += 1000;
	return pk_mem_states_update(m, free_pct, -1, *now);
}

START_TEST(thresholds)
{
	struct pk_mem_thresholds t;
	struct pk_mem_states m;
	uint64_t now = 1000;
	enum pk_mem_state seen[64];
	unsigned n = 0;

	pk_mem_thresholds_default(&t);
	pk_mem_states_init(&m, &t, now);
	/* Down by 0.5% a second: 10 -> 0.5. */
	for (double f = 10; f >= 0.5; f -= 0.5) {
		enum pk_mem_state s = feed(&m, f, &now);
		if (!n || seen[n - 1] != s)
			seen[n++] = s;
		/* Exactly the table. */
		enum pk_mem_state want = f < 2 ? PK_STATE_LOW
				       : f < 4 ? PK_STATE_HARD
				       : f < 6 ? PK_STATE_SOFT : PK_STATE_HIGH;
		ck_assert_msg(s == want, "free %.1f%%: %s, want %s", f,
			      pk_mem_state_name(s), pk_mem_state_name(want));
	}
	ck_assert_uint_eq(n, 4);
	ck_assert_uint_eq(m.transitions, 3);
	/* Up by 0.5% every 4 s (past the 3 s dwell): each up move at
	 * threshold + 1% exactly, one state at a time. */
	for (double f = 1.0; f <= 10; f += 0.5) {
		enum pk_mem_state s = PK_STATE_HIGH, before = m.state;
		for (int k = 0; k < 4; k++)
			s = feed(&m, f, &now);
		enum pk_mem_state want = before;
		if (before == PK_STATE_LOW && f >= 3)
			want = PK_STATE_HARD;
		if (before == PK_STATE_HARD && f >= 5)
			want = PK_STATE_SOFT;
		if (before == PK_STATE_SOFT && f >= 7)
			want = PK_STATE_HIGH;
		ck_assert_msg(s == want, "up at %.1f%% from %s: %s, want %s", f,
			      pk_mem_state_name(before), pk_mem_state_name(s),
			      pk_mem_state_name(want));
	}
	ck_assert_int_eq(m.state, PK_STATE_HIGH);
	ck_assert_uint_eq(m.transitions, 6);
	ck_assert_uint_eq(m.entered[PK_STATE_LOW], 1);
	ck_assert_uint_eq(m.entered[PK_STATE_HIGH], 2); /* the start counts */
}
END_TEST

START_TEST(dwell)
{
	struct pk_mem_thresholds t;
	struct pk_mem_states m;
	uint64_t now = 0;

	pk_mem_thresholds_default(&t);
	pk_mem_states_init(&m, &t, now);
	ck_assert_int_eq(pk_mem_states_update(&m, 3.0, -1, now += 100),
			 PK_STATE_HARD);
	/* Plenty free at once: the state waits out its dwell time. */
	ck_assert_int_eq(pk_mem_states_update(&m, 50, -1, now += 1000),
			 PK_STATE_HARD);
	ck_assert_int_eq(pk_mem_states_update(&m, 50, -1, now += 1999),
			 PK_STATE_HARD);
	ck_assert_int_eq(pk_mem_states_update(&m, 50, -1, now += 1),
			 PK_STATE_SOFT);
	/* And again from soft. */
	ck_assert_int_eq(pk_mem_states_update(&m, 50, -1, now += 2999),
			 PK_STATE_SOFT);
	ck_assert_int_eq(pk_mem_states_update(&m, 50, -1, now += 1),
			 PK_STATE_HIGH);
}
END_TEST

START_TEST(wobble)
{
	struct pk_mem_thresholds t;
	const double at[] = { 6.0, 4.0, 2.0 };

	pk_mem_thresholds_default(&t);
	for (unsigned i = 0; i < 3; i++) {
		struct pk_mem_states m;
		uint64_t now = 0;

		pk_mem_states_init(&m, &t, now);
		/* Settle just above the threshold's upper band first. */
		for (int k = 0; k < 20; k++)
			feed(&m, at[i] + 0.7, &now);
		uint64_t before = m.transitions;
		for (int k = 0; k < 60; k++)
			feed(&m, at[i] + (k % 2 ? 0.5 : -0.5), &now);
		ck_assert_msg(m.transitions - before == 1, "wobble around %.0f%%: "
			      "%llu transitions", at[i],
			      (unsigned long long)(m.transitions - before));
	}
}
END_TEST

START_TEST(skip_down)
{
	struct pk_mem_thresholds t;
	struct pk_mem_states m;
	uint64_t now = 0;

	pk_mem_thresholds_default(&t);
	pk_mem_states_init(&m, &t, now);
	ck_assert_int_eq(feed(&m, 10, &now), PK_STATE_HIGH);
	ck_assert_int_eq(feed(&m, 1, &now), PK_STATE_LOW);
	ck_assert_uint_eq(m.transitions, 1);
	/* Free again: one state per reading, each after its dwell. */
	now += 5000;
	ck_assert_int_eq(feed(&m, 50, &now), PK_STATE_HARD);
	now += 5000;
	ck_assert_int_eq(feed(&m, 50, &now), PK_STATE_SOFT);
	now += 5000;
	ck_assert_int_eq(feed(&m, 50, &now), PK_STATE_HIGH);
	ck_assert_uint_eq(m.transitions, 4);
}
END_TEST

START_TEST(psi)
{
	struct pk_mem_thresholds t;
	struct pk_mem_states m;
	uint64_t now = 0;

	pk_mem_thresholds_default(&t);
	pk_mem_states_init(&m, &t, now);
	/* 50% free but tasks stall on memory: soft. */
	ck_assert_int_eq(pk_mem_states_update(&m, 50, 12, now += 1000),
			 PK_STATE_SOFT);
	/* Between release and hold level: still held. */
	now += 10000;
	ck_assert_int_eq(pk_mem_states_update(&m, 50, 7, now), PK_STATE_SOFT);
	/* Below release: up again. */
	now += 10000;
	ck_assert_int_eq(pk_mem_states_update(&m, 50, 4, now), PK_STATE_HIGH);
	/* Unknown PSI holds nothing. */
	now += 10000;
	ck_assert_int_eq(pk_mem_states_update(&m, 50, -1, now), PK_STATE_HIGH);
}
END_TEST

START_TEST(parse)
{
	struct pk_mem_thresholds t;
	char err[200];
	const struct { const char *s, *says; } bad[] = {
		{ "4,6,2,1", "soft 4% must be above hard 6%" },
		{ "6,4,2", "" },
		{ "6,4,2,x", "" },
		{ "6,4,0,1", "" },
		{ "100,4,2,1", "" },
		{ "6,4,2,3", "" },
		{ "", "" },
	};

	ck_assert_int_eq(pk_mem_thresholds_parse("10,5,2,1", &t, err,
						 sizeof(err)), 0);
	ck_assert(t.soft_pct == 10 && t.hard_pct == 5 && t.low_pct == 2 &&
		  t.hyst_pct == 1);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(pk_mem_thresholds_parse(bad[i].s, &t, err,
						      sizeof(err)) == -EINVAL,
			      "'%s' accepted", bad[i].s);
		ck_assert_msg(err[0] && strstr(err, bad[i].says),
			      "'%s': message '%s'", bad[i].s, err);
	}
}
END_TEST

START_TEST(source_budget)
{
	struct pk_mem_source s;
	struct pk_mem_reading r;

	ck_assert_int_eq(pk_mem_source_open(&s, 100ull << 20, NULL), 0);
	ck_assert_int_eq(pk_mem_source_read(&s, 25ull << 20, &r), 0);
	ck_assert_uint_eq(r.total_bytes, 100ull << 20);
	ck_assert_uint_eq(r.used_bytes, 25ull << 20);
	ck_assert_uint_eq(r.free_bytes, 75ull << 20);
	ck_assert(fabs(r.free_pct - 75.0) < 1e-9);
	/* Over the budget: nothing free, never a wrapped figure. */
	ck_assert_int_eq(pk_mem_source_read(&s, 150ull << 20, &r), 0);
	ck_assert_uint_eq(r.free_bytes, 0);
	ck_assert(r.free_pct == 0);
}
END_TEST

START_TEST(source_host)
{
	struct pk_mem_source s;
	struct pk_mem_reading r;
	unsigned long long total_kib = 0;
	char line[256];
	FILE *f = fopen("/proc/meminfo", "r");

	ck_assert_msg(f, "/proc/meminfo: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %llu kB", &total_kib) == 1)
			break;
	fclose(f);
	ck_assert_int_eq(pk_mem_source_open(&s, 0, NULL), 0);
	ck_assert_int_eq(pk_mem_source_read(&s, 0, &r), 0);
	ck_assert_uint_eq(r.total_bytes, total_kib * 1024);
	ck_assert(r.free_bytes <= r.total_bytes && r.free_pct >= 0 &&
		  r.free_pct <= 100);
	ck_assert_uint_eq(r.used_bytes + r.free_bytes, r.total_bytes);
}
END_TEST

/*
 * The cgroup of source_cgroup, named after the test runner's pid so
 * that the runner's own teardown (an unchecked fixture: it runs in the
 * runner even when the test's forked process died on a failed assertion)
 * finds it, kills what is in it (the test's child, by PID) and removes it.
 */
static pid_t runner_pid;

/* 1: the v1 memory controller is mounted; 0: v2 has it; -1: neither. */
static int cg_version1(void)
{
	char line[512] = "";
	FILE *f;

	if (access(PK_CGROUP_V1_MEMORY_MOUNT "/memory.limit_in_bytes", F_OK) == 0)
		return 1;
	f = fopen(PK_CGROUP_V2_MOUNT "/cgroup.subtree_control", "r");
	if (f) {
		if (!fgets(line, sizeof(line), f))
			line[0] = '\0';
		fclose(f);
	}
	return strstr(line, "memory") ? 0 : -1;
}

static void cg_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s/pk-test-policy-%d",
		 cg_version1() == 0 ? PK_CGROUP_V2_MOUNT
				    : PK_CGROUP_V1_MEMORY_MOUNT,
		 (int)runner_pid);
}

static void cg_teardown(void)
{
	char dir[128], procs[160];
	FILE *f;
	int pid;

	cg_path(dir, sizeof(dir));
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
	for (int tries = 0; tries < 100 && (f = fopen(procs, "r")); tries++) {
		int any = 0;
		while (fscanf(f, "%d", &pid) == 1) {
			kill(pid, SIGKILL);
			any = 1;
		}
		fclose(f);
		if (!any)
			break;
		usleep(10000); /* the kill takes effect: looked at again */
	}
	if (rmdir(dir) < 0 && errno != ENOENT)
		fprintf(stderr, "test_policy: cannot remove %s: %s\n", dir,
			strerror(errno));
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_msg(f, "%s: %s", path, strerror(errno));
	ck_assert_msg(fputs(text, f) >= 0 && fclose(f) == 0, "%s: %s", path,
		      strerror(errno));
}

START_TEST(source_cgroup)
{
	struct pk_mem_source s;
	struct pk_mem_reading before, after;
	char path[256], pid[32], name[64], cg_dir[128];
	pid_t child;
	char c;

	ck_assert_msg(geteuid() == 0, "source_cgroup needs root (to make a "
		      "memory cgroup)");
	int v1 = cg_version1();
	ck_assert_msg(v1 >= 0, "source_cgroup needs a memory controller: v1 "
		      "at " PK_CGROUP_V1_MEMORY_MOUNT " or v2 enabled in "
		      PK_CGROUP_V2_MOUNT "/cgroup.subtree_control");
	snprintf(name, sizeof(name), "pk-test-policy-%d", (int)runner_pid);
	cg_path(cg_dir, sizeof(cg_dir));
	ck_assert_msg(mkdir(cg_dir, 0755) == 0, "mkdir %s: %s", cg_dir,
		      strerror(errno));
	snprintf(path, sizeof(path), "%s/%s", cg_dir,
		 v1 ? "memory.limit_in_bytes" : "memory.max");
	write_file(path, "67108864");
	/* By name, the way an admin gives it. */
	ck_assert_msg(pk_mem_source_open(&s, 0, name) == 0, "%s", s.err);
	ck_assert_int_eq(pk_mem_source_read(&s, 0, &before), 0);
	ck_assert_uint_eq(before.total_bytes, 64ull << 20);

	int go[2], done[2];
	ck_assert_int_eq(pipe(go), 0);
	ck_assert_int_eq(pipe(done), 0);
	child = fork();
	ck_assert(child >= 0);
	if (child == 0) {
		/* Moved into the cgroup by the parent, then told to touch
		 * 32 MiB: every page is charged to the cgroup. */
		size_t len = 32u << 20;
		char *mem;
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED)
			_exit(1);
		memset(mem, 0x5a, len);
		if (write(done[1], "d", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", cg_dir);
	snprintf(pid, sizeof(pid), "%d", (int)child);
	write_file(path, pid);
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_msg(read(done[0], &c, 1) == 1, "the child died before "
		      "touching its memory");
	ck_assert_int_eq(pk_mem_source_read(&s, 0, &after), 0);
	printf("source_cgroup: used %.1f MiB before, %.1f MiB with the "
	       "child's 32 MiB; free %.1f MiB of %.1f MiB\n",
	       before.used_bytes / MIB, after.used_bytes / MIB,
	       after.free_bytes / MIB, after.total_bytes / MIB);
	/* 32 MiB, plus up to 1/8 of it for a sanitizer build's shadow
	 * memory (the ASan child writes 4 MiB of shadow), plus 4 MiB. */
	ck_assert_msg(after.used_bytes >= before.used_bytes + (30ull << 20) &&
		      after.used_bytes <= before.used_bytes + (40ull << 20),
		      "used %.1f MiB, before %.1f MiB: not the child's 32 MiB",
		      after.used_bytes / MIB, before.used_bytes / MIB);
	ck_assert_uint_eq(after.free_bytes, after.total_bytes - after.used_bytes);
	ck_assert(fabs(after.free_pct - 100.0 * after.free_bytes /
					     after.total_bytes) < 1e-9);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	ck_assert_msg(rmdir(cg_dir) == 0, "rmdir %s: %s", cg_dir,
		      strerror(errno));
	/* A cgroup that does not exist names the paths it tried. */
	ck_assert_int_eq(pk_mem_source_open(&s, 0, "pk-no-such-cgroup"),
			 -ENOENT);
	ck_assert_msg(strstr(s.err, "/pk-no-such-cgroup (not found)"),
		      "error: %s", s.err);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("states");
	TCase *src = tcase_create("sources");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, thresholds);
	tcase_add_test(tc, dwell);
	tcase_add_test(tc, wobble);
	tcase_add_test(tc, skip_down);
	tcase_add_test(tc, psi);
	tcase_add_test(tc, parse);
	suite_add_tcase(s, tc);
	tcase_add_unchecked_fixture(src, NULL, cg_teardown);
	tcase_add_test(src, source_budget);
	tcase_add_test(src, source_host);
	tcase_add_test(src, source_cgroup);
	suite_add_tcase(s, src);
	runner_pid = getpid();
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
