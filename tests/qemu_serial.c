/*
 * qemu_serial.c - read the QEMU test guest's serial console: wait for a
 * line, and the checker's (pk-guestcheck's) latest status (see
 * qemu_guest.h).  The console goes to a file; we poll it.  Also the tail
 * of any such log file, for failure reports, and the budgets (deadlines
 * derived from a wait's work) of qemu_guest.h.
 */
#include "tests/qemu_guest.h"
#include "tests/daemon_fixture.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROGRESS_MS 10000

static void set_error(struct qemu_guest *g, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g->error, sizeof(g->error), fmt, ap);
	va_end(ap);
}

int qemu_serial_scan(const char *path, long *cursor, const char *prefix,
		     char *out, size_t len, char *last, size_t last_len)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int found = 0;

	if (!f)
		return 0;
	fseek(f, *cursor, SEEK_SET);
	while (!found && (n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] != '\n')
			break; /* a partial line: next time */
		*cursor += n;
		line[n - 1] = '\0';
		if (n > 1 && line[n - 2] == '\r')
			line[n - 2] = '\0';
		if (strstr(line, prefix)) {
			found = 1;
			if (out)
				snprintf(out, len, "%s", line);
		}
		if (last)
			snprintf(last, last_len, "%s", line);
	}
	free(line);
	fclose(f);
	return found;
}

int qemu_guest_wait_line(struct qemu_guest *g, const char *prefix,
			 int timeout_ms, char *line, size_t len)
{
	long deadline = pk_test_now_ms() + timeout_ms, start = pk_test_now_ms();
	long progress = start + PROGRESS_MS;
	char last[256] = "";

	for (;;) {
		int alive = qemu_guest_alive(g);
		if (qemu_serial_scan(g->serial, &g->cursor, prefix, line, len,
				     last, sizeof(last)))
			return 0;
		if (!alive) {
			char why[256];
			snprintf(why, sizeof(why), "%.200s", g->error);
			set_error(g, "%s before a line with '%s' (last serial "
				  "line: '%s')", why, prefix, last);
			return -ESRCH;
		}
		if (pk_test_now_ms() >= deadline) {
			set_error(g, "no serial line with '%s' in %d ms (last "
				  "serial line: '%s')", prefix, timeout_ms,
				  last);
			return -ETIMEDOUT;
		}
		if (pk_test_now_ms() >= progress) {
			fprintf(stderr, "qemu_guest %s: waiting for '%s': %ld s "
				"of %d s; last serial line: '%s'\n", g->name,
				prefix, (pk_test_now_ms() - start) / 1000,
				timeout_ms / 1000, last);
			progress += PROGRESS_MS;
		}
		usleep(50000);
	}
}

static void parse_round(const char *s, struct pkcheck_status *st)
{
	struct pkcheck_status t = *st;

	if (sscanf(s, "pkcheck: round %ld verified_mib %lf errors %lld "
		   "rewritten_pages %*d rate %lf MiB/s mem_total_mib %ld "
		   "mem_free_mib %ld", &t.round, &t.verified_mib, &t.errors,
		   &t.rate_mib_s, &t.mem_total_mib, &t.mem_free_mib) == 6)
		*st = t;
}

int qemu_guest_checker_status(struct qemu_guest *g, struct pkcheck_status *st)
{
	FILE *f = fopen(g->serial, "r");
	char *line = NULL, *p;
	size_t cap = 0;

	memset(st, 0, sizeof(*st));
	st->mem_total_mib = st->mem_free_mib = -1;
	if (!f) {
		set_error(g, "no serial log %s: %s", g->serial,
			  strerror(errno));
		return -errno;
	}
	while (getline(&line, &cap, f) > 0) {
		if (!strchr(line, '\n'))
			break;
		if ((p = strstr(line, "pkcheck: round ")))
			parse_round(p, st);
		else if ((p = strstr(line, "pkguest: checker exited status ")) &&
			 sscanf(p, "pkguest: checker exited status %d",
				&st->exit_status) == 1)
			st->exited = 1;
	}
	free(line);
	fclose(f);
	return 0;
}

int qemu_guest_wait_rounds(struct qemu_guest *g, long rounds, int timeout_ms,
			   struct pkcheck_status *st)
{
	long start = pk_test_now_ms(), deadline = start + timeout_ms;
	long progress = start + PROGRESS_MS;

	for (;;) {
		int alive = qemu_guest_alive(g);
		int rc = qemu_guest_checker_status(g, st);
		if (rc)
			return rc;
		if (st->round >= rounds)
			return 0;
		if (st->exited) {
			set_error(g, "the checker exited with status %d after "
				  "round %ld (of %ld wanted)", st->exit_status,
				  st->round, rounds);
			return -ESRCH;
		}
		if (!alive) {
			char why[256];
			snprintf(why, sizeof(why), "%.200s", g->error);
			set_error(g, "%s after checker round %ld (of %ld "
				  "wanted)", why, st->round, rounds);
			return -ESRCH;
		}
		if (pk_test_now_ms() >= deadline) {
			set_error(g, "no checker round %ld within %d ms: the "
				  "checker is at round %ld", rounds,
				  timeout_ms, st->round);
			return -ETIMEDOUT;
		}
		if (pk_test_now_ms() >= progress) {
			fprintf(stderr, "qemu_guest %s: checker round %ld of "
				"%ld, %lld errors, %ld s\n", g->name, st->round,
				rounds, st->errors,
				(pk_test_now_ms() - start) / 1000);
			progress += PROGRESS_MS;
		}
		usleep(100000);
	}
}

int qemu_guest_boot_budget_ms(int side_by_side)
{
	return (int)(QEMU_GUEST_BOOT_MS * (side_by_side > 1 ? side_by_side : 1) *
		     pk_test_time_scale());
}

int qemu_guest_qmp_budget_ms(void)
{
	return (int)(QEMU_GUEST_QMP_MS * pk_test_time_scale());
}

int qemu_guest_mib_budget_ms(double mib, double rate_mib_s)
{
	return (int)((mib * 1000.0 / rate_mib_s + QEMU_GUEST_QMP_MS) *
		     pk_test_time_scale());
}

int qemu_guest_rounds_budget_ms(struct qemu_guest *g, long round)
{
	struct pkcheck_status st;
	double ms = 0, round_ms;
	long n;

	if (qemu_guest_checker_status(g, &st) < 0)
		st.round = 0;
	n = round - st.round;
	round_ms = g->check_mib * 1000.0 / PKCHECK_MIN_MIB_S + g->interval_ms;
	if (n > 0)
		ms += (double)n * round_ms;
	if (st.round == 0) /* it fills (and releases) first */
		ms += (g->check_mib + g->release_mib) * 1000.0 /
		      PKCHECK_MIN_MIB_S;
	ms += PKCHECK_ROUND_SLACK_MS;
	return (int)(ms * pk_test_time_scale());
}

void qemu_log_dump_tail(const char *path, int lines, const char *tag)
{
	FILE *f = fopen(path, "r");
	long *starts, n = 0;
	char *line = NULL;
	size_t cap = 0;

	if (!f)
		return;
	starts = calloc((size_t)lines, sizeof(*starts));
	if (!starts) {
		fclose(f);
		return;
	}
	for (long off = 0; getline(&line, &cap, f) > 0; off = ftell(f))
		starts[n++ % lines] = off;
	if (n) {
		fseek(f, starts[n > lines ? n % lines : 0], SEEK_SET);
		while (getline(&line, &cap, f) > 0)
			fprintf(stderr, "%s%s", tag, line);
	}
	free(line);
	free(starts);
	fclose(f);
}
