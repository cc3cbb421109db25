/*
 * qopts.h - QEMU option values (QemuOpts "a=b,c=d" or JSON), and the
 * NUL-separated argv of /proc/PID/cmdline.  Pure string work.
 */
#ifndef PK_PRELOAD_QOPTS_H
#define PK_PRELOAD_QOPTS_H

#include <stddef.h>

/*
 * Split a NUL-separated buffer (the format of /proc/PID/cmdline) into an
 * argv vector of at most max entries, pointing into buf.  Returns argc.
 */
int pk_qc_split(char *buf, size_t len, char *argv[], int max);

/*
 * One QemuOpts value: key in opts ("a=b,c=d"; the first bare token is
 * the implied key, if given; a later bare token "k" means k=on).
 * Returns 1 and copies the value (",," unescaped), 0 when absent,
 * -ENAMETOOLONG when it does not fit in out.
 */
int pk_qc_opt(const char *opts, const char *implied, const char *key,
	      char *out, size_t out_len);

/* The same for either form: JSON when arg starts with '{'. */
int pk_qc_value(const char *arg, const char *implied, const char *key,
		char *out, size_t out_len);

/* 1 if v is a QemuOpts "true" (on, yes, true, y), else 0. */
int pk_qc_bool(const char *v);

#endif
