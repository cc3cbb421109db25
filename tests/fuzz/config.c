/*
 * config.c - fuzz target: pagekeeperd's configuration file
 * (tests/fuzz/fuzz.h), read by tools/daemon_config.c as pagekeeperd reads
 * it (pk_dcfg_read_file, then pk_dcfg_finish for what spans keys).
 *
 * The bytes are the file: written to a memfd, read through its
 * /proc/self/fd path, so the real file reading (inih's stream, our line
 * reader) runs.  A good file and a bad one (with its FILE:LINE message)
 * are both fine; a crash, a leak or a sanitizer report is not.
 */
#include "tests/fuzz/fuzz.h"
#include "tools/daemon_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int mfd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pk_daemon_config c;
	char path[64], err[512];

	if (size > 65536)
		return 0;
	if (mfd < 0 && (mfd = memfd_create("pk-fuzz-config", MFD_CLOEXEC)) < 0)
		abort();
	if (ftruncate(mfd, 0) < 0 ||
	    (size && pwrite(mfd, data, size, 0) != (ssize_t)size))
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
	pk_dcfg_init(&c);
	if (pk_dcfg_read_file(&c, path, err, sizeof(err)) == 0)
		pk_dcfg_finish(&c, err, sizeof(err));
	pk_dcfg_fini(&c);
	return 0;
}
