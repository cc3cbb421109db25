/*
 * status_json.h - pagekeeperd's STATUS reply as a json-c object.
 *
 * What: fetch the daemon's status (what `pagekeeper status --json`
 * prints) and find one VM's object in it by name.
 * How: a header-only PK_MSG_STATUS on a fresh SOCK_SEQPACKET control
 * connection with a receive timeout; the NUL-terminated JSON after the
 * STATUS_REPLY header is parsed with json-c (engine/PROTOCOL.md,
 * "STATUS_REPLY").  An ERROR_REPLY's reason is passed on.
 * Why: every benchmark reads the daemon's figures the same way:
 * pk-bench-refault polls zero_mib, shared_mib and the sharing object,
 * pk-bench-share its sharing figures (share_status.c), pk-bench-swap
 * its swap-in counters (status_req.c).
 */
#ifndef PK_BENCH_STATUS_JSON_H
#define PK_BENCH_STATUS_JSON_H

#include <json-c/json.h>
#include <stddef.h>

/* *root is the parsed reply (json_object_put it); 0 or -errno + err. */
int status_fetch(const char *sock, int timeout_s, json_object **root, char *err,
		 size_t err_len);

/* The object of root's "vms" array named vm, or NULL (borrowed). */
json_object *status_find_vm(json_object *root, const char *vm);

/* Number at key in o (int or double), or dflt when absent or no number. */
double status_num(json_object *o, const char *key, double dflt);

#endif
