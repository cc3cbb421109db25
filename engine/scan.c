/*
 * scan.c - the sharing scanner's engine side: walk guest RAM, find the
 * stable pages, reclaim zero pages and hand duplicates to share.c.
 *
 * Every 10 ms the scan timer takes its share of the current rate (a
 * token bucket) and spends it on the VMs in turn, each through its own
 * cursor over the RAM file (hashing/scan_cursor.h: the cursor reads with
 * pread only the runs of pages the page table says are RESIDENT, joined
 * across gaps of a few pages, so the scan never faults in or allocates a
 * page, and long holes cost no syscall).  After the tick's first
 * millisecond it gives way to any fault or other event waiting in the
 * loop.
 *
 * Two limits.  CPU (--scan-cpu, percent of one core): a credit grows by
 * that share of the time passed and pays for all a tick does, merges
 * included, so the average holds even when a tick overspends.  Rate:
 * --scan-rate while the scanner finds nothing new, doubling each second
 * up to --scan-rate-max while at least 1 page in 32 it reads is new to it
 * (first read since it became resident, or just stable) and halving
 * back otherwise (scan_rate_adapt).  So a guest that has just filled its
 * memory is merged at whatever the CPU share allows, and idle guests
 * already merged cost about 10% of a core for 8 GiB at 600 MiB/s.
 *
 * A page is acted on only when it is stable: its hash was the same in
 * --share-stable-scans + 1 consecutive passes (default 2), and a VM's
 * passes start at least a second apart.  The page table's payload of a
 * RESIDENT page holds the pass stamp, the count of stable passes, the
 * candidate bit and 43 bits of the hash (scan.h), so this costs no memory
 * beyond the 8-byte entry.  Stable zero pages and stable duplicates
 * (pk_share_consider) join one queue per VM, in scan order, reclaimed in
 * batches through the eviction protocol (pk_evict_scan_pages): protect,
 * copy out, verify, punch, so a write racing the reclaim is never lost.
 * The scanner's own reads are only hints.
 *
 * Why hash stability and not the PAGEMAP_SCAN written bit: the written
 * bit needs UFFD_FEATURE_WP_ASYNC, which applies to the whole uffd and
 * cannot coexist with the synchronous write protection that eviction and
 * merging rely on (FACTS.md).
 *
 * Zero pages are reclaimed in every sharing domain: doing so tells a
 * guest nothing about any other VM.
 *
 * Private anonymous RAM has no file the daemon can read safely, so it is
 * not scanned yet (the in-guest agent will do it).
 *
 * The scanner's CPU is measured with the thread CPU clock around its work
 * and reported per second, in total and per VM, next to its rate.
 */
#include "engine/engine.h"
#include "engine/vm.h"
#include "hashing/scan_cursor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define PK_SCAN_PERIOD_NS (10 * 1000 * 1000)
/*
 * A VM's passes start at most once a second, so "zero in two passes"
 * always means zero for a second or more: on a small VM at a high rate,
 * passes would otherwise be milliseconds apart, and the scanner would
 * take back the zero pages fault-around has just handed to a guest that
 * is about to write them.
 */
#define PK_SCAN_MIN_PASS_NS (1000ULL * 1000 * 1000)
/* The queue's batch copies (pk_evict_scan_pages), share_tmp, scan_junk. */
#define PK_SCAN_SCRATCH_PAGES (PK_SHARE_QUEUE + 2)
/* Non-resident pages a read may span to join two resident runs. */
#define PK_SCAN_GAP_PAGES 4
/* Pages per scan step: the deadline is checked between steps. */
#define PK_SCAN_STEP 256u

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Table index of the page at RAM-file offset off, or UINT64_MAX. */
static uint64_t page_at_offset(const struct pk_vm *vm, uint64_t off)
{
	for (uint32_t i = 0; i < vm->n_regions; i++) {
		const struct pk_vm_region *r = &vm->regions[i];
		if (off >= r->file_offset && off < r->file_offset + r->length)
			return r->first_page + (off - r->file_offset) / PK_PAGE_SIZE;
	}
	return UINT64_MAX;
}

/*
 * The scan cursor's extents (scan_cursor.h): runs of RESIDENT pages in
 * the page table, in file order, joined across gaps of up to
 * PK_SCAN_GAP_PAGES other pages.  Other pages are not the scanner's
 * business (on_page ignores them), so longer gaps are skipped without a
 * syscall.
 */
