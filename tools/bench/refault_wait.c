/*
 * refault_wait.c - wait until pagekeeperd's scanner has reclaimed a VM's
 * zero pages or merged its duplicate pages.
 *
 * What/how/why: see refault_wait.h.
 */
#include "refault_wait.h"
#include "status_json.h"
#include "timing.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define POLL_US 100000
#define STATUS_TIMEOUT_S 10

int vm_pages_read(const struct pk_daemon *d, const char *vm, struct vm_pages *out,
		  char *err, size_t err_len)
{
	json_object *root, *sharing = NULL;
	int r = status_fetch(d->sock, STATUS_TIMEOUT_S, &root, err, err_len);

	memset(out, 0, sizeof(*out));
	if (r < 0)
		return r;
	json_object *o = status_find_vm(root, vm);
	if (!o) {
		json_object_put(root);
		snprintf(err, err_len, "STATUS lists no VM named %s", vm);
		return -ENOENT;
	}
	out->zero_mib = status_num(o, "zero_mib", -1);
	out->shared_mib = status_num(o, "shared_mib", -1);
	out->resident_mib = status_num(o, "resident_mib", -1);
	out->faults_total = (uint64_t)status_num(o, "faults_total", 0);
	json_object_object_get_ex(root, "sharing", &sharing);
	out->canonical_frames = status_num(sharing, "canonical_frames", 0);
	json_object_put(root);
	if (out->zero_mib < 0 || out->shared_mib < 0 || out->resident_mib < 0) {
		snprintf(err, err_len, "STATUS of VM %s lacks zero_mib, shared_mib or "
			 "resident_mib", vm);
		return -EBADMSG;
	}
	return 0;
}

static double figure(const struct vm_pages *p, enum page_kind k)
{
	return k == KIND_ZERO ? p->zero_mib : p->shared_mib;
}

static void timeout_message(enum page_kind k, const struct vm_pages *p, double expect_mib,
			    double timeout_s, char *err, size_t err_len)
{
	if (k == KIND_ZERO)
		snprintf(err, err_len, "the daemon reclaimed only %.1f of %.1f MiB of zero "
			 "pages within %.1f s (zero_mib %.1f, resident_mib %.1f); is its "
			 "scanner on (--scan-rate)?", p->zero_mib, expect_mib, timeout_s,
			 p->zero_mib, p->resident_mib);
	else
		snprintf(err, err_len, "the daemon merged only %.1f of %.1f MiB within "
			 "%.1f s (shared_mib %.1f, canonical_frames %.0f, zero_mib %.1f, "
			 "resident_mib %.1f); does this pagekeeperd merge duplicate pages "
			 "yet?", p->shared_mib, expect_mib, timeout_s, p->shared_mib,
			 p->canonical_frames, p->zero_mib, p->resident_mib);
}

int wait_reclaimed(const struct pk_daemon *d, const char *vm, enum page_kind k,
		   double expect_mib, double min_pct, double timeout_s,
		   struct vm_pages *last, double *waited_s, char *err, size_t err_len)
{
	uint64_t t0 = now_ns(), next_report = t0 + 1000000000ull;
	double want = expect_mib * min_pct / 100.0;

	for (;;) {
		if (!daemon_alive(d)) {
			snprintf(err, err_len, "pagekeeperd (pid %d) died while its scanner "
				 "worked", (int)d->pid);
			return -ECHILD;
		}
		int r = vm_pages_read(d, vm, last, err, err_len);
		if (r < 0)
			return r;
		uint64_t now = now_ns();
		*waited_s = (double)(now - t0) / 1e9;
		if (figure(last, k) >= want)
			return 0;
		if (*waited_s >= timeout_s) {
			timeout_message(k, last, expect_mib, timeout_s, err, err_len);
			return -ETIMEDOUT;
		}
		if (now >= next_report) {
			fprintf(stderr, "bench:   waiting for the scanner: %s %.1f of %.1f MiB "
				"after %.0f s (timeout %.0f s)\n",
				k == KIND_ZERO ? "zero" : "shared", figure(last, k), expect_mib,
				*waited_s, timeout_s);
			next_report += 1000000000ull;
		}
		usleep(POLL_US);
	}
}

int wait_vm_gone(const struct pk_daemon *d, const char *vm, double timeout_s, char *err,
		 size_t err_len)
{
	uint64_t t0 = now_ns();

	for (;;) {
		json_object *root;
		int r = status_fetch(d->sock, STATUS_TIMEOUT_S, &root, err, err_len);
		if (r < 0)
			return r;
		bool listed = status_find_vm(root, vm) != NULL;
		json_object_put(root);
		if (!listed)
			return 0;
		if ((double)(now_ns() - t0) / 1e9 >= timeout_s) {
			snprintf(err, err_len, "pagekeeperd still lists VM %s %.0f s after its "
				 "detach", vm, timeout_s);
			return -ETIMEDOUT;
		}
		usleep(POLL_US / 10);
	}
}
