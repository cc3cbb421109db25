/*
 * status.c - the engine's state as JSON, for `pagekeeper status`.
 *
 * Every figure is derived from the page-state table's counters or the
 * VM's fault statistics at the moment of the request; nothing is cached.
 * Sizes are MiB (as floating point, so small guests are not rounded to
 * zero), rates are per second.  PROTOCOL.md documents the keys.
 */
#include "engine/engine.h"
#include "engine/vm.h"
#include "swapper/swap_store.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

static double pages_mib(uint64_t pages)
{
	return (double)pages * PK_PAGE_SIZE / (1024.0 * 1024.0);
}

static void put_mib(json_object *o, const char *key, uint64_t pages)
{
	json_object_object_add(o, key, json_object_new_double(pages_mib(pages)));
}

static void put_int(json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

static const char *balloon_kind_name(uint32_t k)
{
	switch (k) {
	case PK_BALLOON_LAB: return "lab";
	case PK_BALLOON_QMP: return "qmp";
	case PK_BALLOON_LIBVIRT: return "libvirt";
	default: return "none";
	}
}

static json_object *vm_json(const struct pk_vm *vm)
{
	json_object *o = json_object_new_object();
	const uint64_t *c = vm->pages.count;

	json_object_object_add(o, "name", json_object_new_string(vm->name));
	json_object_object_add(o, "id", json_object_new_int64(vm->id));
	json_object_object_add(o, "pid", json_object_new_int64(vm->pid));
	json_object_object_add(o, "ram", json_object_new_string(
					      vm->anon ? "anonymous" : "shared"));
	json_object_object_add(o, "share_domain",
			       json_object_new_string(vm->share_domain));
	json_object_object_add(o, "balloon",
			       json_object_new_string(
				       balloon_kind_name(vm->balloon_kind)));
	put_mib(o, "configured_mib", vm->pages.n_pages);
	put_mib(o, "resident_mib", c[PK_PAGE_RESIDENT]);
	put_mib(o, "zero_mib", c[PK_PAGE_ZERO]);
	put_mib(o, "shared_mib", c[PK_PAGE_SHARED]);
	put_mib(o, "swapped_mib", c[PK_PAGE_SWAPPED]);
	put_mib(o, "ballooned_mib", c[PK_PAGE_REMOVED]);
	put_mib(o, "untouched_mib", c[PK_PAGE_UNTOUCHED]);
	put_int(o, "faults_total", vm->stats.faults);
	json_object_object_add(o, "faults_per_s",
			       json_object_new_double(vm->stats.faults_per_s));
	put_int(o, "pages_zero_filled", vm->stats.pages_zero_filled);
	put_int(o, "pages_fault_around", vm->stats.pages_around);
	put_int(o, "remove_events", vm->stats.remove_events);
	put_mib(o, "poisoned_mib", c[PK_PAGE_POISONED]);
	put_int(o, "evictions", vm->stats.evictions);
	put_int(o, "zero_reclaimed", vm->stats.zero_reclaimed);
	put_int(o, "scan_pages", vm->stats.scan_pages);
	put_int(o, "scan_passes", vm->scan_pass);
	put_int(o, "scan_zero_reclaimed", vm->stats.scan_zero_reclaimed);
	put_int(o, "evict_aborts", vm->stats.evict_aborts);
	put_int(o, "swapins", vm->stats.swapins);
	put_int(o, "swapins_readahead", vm->stats.swapins_readahead);
	json_object_object_add(o, "swapins_per_s",
			       json_object_new_double(vm->stats.swapins_per_s));
	put_int(o, "pages_poisoned", vm->stats.poisoned);
	put_int(o, "page_table_bytes", (vm->pages.n_pages *
						 PK_PAGE_TABLE_BYTES_PER_PAGE));
	return o;
}

char *pk_engine_status_json(struct pk_engine *e)
{
	json_object *root = json_object_new_object();
	json_object *vms = json_object_new_array();
	char *out;

	for (const struct pk_vm *vm = e->vms; vm; vm = vm->next)
		json_object_array_add(vms, vm_json(vm));
	json_object_object_add(root, "version",
			       json_object_new_int(PK_PROTO_VERSION));
	json_object_object_add(root, "budget_mib",
			       json_object_new_double(
				       (double)e->cfg.budget_bytes / (1024.0 * 1024.0)));
	json_object_object_add(root, "page_table_bytes_per_page",
			       json_object_new_int((int)PK_PAGE_TABLE_BYTES_PER_PAGE));
	if (e->cfg.scan_bytes_per_s) {
		json_object *sc = json_object_new_object();
		put_int(sc, "rate_limit_mib_per_s", e->cfg.scan_bytes_per_s >> 20);
		json_object_object_add(sc, "mib_per_s",
				       json_object_new_double(e->scan_mib_per_s));
		json_object_object_add(sc, "cpu_percent",
				       json_object_new_double(e->scan_cpu_percent));
		json_object_object_add(root, "scan", sc);
	}
	if (e->swap) {
		json_object *sw = json_object_new_object();
		put_int(sw, "slots_total", pk_swap_slots_total(e->swap));
		put_int(sw, "slots_used", pk_swap_slots_used(e->swap));
		json_object_object_add(sw, "direct_io",
				       json_object_new_boolean(
					       pk_swap_store_is_direct(e->swap)));
		json_object_object_add(root, "swap", sw);
	}
	json_object_object_add(root, "vms", vms);
	out = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
	return out;
}
