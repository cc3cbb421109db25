/*
 * fio_run.h - the disk's own sequential write bandwidth, measured by fio.
 *
 * What: one fio job, exactly
 *   fio --name=seqwrite --ioengine=io_uring --rw=write --direct=1
 *       --size=BYTES --filename=FILE --bs=BS --iodepth=QD
 *       --output-format=json --eta=never
 * and its write bandwidth (KiB/s, fio's "bw"), runtime and bytes.
 * How: proc_run.c runs it with stdout to a JSON file, json-c parses
 * jobs[0].write; the data file is removed after each run, so every run
 * writes a fresh file, as the daemon's eviction writes fresh slots.
 * Why: pagekeeperd's eviction bandwidth is judged against what the same
 * file system gives a plain O_DIRECT writer in the same run.
 */
#ifndef PK_BENCH_FIO_RUN_H
#define PK_BENCH_FIO_RUN_H

#include <stddef.h>
#include <stdint.h>

struct fio_result {
	double bw_kib_s;	/* fio's write "bw" */
	double runtime_ms;
	uint64_t io_bytes;
	char version[32];
};

/* Path of fio, or -ENOENT with a message naming the Debian package. */
int fio_find(char *path, size_t len, char *err, size_t err_len);

int fio_seqwrite(const char *fio, const char *data_file, const char *json_file,
		 size_t bytes, const char *bs, unsigned iodepth,
		 struct fio_result *out, char *err, size_t err_len);

#endif
