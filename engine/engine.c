/*
 * engine.c - engine context lifetime and the main loop.
 *
 * pk_engine_run() is the whole daemon: one epoll loop on this thread.
 * Why one thread: the daemon's own work per fault is a few microseconds
 * while a fault round trip costs ~30 us of kernel wake-up latency, so one
 * loop serves many guests; the second core is left to the guests.  Slow
 * work (disk I/O in the swapper) goes through io_uring completions in the
 * same loop and never blocks it.
 *
 * The loop timeout is normally the 1 s statistics tick, and 1 ms while a
 * VM has faults deferred by EAGAIN (a REMOVE in flight), so those are
 * retried promptly without spinning.  Faults that back off after an
 * error (ENOMEM from UFFDIO_COPY under a memory cgroup limit, a failed
 * slot read: fault.c) wait on a second timerfd, armed for the earliest
 * retry that is due, so a guest held for a second costs the loop a few
 * wake-ups, not a thousand.  The balloon bridges' timers (stats polls,
 * reconnects, request timeouts: vm_balloon.h) share that timerfd.
 */
#include "engine/engine.h"
#include "engine/protocol.h"
#include "engine/state.h"
#include "engine/vm.h"
#include "engine/vm_balloon.h"
#include "engine/swap_dedup.h"
#include "swapper/swap_store.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/*
 * Time the 1 s tick may spend punching freed swap slots (swap_slots.h).
 * Each punch can wait one disk I/O latency while every guest's faults
 * wait too, so this bounds the stall; what is left waits a tick.
 */
#define PK_SCRUB_BUDGET_NS (5 * 1000 * 1000)