static int resident_extent(void *arg, uint64_t from, uint64_t *start,
			   uint64_t *end)
{
	const struct pk_vm *vm = arg;
	const struct pk_page_table *pt = &vm->pages;

	for (;;) {
		const struct pk_vm_region *next = NULL;
		/* The region holding from, else the first one after it. */
		for (uint32_t i = 0; i < vm->n_regions; i++) {
			const struct pk_vm_region *r = &vm->regions[i];
			if (r->file_offset + r->length <= from)
				continue;
			if (!next || r->file_offset < next->file_offset)
				next = r;
		}
		if (!next)
			return 0;
		uint64_t lo = from > next->file_offset ? from : next->file_offset;
		uint64_t i = next->first_page + (lo - next->file_offset) / PK_PAGE_SIZE;
		uint64_t last = next->first_page + next->length / PK_PAGE_SIZE;
		while (i < last && pk_page_state(pt, i) != PK_PAGE_RESIDENT)
			i++;
		if (i < last) {
			uint64_t j = i + 1, run_end = j;
			/* Through short gaps too: reading a few holes (zeros,
			 * nothing allocated; on_page skips them) costs less
			 * than a pread more, and once merging has left the
			 * resident pages scattered, most runs are one or two
			 * pages long. */
			while (j < last && j - run_end < PK_SCAN_GAP_PAGES) {
				if (pk_page_state(pt, j) == PK_PAGE_RESIDENT)
					run_end = j + 1;
				j++;
			}
			j = run_end;
			*start = next->file_offset +
				 (i - next->first_page) * PK_PAGE_SIZE;
			*end = next->file_offset + (j - next->first_page) * PK_PAGE_SIZE;
			return 1;
		}
		from = next->file_offset + next->length;
	}
}

static int on_page(void *arg, uint64_t off, const void *page, uint64_t hash,
		   bool is_zero)
{
	struct pk_vm *vm = arg;
	struct pk_page_table *pt = &vm->pages;
	uint64_t idx = page_at_offset(vm, off), old, now;
	unsigned cur = pk_scan_stamp(vm->scan_pass), stable = 0;
	bool same, read_last_pass;

	vm->stats.scan_pages++;
	if (idx == UINT64_MAX || pk_page_state(pt, idx) != PK_PAGE_RESIDENT ||
	    pk_page_busy(pt, idx))
		return 0;
	old = pk_page_payload(pt, idx);
	if (pk_scan_payload_stamp(old) == cur)
		return 0; /* read already in this pass */
	same = pk_scan_payload_stamp(old) &&
	       pk_scan_payload_hash(old) == pk_scan_key(hash);
	read_last_pass = pk_scan_payload_stamp(old) ==
			 pk_scan_stamp(vm->scan_pass + 254);
	if (same && read_last_pass) {
		stable = pk_scan_payload_stable(old) + 1;
		if (stable > PK_SCAN_STABLE_MAX)
			stable = PK_SCAN_STABLE_MAX;
	}
	/* A candidate stays one while its hash does (share.c). */
	now = pk_scan_payload(hash, stable, cur) |
	      (same ? old & PK_SCAN_CANDIDATE : 0);
	pk_page_set_payload(pt, idx, now); /* write tracking's marks stay */
	/* New to the scanner: read for the first time since it became
	 * resident, or stable for the first time.  What sets the rate. */
	if (!pk_scan_payload_stamp(old) ||
	    (stable && stable == vm->engine->cfg.share_stable_scans))
		vm->engine->scan_found++;
	if (stable < vm->engine->cfg.share_stable_scans)
		return 0;
	if (is_zero) {
		pk_share_queue_zero(vm, idx);
	} else {
		pk_share_consider(vm, idx, page, hash, read_last_pass);
	}
	return 0;
}

/*
 * The scan tick's limits: its CPU share, one period of wall time, and
 * the loop's other work.  After the tick's first PK_SCAN_YIELD_NS the
 * scanner gives way as soon as any other event is ready (a guest's
 * fault, a swap-in completion, a client), checked once per
 * PK_SCAN_YIELD_NS: guests must not wait for a scan step, and a fault
 * storm still leaves the scanner that first slice of every period.
 */
#define PK_SCAN_YIELD_NS (1000 * 1000)

struct scan_deadline {
	uint64_t cpu_ns, wall_ns;
	uint64_t check_ns; /* when to look at the loop next */
	struct pk_event_loop *loop;
};

static int past_deadline(struct scan_deadline *dl)
{
	uint64_t now = clock_ns(CLOCK_MONOTONIC);

	if (clock_ns(CLOCK_THREAD_CPUTIME_ID) >= dl->cpu_ns ||
	    now >= dl->wall_ns)
		return 1;
	if (now < dl->check_ns)
		return 0;
	dl->check_ns = now + PK_SCAN_YIELD_NS;
	return pk_event_loop_pending(dl->loop);
}

/* Scan up to max_pages of vm, stopping early at dl; returns pages visited. */
static uint64_t scan_vm(struct pk_vm *vm, uint64_t max_pages,
			struct scan_deadline *dl)
{
	uint64_t done = 0, cpu0;
	int n;

