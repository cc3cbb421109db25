/*
 * scan.c - the sharing scanner's engine side: walk guest RAM, reclaim
 * zero pages.
 *
 * Every 10 ms the scan timer takes its share of the configured rate
 * (--scan-rate, bytes per second, a token bucket) and spends it on the
 * VMs in turn, each through its own cursor over the RAM file
 * (hashing/scan_cursor.h: holes are skipped with SEEK_DATA, pages are
 * read with pread, so the scan never faults in or allocates a page).
 *
 * A page is reclaimed only when it is stable: found all zeros in two
 * consecutive passes, which start at least a second apart.  The page table's payload of a RESIDENT page holds
 * the pass stamp at which it was last seen zero (0: not zero), so this
 * costs no memory beyond the 8-byte entry.  Stable zero pages are handed
 * to the eviction protocol in batches (pk_evict_zero_pages): protect,
 * copy out, verify zero again, punch, so a write racing the reclaim is
 * never lost.  The scanner's own reads are only hints.
 *
 * Zero pages are reclaimed in every sharing domain: doing so tells a
 * guest nothing about any other VM.  Duplicates (same-domain merging into
 * canonical copies) come next and plug into the same walk.
 *
 * Private anonymous RAM has no file the daemon can read safely, so it is
 * not scanned yet (the in-guest agent will do it).
 *
 * The scanner's CPU is measured with the thread CPU clock around its work
 * and reported per second, next to its rate.
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
#define PK_SCAN_BATCH 64

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

static void flush_candidates(struct pk_vm *vm)
{
	int r = pk_evict_zero_pages(vm, vm->scan_zero, vm->n_scan_zero,
				    vm->engine->scan_scratch);
	if (r > 0)
		vm->stats.scan_zero_reclaimed += (uint64_t)r;
	vm->n_scan_zero = 0;
}

static int on_page(void *arg, uint64_t off, const void *page, uint64_t hash,
		   bool is_zero)
{
	struct pk_vm *vm = arg;
	struct pk_page_table *pt = &vm->pages;
	uint64_t idx = page_at_offset(vm, off);
	uint64_t stamp = vm->scan_pass + 2; /* never 0 or 1 */

	(void)page, (void)hash;
	vm->stats.scan_pages++;
	if (idx == UINT64_MAX || pk_page_state(pt, idx) != PK_PAGE_RESIDENT ||
	    pk_page_busy(pt, idx))
		return 0;
	if (!is_zero) {
		if (pk_page_payload(pt, idx))
			pk_page_set(pt, idx, PK_PAGE_RESIDENT, 0);
		return 0;
	}
	if (pk_page_payload(pt, idx) == stamp - 1) {
		vm->scan_zero[vm->n_scan_zero++] = idx;
		if (vm->n_scan_zero == PK_SCAN_BATCH)
			flush_candidates(vm);
		return 0;
	}
	pk_page_set(pt, idx, PK_PAGE_RESIDENT, stamp);
	return 0;
}

/* Scan up to max_pages of vm; returns pages visited. */
static uint64_t scan_vm(struct pk_vm *vm, uint64_t max_pages)
{
	uint64_t done = 0;
	int n;

	if (vm->anon || clock_ns(CLOCK_MONOTONIC) < vm->scan_next_pass_ns)
		return 0;
	if (!vm->scan && pk_scan_cursor_create(vm->ram_fd, 0, &vm->scan) < 0)
		return 0;
	if (!vm->scan_pass_start_ns)
		vm->scan_pass_start_ns = clock_ns(CLOCK_MONOTONIC);
	while (done < max_pages) {
		uint64_t want = max_pages - done;
		n = pk_scan_step(vm->scan, want > 4096 ? 4096 : (unsigned)want,
				 on_page, vm);
		if (n < 0) {
			pk_log(vm->engine, "vm %s: scan: %s", vm->name,
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
	flush_candidates(vm);
	return done;
}

static void on_scan_tick(struct pk_event_loop *loop, struct pk_watch *w,
			 uint32_t events, void *data)
{
	struct pk_engine *e = data;
	uint64_t expirations, now = clock_ns(CLOCK_MONOTONIC), budget, pages;
	uint64_t cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	(void)loop, (void)w, (void)events;

	if (read(e->scan_timer_fd, &expirations, sizeof(expirations)) < 0 ||
	    !e->vms)
		return;
	budget = pk_rate_limit_take(&e->scan_rate, e->cfg.scan_bytes_per_s,
				    PK_PAGE_SIZE, now);
	pages = budget / PK_PAGE_SIZE;
	/* Round robin: start after the VM served last. */
	for (unsigned k = 0; k < e->n_vms && pages; k++) {
		struct pk_vm *vm = pk_vm_find_by_id(e, e->scan_last_vm_id);
		vm = vm && vm->next ? vm->next : e->vms;
		e->scan_last_vm_id = vm->id;
		uint64_t got = scan_vm(vm, pages);
		pages -= got;
	}
	pk_rate_limit_refund(&e->scan_rate, pages * PK_PAGE_SIZE);
	e->scan_bytes += budget - pages * PK_PAGE_SIZE;
	e->scan_cpu_ns += clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
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
	e->scan_scratch = mmap(NULL, PK_SCAN_BATCH * PK_PAGE_SIZE,
			       PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (e->scan_scratch == MAP_FAILED) {
		e->scan_scratch = NULL;
		return -errno;
	}
	/* A burst of two periods: a late tick catches up, no more. */
	pk_rate_limit_init(&e->scan_rate, e->cfg.scan_bytes_per_s,
			   e->cfg.scan_bytes_per_s / 50 + PK_PAGE_SIZE, now);
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
		munmap(e->scan_scratch, PK_SCAN_BATCH * PK_PAGE_SIZE);
	e->scan_scratch = NULL;
}

/* The 1 s tick: rate and CPU share over the last second. */
void pk_scan_tick(struct pk_engine *e, uint64_t seconds)
{
	if (!seconds)
		return;
	e->scan_mib_per_s = (double)(e->scan_bytes - e->scan_bytes_last) /
			    (1 << 20) / (double)seconds;
	e->scan_cpu_percent = (double)(e->scan_cpu_ns - e->scan_cpu_ns_last) /
			      1e7 / (double)seconds;
	e->scan_bytes_last = e->scan_bytes;
	e->scan_cpu_ns_last = e->scan_cpu_ns;
}

void pk_scan_vm_gone(struct pk_vm *vm)
{
	pk_scan_cursor_destroy(vm->scan);
	vm->scan = NULL;
}