static void on_signal(struct pk_event_loop *loop, struct pk_watch *w,
		      uint32_t events, void *data)
{
	struct pk_engine *e = data;
	struct signalfd_siginfo si;
	(void)loop, (void)w, (void)events;

	if (read(e->signal_fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGHUP) {
		if (e->cfg.reload_hook)
			e->cfg.reload_hook(e, e->cfg.hook_arg);
		else
			pk_log(&e->log, "SIGHUP: nothing to reload");
		return;
	}
	pk_log(&e->log, "signal %u: shutting down", si.ssi_signo);
	e->stop = 1;
}

uint64_t pk_monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void pk_engine_retry_at(struct pk_engine *e, uint64_t due_ms)
{
	struct itimerspec at = { .it_value = {
		.tv_sec = (time_t)(due_ms / 1000),
		.tv_nsec = (long)(due_ms % 1000) * 1000000 } };

	if (!due_ms || due_ms == UINT64_MAX ||
	    (e->retry_due_ms && e->retry_due_ms <= due_ms))
		return;
	if (timerfd_settime(e->retry_timer_fd, TFD_TIMER_ABSTIME, &at,
			    NULL) == 0)
		e->retry_due_ms = due_ms;
}

/* The retries themselves run at the top of pk_engine_run's loop. */
static void on_retry_timer(struct pk_event_loop *loop, struct pk_watch *w,
			   uint32_t events, void *data)
{
	struct pk_engine *e = data;
	uint64_t expirations;
	(void)loop, (void)w, (void)events;

	if (read(e->retry_timer_fd, &expirations, sizeof(expirations)) > 0)
		e->retry_due_ms = 0;
}

static void on_tick(struct pk_event_loop *loop, struct pk_watch *w,
		    uint32_t events, void *data)
{
	struct pk_engine *e = data;
	uint64_t expirations = 0;
	(void)loop, (void)w, (void)events;

	if (read(e->timer_fd, &expirations, sizeof(expirations)) < 0 ||
	    !expirations)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	uint64_t now_ms = (uint64_t)now.tv_sec * 1000 +
			  (uint64_t)now.tv_nsec / 1000000;
	for (struct pk_vm *vm = e->vms; vm; vm = vm->next) {
		pk_fault_run_rechecks(vm, now_ms);
		vm->stats.faults_per_s =
			(double)(vm->stats.faults - vm->stats.faults_last_tick) /
			(double)expirations;
		vm->stats.faults_last_tick = vm->stats.faults;
		vm->stats.swapins_per_s =
			(double)(vm->stats.swapins - vm->stats.swapins_last_tick) /
			(double)expirations;
		vm->stats.swapins_last_tick = vm->stats.swapins;
	}
	pk_scan_tick(e, expirations);
	pk_log_flush(&e->log); /* lines a stalled log stream left waiting */
	pk_share_tick(e);
	pk_state_tick(e);
	pk_policy_tick(e, now_ms);
	if (e->swap) {
		int r = pk_swap_store_scrub(e->swap, PK_SCRUB_BUDGET_NS);
		if (r < 0)
			pk_log_prio(&e->log, LOG_WARNING, "swap file: punching "
				    "freed slots: %s", strerror(-r));
	}
	if (e->cfg.tick_hook)
		e->cfg.tick_hook(e, e->cfg.hook_arg);
}

static void io_done(void *arg, uint64_t user_data, int result)
{
	struct pk_engine *e = arg;
	struct pk_io_op *op = (struct pk_io_op *)(uintptr_t)user_data;

	if (op->kind == PK_IO_EVICT_WRITE || op->kind == PK_IO_EVICT_VERIFY)
		pk_evict_io_done(e, op, result);
	else
		pk_fault_swapin_done(e, op, result);
}

void pk_engine_reap_swap(struct pk_engine *e)
{
	pk_swap_reap(e->swap, io_done, e);
}

int pk_engine_init(struct pk_engine *e, const struct pk_engine_config *cfg)
{
	struct itimerspec tick = { .it_interval = { 1, 0 }, .it_value = { 1, 0 } };
	sigset_t sigs;
	int err;

	memset(e, 0, sizeof(*e));
	e->cfg = *cfg;
	e->listen_fd = e->signal_fd = e->timer_fd = e->scan_timer_fd = -1;
	e->retry_timer_fd = e->accept_pause_fd = -1;
	e->state_dirfd = e->run_dirfd = e->state_lock_fd = e->run_lock_fd = -1;
	pk_log_init(&e->log, stderr);
	if (!e->cfg.run_dir)
		e->cfg.run_dir = e->cfg.state_dir;
	if (!e->cfg.fault_around_max)
		e->cfg.fault_around_max = PK_FAULT_AROUND_DEFAULT;
	if (e->cfg.fault_around_max > PK_FAULT_AROUND_LIMIT)
		return -EINVAL;
	e->zero_buf = mmap(NULL, (size_t)e->cfg.fault_around_max * 4096,
			   PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (e->zero_buf == MAP_FAILED) {
		e->zero_buf = NULL;
		return -ENOMEM;
	}
	e->rx_buf = malloc(PK_PROTO_MAX_MSG + 1); /* malloc: max-aligned */
	e->loop = pk_event_loop_create();
	if (!e->loop || !e->rx_buf)
		return -ENOMEM;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	e->signal_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	e->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	e->retry_timer_fd = timerfd_create(CLOCK_MONOTONIC,
					   TFD_CLOEXEC | TFD_NONBLOCK);
	if (e->signal_fd < 0 || e->timer_fd < 0 || e->retry_timer_fd < 0 ||
	    timerfd_settime(e->timer_fd, 0, &tick, NULL) < 0 ||
	    !pk_watch_add(e->loop, e->signal_fd, EPOLLIN, on_signal, e) ||
	    !pk_watch_add(e->loop, e->timer_fd, EPOLLIN, on_tick, e) ||
	    !pk_watch_add(e->loop, e->retry_timer_fd, EPOLLIN, on_retry_timer,
			  e))
		return -errno;
	/* --victims: cold-first needs write tracking (track.h). */
	e->victim_policy = cfg->policy && cfg->policy->victims == PK_VICTIMS_COLD
				   ? pk_victim_cold : pk_victim_random;
	e->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	/* The locks before anything in the directories is touched. */
	if ((err = pk_state_open(e)) != 0 ||
	    (err = pk_state_swap_open(e)) != 0 ||
	    (err = pk_scan_init(e)) != 0 ||
	    (err = pk_state_replay(e)) != 0 ||
	    (err = pk_policy_init(e)) != 0)
		return err;
	err = pk_control_listen(e);
	if (err)
		return err;
	return 0;
}

int pk_engine_run(struct pk_engine *e)
{
	while (!e->stop) {
		unsigned deferred = 0;
		int evict_pending = e->evict_pending;
		uint64_t now_ms = pk_monotonic_ms(), next_due = UINT64_MAX;
		e->evict_pending = 0;
		for (struct pk_vm *vm = e->vms; vm; vm = vm->next) {
			if (vm->n_deferred || vm->swapin_retry)
				deferred += pk_fault_retry_deferred(vm, now_ms,
								    &next_due);
			if (evict_pending)
				pk_evict_resume(vm);
			if (vm->drain_fd >= 0) {
				pk_fault_drain_step(vm);
				deferred += vm->drain_fd >= 0;
			}
			if (vm->track.sweeping) /* track.h: a period begins */
				deferred += (unsigned)pk_track_step(vm);
			pk_vm_balloon_tick(vm, now_ms, &next_due);
		}
		pk_engine_retry_at(e, next_due);
		deferred += (unsigned)e->evict_pending;
		int n = pk_event_loop_run_once(e->loop, deferred ? 1 : 1000);
		if (n < 0) {
			pk_log_prio(&e->log, LOG_ERR, "event loop: %s", strerror(-n));
			return n;
		}
	}
	return 0;
}

void pk_engine_stop(struct pk_engine *e)
{
	e->stop = 1;
}

void pk_engine_fini(struct pk_engine *e)
{
	/* Stopping is not the guests going away: their state stays. */
	e->keep_state = 1;
	while (e->vms)
		pk_vm_destroy(e->vms);
	while (e->waiting)
		pk_vm_destroy(e->waiting);
	if (e->loop)
		pk_control_close(e);
	if (e->signal_fd >= 0)
		close(e->signal_fd);
	if (e->timer_fd >= 0)
		close(e->timer_fd);
	if (e->retry_timer_fd >= 0)
		close(e->retry_timer_fd);
	pk_scan_fini(e);
	pk_policy_fini(e);
	if (e->swap) {
		/* The VMs are gone; completions only free their ops. */
		struct pk_swap_stats st;
		for (pk_swap_store_stats(e->swap, &st); st.in_flight;
		     pk_swap_store_stats(e->swap, &st)) {
			pk_swap_wait(e->swap, 1);
			pk_swap_reap(e->swap, io_done, e);
		}
		pk_swap_store_close(e->swap);
	}
	pk_swap_dedup_fini(e);
	pk_state_close(e); /* after the store: it writes the checksums */
	pk_event_loop_destroy(e->loop);
	free(e->rx_buf);
	if (e->zero_buf)
		munmap(e->zero_buf, (size_t)e->cfg.fault_around_max * 4096);
	pk_log_fini(&e->log, 1000); /* what a stalled stream still holds */
	memset(e, 0, sizeof(*e));
	e->listen_fd = e->signal_fd = e->timer_fd = e->scan_timer_fd = -1;
	e->retry_timer_fd = -1;
	e->state_dirfd = e->run_dirfd = e->state_lock_fd = e->run_lock_fd = -1;
}