	if (vm->anon || vm->drained ||
	    clock_ns(CLOCK_MONOTONIC) < vm->scan_next_pass_ns)
		return 0;
	cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	if (!vm->scan) {
		if (pk_scan_cursor_create(vm->ram_fd, 0, &vm->scan) < 0)
			return 0;
		pk_scan_cursor_set_extents(vm->scan, resident_extent, vm);
	}
	if (!vm->scan_pass_start_ns) {
		vm->scan_pass_start_ns = clock_ns(CLOCK_MONOTONIC);
		pk_share_pass_start(vm);
	}
	while (done < max_pages && !past_deadline(dl)) {
		uint64_t want = max_pages - done;
		n = pk_scan_step(vm->scan,
				 want > PK_SCAN_STEP ? PK_SCAN_STEP : (unsigned)want,
				 on_page, vm);
		if (n < 0) {
			pk_log_prio(&vm->engine->log, LOG_WARNING, "vm %s: scan: %s", vm->name,
			       strerror(-n));
			break;
		}
		if (n == 0) { /* pass done */
			vm->scan_pass = pk_scan_passes(vm->scan);
			vm->scan_next_pass_ns =
				vm->scan_pass_start_ns + PK_SCAN_MIN_PASS_NS;
			vm->scan_pass_start_ns = 0;
			break;
		}
		done += (uint64_t)n;
	}
	/* An index slot per page read: the index has about 1.2-1.7 slots
	 * per candidate, and candidates are a part of the domain's pages,
	 * so it is swept about once per pass over the domain's RAM. */
	if (vm->domain && done)
		pk_share_sweep(vm->domain, done);
	vm->stats.scan_cpu_ns += clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	return done;
}

static void on_scan_tick(struct pk_event_loop *loop, struct pk_watch *w,
			 uint32_t events, void *data)
{
	struct pk_engine *e = data;
	uint64_t expirations, now = clock_ns(CLOCK_MONOTONIC), budget, pages;
	uint64_t cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID), used;
	int64_t share = PK_SCAN_PERIOD_NS / 100 * e->cfg.scan_cpu_percent;
	struct scan_deadline dl;
	(void)w, (void)events;

	if (read(e->scan_timer_fd, &expirations, sizeof(expirations)) < 0)
		return;
	/* The CPU share, kept on average: the credit grows by the share of
	 * the time passed (at most two periods' worth banked) and pays for
	 * everything a tick does, merges included, so a tick that
	 * overspends makes the next ones wait. */
	e->scan_cpu_credit_ns += (int64_t)((now - e->scan_last_tick_ns) / 100 *
					   e->cfg.scan_cpu_percent);
	if (e->scan_cpu_credit_ns > 2 * share)
		e->scan_cpu_credit_ns = 2 * share;
	e->scan_last_tick_ns = now;
	if (!e->vms || e->scan_cpu_credit_ns <= 0)
		return;
	/* Never more than a period in wall time either, so neither a high
	 * rate nor costly pages (many hash collisions) can hold up the
	 * loop's faults for long. */
	dl.cpu_ns = cpu0 + (uint64_t)e->scan_cpu_credit_ns;
	dl.wall_ns = now + PK_SCAN_PERIOD_NS;
	dl.check_ns = now + PK_SCAN_YIELD_NS;
	dl.loop = loop;
	budget = pk_rate_limit_take(&e->scan_rate, e->scan_rate_now,
				    PK_PAGE_SIZE, now);
	pages = budget / PK_PAGE_SIZE;
	/* Round robin: start after the VM served last.  A VM counts as
	 * served only if the tick had time left for it, so one VM that
	 * uses up every tick's share cannot starve the next. */
	for (unsigned k = 0; k < e->n_vms && pages && !past_deadline(&dl); k++) {
		struct pk_vm *vm = pk_vm_find_by_id(e, e->scan_last_vm_id);
		vm = vm && vm->next ? vm->next : e->vms;
		e->scan_last_vm_id = vm->id;
		uint64_t got = scan_vm(vm, pages, &dl);
		pages -= got;
	}
	/* Duplicates found in other VMs' passes are queued there. */
	pk_share_flush_all(e);
	pk_rate_limit_refund(&e->scan_rate, pages * PK_PAGE_SIZE);
	e->scan_bytes += budget - pages * PK_PAGE_SIZE;
	used = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	e->scan_cpu_credit_ns -= (int64_t)used;
	e->scan_cpu_ns += used;
}

