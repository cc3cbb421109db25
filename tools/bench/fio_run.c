/*
 * fio_run.c - the disk's own sequential write bandwidth, measured by fio.
 *
 * What/how/why: see fio_run.h.
 */
#include "fio_run.h"
#include "proc_run.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fio_find(char *path, size_t len, char *err, size_t err_len)
{
	if (find_exe("fio", path, len) == 0)
		return 0;
	snprintf(err, err_len, "fio not found in PATH: install the Debian package "
		 "'fio' (apt-get install fio; tools/bootstrap does it), or use "
		 "--only latency");
	return -ENOENT;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			char *n = realloc(buf, cap = cap ? cap * 2 : 65536);
			if (!n) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = n;
		}
		size_t r = fread(buf + len, 1, cap - len - 1, f);
		if (r == 0)
			break;
		len += r;
	}
	fclose(f);
	if (buf)
		buf[len] = '\0';
	return buf;
}

static int parse(const char *json_file, struct fio_result *out, char *err, size_t err_len)
{
	char *text = slurp(json_file);
	const char *start = text ? strchr(text, '{') : NULL; /* skip fio's notes */
	json_object *root = start ? json_tokener_parse(start) : NULL;
	json_object *jobs, *job, *w, *v;
	int r = -EBADMSG;

	if (!root) {
		snprintf(err, err_len, "fio output %s is not JSON", json_file);
		goto out;
	}
	if (json_object_object_get_ex(root, "fio version", &v))
		snprintf(out->version, sizeof(out->version), "%s", json_object_get_string(v));
	if (!json_object_object_get_ex(root, "jobs", &jobs) ||
	    json_object_array_length(jobs) < 1 ||
	    !(job = json_object_array_get_idx(jobs, 0)) ||
	    !json_object_object_get_ex(job, "write", &w)) {
		snprintf(err, err_len, "fio JSON %s: no jobs[0].write", json_file);
		goto out;
	}
	if (json_object_object_get_ex(job, "error", &v) && json_object_get_int(v)) {
		snprintf(err, err_len, "fio job failed: error %d (%s)", json_object_get_int(v),
			 strerror(json_object_get_int(v)));
		r = -EIO;
		goto out;
	}
	if (!json_object_object_get_ex(w, "bw", &v)) {
		snprintf(err, err_len, "fio JSON %s: no write.bw", json_file);
		goto out;
	}
	out->bw_kib_s = json_object_get_double(v);
	if (json_object_object_get_ex(w, "runtime", &v))
		out->runtime_ms = json_object_get_double(v);
	if (json_object_object_get_ex(w, "io_bytes", &v))
		out->io_bytes = (uint64_t)json_object_get_int64(v);
	r = out->bw_kib_s > 0 ? 0 : -EBADMSG;
	if (r)
		snprintf(err, err_len, "fio reported no write bandwidth");
out:
	json_object_put(root);
	free(text);
	return r;
}

int fio_seqwrite(const char *fio, const char *data_file, const char *json_file,
		 size_t bytes, const char *bs, unsigned iodepth,
		 struct fio_result *out, char *err, size_t err_len)
{
	char size_arg[48], file_arg[4200], bs_arg[32], qd_arg[32];

	memset(out, 0, sizeof(*out));
	snprintf(size_arg, sizeof(size_arg), "--size=%zu", bytes);
	snprintf(file_arg, sizeof(file_arg), "--filename=%s", data_file);
	snprintf(bs_arg, sizeof(bs_arg), "--bs=%s", bs);
	snprintf(qd_arg, sizeof(qd_arg), "--iodepth=%u", iodepth);
	char *argv[] = { (char *)fio, "--name=seqwrite", "--ioengine=io_uring",
			 "--rw=write", "--direct=1", size_arg, file_arg, bs_arg, qd_arg,
			 "--output-format=json", "--eta=never", NULL };
	unlink(data_file);
	int r = run_cmd(argv, json_file, err, err_len);
	unlink(data_file);
	if (r != 0)
		return r < 0 ? r : -EIO;
	return parse(json_file, out, err, err_len);
}
