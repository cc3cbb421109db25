/*
 * status_req.c - one VM's swap-in counters from pagekeeperd (PK_MSG_STATUS).
 *
 * What/how/why: see status_req.h.  The request itself is status_fetch()
 * (status_json.h).
 */
#include "status_req.h"
#include "status_json.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static uint64_t get_u64(json_object *o, const char *key, bool *ok)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int)) {
		*ok = false;
		return 0;
	}
	return (uint64_t)json_object_get_int64(v);
}

int vm_swap_counters(const char *sock, const char *vm, int timeout_s,
		     struct vm_swap_counters *out, char *err, size_t err_len)
{
	json_object *root = NULL, *o, *sw, *d;
	int r = status_fetch(sock, timeout_s, &root, err, err_len);
	bool ok;

	memset(out, 0, sizeof(*out));
	out->direct_io = -1;
	if (r < 0)
		return r;
	o = status_find_vm(root, vm);
	ok = o != NULL;
	if (o) {
		out->swapins = get_u64(o, "swapins", &ok);
		out->swapins_readahead = get_u64(o, "swapins_readahead", &ok);
	}
	if (json_object_object_get_ex(root, "swap", &sw) &&
	    json_object_object_get_ex(sw, "direct_io", &d))
		out->direct_io = json_object_get_boolean(d);
	json_object_put(root);
	if (!o) {
		snprintf(err, err_len, "STATUS lists no VM named %s", vm);
		return -ENOENT;
	}
	if (!ok) {
		snprintf(err, err_len, "STATUS of VM %s lacks swapins or swapins_readahead "
			 "(a daemon without swap-in counters?)", vm);
		return -EBADMSG;
	}
	return 0;
}
