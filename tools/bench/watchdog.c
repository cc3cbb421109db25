/*
 * watchdog.c - turn a hung fault into a clear error instead of a hang.
 *
 * What/how/why: see watchdog.h.  Exiting from this thread is deliberate:
 * the main thread may be blocked inside a page fault, and exit_group
 * after the teardown is the only way out of that.
 */
#include "watchdog.h"
#include "cleanup.h"
#include "timing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *watchdog_main(void *arg)
{
	struct watchdog *w = arg;
	uint64_t seen_gen = 0, seen_done = 0, since = now_ns();

	while (__atomic_load_n(&w->running, __ATOMIC_ACQUIRE)) {
		usleep(100000);
		const char *phase = __atomic_load_n(&w->phase, __ATOMIC_ACQUIRE);
		pid_t pid = __atomic_load_n(&w->served_by, __ATOMIC_ACQUIRE);
		uint64_t gen = __atomic_load_n(&w->phase_gen, __ATOMIC_ACQUIRE);
		uint64_t done = __atomic_load_n(&w->prog.done, __ATOMIC_RELAXED);
		uint64_t now = now_ns();

		if (!phase)
			continue;
		if (gen != seen_gen || done != seen_done) {
			seen_gen = gen;
			seen_done = done;
			since = now;
		}
		const char *why = NULL;
		if (pid > 0 && !proc_alive(pid))
			why = "the process serving faults died";
		else if (now - since > (uint64_t)w->stall_s * 1000000000ull)
			why = "no progress within the stall timeout (server not answering)";
		if (!why)
			continue;
		__atomic_store_n(&w->fired, 1, __ATOMIC_RELEASE);
		fprintf(stderr, "bench: FATAL during %s: %s (pid %d, %llu touches done, "
			"stall timeout %d s)\n", phase, why, (int)pid,
			(unsigned long long)done, w->stall_s);
		const struct pk_daemon *d = __atomic_load_n(&w->daemon, __ATOMIC_ACQUIRE);
		if (d && pid == d->pid) {
			fprintf(stderr, "bench: pagekeeperd log (last lines):\n");
			daemon_log_tail(d, stderr, 30);
		}
		fflush(NULL);
		cleanup_all(); /* first, so the main thread cannot race us */
		_exit(3);
	}
	return NULL;
}

int watchdog_start(struct watchdog *w, int stall_s, const struct pk_daemon *d)
{
	memset(w, 0, sizeof(*w));
	w->stall_s = stall_s;
	w->daemon = d;
	w->running = 1;
	int r = pthread_create(&w->thread, NULL, watchdog_main, w);
	if (r) {
		w->running = 0;
		return -r;
	}
	return 0;
}

void watchdog_enter(struct watchdog *w, const char *phase, pid_t served_by)
{
	__atomic_store_n(&w->prog.done, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&w->served_by, served_by, __ATOMIC_RELEASE);
	__atomic_add_fetch(&w->phase_gen, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&w->phase, phase, __ATOMIC_RELEASE);
}

void watchdog_set_daemon(struct watchdog *w, const struct pk_daemon *d)
{
	__atomic_store_n(&w->daemon, d, __ATOMIC_RELEASE);
}

void watchdog_leave(struct watchdog *w)
{
	__atomic_store_n(&w->phase, NULL, __ATOMIC_RELEASE);
	__atomic_store_n(&w->served_by, 0, __ATOMIC_RELEASE);
}

void watchdog_stop(struct watchdog *w)
{
	if (!w->running)
		return;
	__atomic_store_n(&w->running, 0, __ATOMIC_RELEASE);
	pthread_join(w->thread, NULL);
}
