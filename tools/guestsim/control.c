/*
 * control.c - stopping threads on time or on a signal, and --hold.
 *
 * What: the main thread of pk-guestsim spends its life waiting: for fill
 * and verify threads to finish, for the workload's duration, for the test
 * harness to release --hold.  Each wait must also end early, cleanly, on
 * SIGINT or SIGTERM.
 *
 * How: SIGINT and SIGTERM are blocked in every thread before any thread
 * (ours or the client library's) exists, and the main thread takes them
 * synchronously with sigtimedwait() between its checks, or through a
 * signalfd in poll() while holding.  A signal only sets the group's stop
 * flag, which workers poll between ops; there is no handler and so no
 * global state.  A second signal exits at once: with pagekeeperd dead a
 * worker can sit in a page fault forever, and the user must still be able
 * to get rid of the guest.
 *
 * Why: ending ops at a clean boundary is what lets the final --verify and
 * the report run after an early stop.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "control.h"
#include "clock.h"

#define TICK_NS 20000000ULL	/* progress and deadline granularity */
#define STOP_TICK_NS 1000000ULL	/* stopping: threads end within an op */

void gs_control_block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, set, NULL);
}

void gs_control_exit(struct gs_control *ctl)
{
	uint64_t now = gs_now_ns();

	/* Read by the waiter only after pthread_join(), which orders it. */
	if (atomic_fetch_sub_explicit(&ctl->running, 1,
				      memory_order_acq_rel) == 1)
		ctl->end_ns = now;
}

/* One signal of set within timeout_ns, or 0. */
static int take_signal(const sigset_t *set, uint64_t timeout_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(timeout_ns / 1000000000ULL),
		.tv_nsec = (long)(timeout_ns % 1000000000ULL),
	};
	int sig = sigtimedwait(set, NULL, &ts);

	return sig > 0 ? sig : 0;
}

int gs_control_wait(const sigset_t *set, struct gs_control *ctl,
		    uint64_t deadline_ns, void (*tick)(void *), void *arg)
{
	int stopped_by = 0;
	unsigned signals = 0;
	int stopping = 0;

	while (atomic_load_explicit(&ctl->running, memory_order_acquire)) {
		uint64_t now = gs_now_ns();
		uint64_t wait = stopping ? STOP_TICK_NS : TICK_NS;
		int sig;

		if (!stopping && deadline_ns != UINT64_MAX) {
			if (now >= deadline_ns)
				wait = 0;
			else if (deadline_ns - now < wait)
				wait = deadline_ns - now;
		}
		sig = wait ? take_signal(set, wait) : 0;
		if (sig) {
			if (++signals >= 2) {
				fprintf(stderr, "pk-guestsim: second signal, "
						"exiting at once\n");
				_exit(130);
			}
			if (!stopping)
				stopped_by = sig;
			stopping = 1;
			atomic_store(&ctl->stop, 1);
		} else if (!stopping && deadline_ns != UINT64_MAX &&
			   gs_now_ns() >= deadline_ns) {
			stopping = 1;
			atomic_store(&ctl->stop, 1);
		}
		if (tick)
			tick(arg);
	}
	return stopped_by;
}

int gs_control_sleep(const sigset_t *set, uint64_t deadline_ns)
{
	for (;;) {
		uint64_t now = gs_now_ns();
		int sig;

		if (now >= deadline_ns)
			return 0;
		sig = take_signal(set, deadline_ns - now);
		if (sig)
			return sig;
	}
}

int gs_control_hold(const sigset_t *set, bool use_stdin)
{
	struct pollfd pfd[2];
	nfds_t nfds = use_stdin ? 2 : 1;
	char buf[4096];
	int sfd = signalfd(-1, set, SFD_CLOEXEC);

	if (sfd < 0)
		return -errno;
	pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
	for (;;) {
		if (poll(pfd, nfds, -1) < 0) {
			if (errno == EINTR)
				continue;
			close(sfd);
			return -errno;
		}
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			ssize_t n = read(sfd, &si, sizeof(si));

			close(sfd);
			return n == (ssize_t)sizeof(si) ? (int)si.ssi_signo
							: SIGTERM;
		}
		if (nfds == 2 && (pfd[1].revents & POLLNVAL)) {
			nfds = 1; /* no stdin at all: only a signal ends it */
			continue;
		}
		if (nfds == 2 && pfd[1].revents) {
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

			if (n == 0 || (n < 0 && errno != EINTR &&
				       errno != EAGAIN)) {
				close(sfd);
				return 0;
			}
		}
	}
}