int pk_scan_init(struct pk_engine *e)
{
	struct itimerspec period = {
		.it_interval = { 0, PK_SCAN_PERIOD_NS },
		.it_value = { 0, PK_SCAN_PERIOD_NS },
	};
	uint64_t now = clock_ns(CLOCK_MONOTONIC);

	e->scan_timer_fd = -1;
	if (!e->cfg.scan_bytes_per_s)
		return 0;
	e->scan_scratch = mmap(NULL, PK_SCAN_SCRATCH_PAGES * PK_PAGE_SIZE,
			       PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (e->scan_scratch == MAP_FAILED) {
		e->scan_scratch = NULL;
		return -errno;
	}
	e->share_tmp = (char *)e->scan_scratch + PK_SHARE_QUEUE * PK_PAGE_SIZE;
	e->scan_junk = (char *)e->share_tmp + PK_PAGE_SIZE;
	/* A burst of two periods: a late tick catches up, no more. */
	e->scan_rate_now = e->cfg.scan_bytes_per_s;
	pk_rate_limit_init(&e->scan_rate, e->scan_rate_now,
			   e->scan_rate_now / 50 + PK_PAGE_SIZE, now);
	e->scan_cpu_credit_ns = 0;
	e->scan_last_tick_ns = now;
	e->scan_timer_fd = timerfd_create(CLOCK_MONOTONIC,
					  TFD_CLOEXEC | TFD_NONBLOCK);
	if (e->scan_timer_fd < 0 ||
	    timerfd_settime(e->scan_timer_fd, 0, &period, NULL) < 0 ||
	    !pk_watch_add(e->loop, e->scan_timer_fd, EPOLLIN, on_scan_tick, e))
		return -errno;
	return 0;
}

void pk_scan_fini(struct pk_engine *e)
{
	if (e->scan_timer_fd >= 0)
		close(e->scan_timer_fd);
	e->scan_timer_fd = -1;
	if (e->scan_scratch)
		munmap(e->scan_scratch, PK_SCAN_SCRATCH_PAGES * PK_PAGE_SIZE);
	e->scan_scratch = NULL;
	e->share_tmp = NULL;
	e->scan_junk = NULL;
}

/*
 * The rate for the next second.  ESX scans faster while sharing finds
 * work; so does this: while at least 1 page in PK_SCAN_BOOST_YIELD read
 * in the last second was new to the scanner (faulted in since, or just
 * stable: pages a pass must look at twice before it can reclaim them),
 * the rate doubles, up to --scan-rate-max; otherwise it halves, down to
 * --scan-rate.  Pages rewritten again and again never turn stable, so a
 * guest that churns its memory does not speed the scanner up.  The CPU
 * share bounds the fast phase: on average the scanner never uses more.
 */
#define PK_SCAN_BOOST_YIELD 32

static void scan_rate_adapt(struct pk_engine *e, uint64_t read_pages)
{
	uint64_t found = e->scan_found - e->scan_found_last;
	uint64_t lo = e->cfg.scan_bytes_per_s, hi = e->cfg.scan_bytes_per_s_max;
	uint64_t rate = e->scan_rate_now;

	e->scan_found_last = e->scan_found;
	if (hi <= lo)
		return;
	if (read_pages && found * PK_SCAN_BOOST_YIELD >= read_pages)
		rate = rate > hi / 2 ? hi : rate * 2;
	else
		rate = rate / 2 < lo ? lo : rate / 2;
	if (rate == e->scan_rate_now)
		return;
	e->scan_rate_now = rate;
	pk_rate_limit_set(&e->scan_rate, rate, rate / 50 + PK_PAGE_SIZE,
			  clock_ns(CLOCK_MONOTONIC));
}

/* The 1 s tick: rate and CPU share over the last second. */
void pk_scan_tick(struct pk_engine *e, uint64_t seconds)
{
	if (!seconds)
		return;
	scan_rate_adapt(e, (e->scan_bytes - e->scan_bytes_last) / PK_PAGE_SIZE);
	e->scan_mib_per_s = (double)(e->scan_bytes - e->scan_bytes_last) /
			    (1 << 20) / (double)seconds;
	e->scan_cpu_percent = (double)(e->scan_cpu_ns - e->scan_cpu_ns_last) /
			      1e7 / (double)seconds;
	e->scan_bytes_last = e->scan_bytes;
	e->scan_cpu_ns_last = e->scan_cpu_ns;
	for (struct pk_vm *vm = e->vms; vm; vm = vm->next) {
		struct pk_vm_stats *st = &vm->stats;
		st->scan_mib_per_s = (double)(st->scan_pages -
					      st->scan_pages_last_tick) *
				     PK_PAGE_SIZE / (1 << 20) / (double)seconds;
		st->scan_cpu_percent = (double)(st->scan_cpu_ns -
						st->scan_cpu_ns_last_tick) /
				       1e7 / (double)seconds;
		st->scan_pages_last_tick = st->scan_pages;
		st->scan_cpu_ns_last_tick = st->scan_cpu_ns;
	}
}

void pk_scan_vm_gone(struct pk_vm *vm)
{
	pk_scan_cursor_destroy(vm->scan);
	vm->scan = NULL;
}
