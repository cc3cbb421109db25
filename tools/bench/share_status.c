/*
 * share_status.c - pagekeeperd's sharing figures (PK_MSG_STATUS).
 *
 * What/how/why: see share_status.h.
 */
#include "share_status.h"
#include "status_json.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

/* Number at key (int or double); *has set when present. */
static double num(json_object *o, const char *key, bool *has)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
		return 0;
	if (has)
		*has = true;
	return json_object_get_double(v);
}

static void read_vm(struct share_status *s, json_object *vm)
{
	json_object *name;
	bool has_passes = false;
	unsigned i = s->n_vms;

	s->zero_mib += num(vm, "zero_mib", NULL);
	s->shared_mib += num(vm, "shared_mib", NULL);
	s->vm_saved_mib += num(vm, "saved_mib", &s->has_vm_saved);
	s->share_merged += num(vm, "share_merged", NULL);
	s->scan_pages += (uint64_t)num(vm, "scan_pages", &s->has_scan_pages);
	if (i == SHARE_STATUS_MAX_VMS)
		return;
	s->vm_passes[i] = (uint64_t)num(vm, "scan_passes", &has_passes);
	s->has_passes = i == 0 ? has_passes : s->has_passes && has_passes;
	snprintf(s->vm_name[i], sizeof(s->vm_name[i]), "%s",
		 json_object_object_get_ex(vm, "name", &name) ? json_object_get_string(name)
							      : "?");
	s->n_vms++;
}

int share_status_read(const char *sock, int timeout_s, struct share_status *out,
		      char *err, size_t err_len)
{
	json_object *root = NULL, *vms, *o;
	int e = status_fetch(sock, timeout_s, &root, err, err_len);

	memset(out, 0, sizeof(*out));
	if (e < 0)
		return e;
	if (json_object_object_get_ex(root, "vms", &vms) &&
	    json_object_is_type(vms, json_type_array))
		for (size_t i = 0; i < json_object_array_length(vms); i++)
			read_vm(out, json_object_array_get_idx(vms, i));
	if (json_object_object_get_ex(root, "sharing", &o)) {
		out->has_sharing = true;
		out->saved_mib = num(o, "saved_mib", &out->has_saved);
		out->store_mib = num(o, "store_mib", &out->has_store);
		out->sharing_zero_mib = num(o, "zero_mib", NULL);
		out->sharing_shared_mib = num(o, "shared_mib", NULL);
		out->canonical_frames = num(o, "canonical_frames", NULL);
	}
	if (json_object_object_get_ex(root, "scan", &o)) {
		out->has_scan = true;
		out->scan_mib_per_s = num(o, "mib_per_s", NULL);
		out->scan_cpu_percent = num(o, "cpu_percent", NULL);
	}
	json_object_put(root);
	return 0;
}

double share_status_saved(const struct share_status *s, const char **source)
{
	if (s->has_saved) {
		*source = "sharing.saved_mib";
		return s->saved_mib;
	}
	if (s->has_vm_saved) {
		*source = "sum of vms[].saved_mib";
		return s->vm_saved_mib;
	}
	*source = s->has_store ? "vms[].zero_mib + shared_mib - sharing.store_mib"
			       : "sum of vms[].zero_mib + shared_mib";
	return s->zero_mib + s->shared_mib - s->store_mib;
}

int64_t share_status_passes(const struct share_status *s, const char *name)
{
	for (unsigned i = 0; i < s->n_vms; i++)
		if (!strcmp(s->vm_name[i], name))
			return s->has_passes ? (int64_t)s->vm_passes[i] : -1;
	return -1;
}
