/*
 * cmdline.h - what libpagekeeper-preload needs to know from QEMU's argv.
 *
 * The shim reads QEMU's own command line (/proc/self/cmdline) to learn:
 *  - the VM's name (-name guest=NAME,... or -name NAME,...);
 *  - the first QMP monitor's UNIX socket (-qmp unix:PATH,... or
 *    -chardev socket,id=X,path=PATH,... with -mon chardev=X,mode=control),
 *    which becomes the registration's balloon channel;
 *  - whether QEMU waits for an incoming migration (-incoming);
 *  - the memory backends (-object memory-backend-*, key=value or the JSON
 *    form libvirt writes) and which of them are guest RAM: named by
 *    -machine memory-backend=, -numa node,memdev= or a RAM device's
 *    memdev= (pc-dimm, nvdimm, virtio-mem, virtio-pmem).  A backend used
 *    by anything else (ivshmem) is shared with other processes and is
 *    never managed;
 *  - devices that let another process or a device map guest RAM
 *    (vhost-user, VFIO, vDPA): evicted pages would read as zeros there.
 *
 * Everything here is pure string work on an argv vector, so it is unit
 * tested with realistic QEMU and libvirt command lines.  Values are read
 * as QEMU reads them (qopts.h).  A missing or over-long value never fails
 * the parse: the field stays empty and `problem` says what was wrong (the
 * shim then falls back to defaults).
 */
#ifndef PK_PRELOAD_CMDLINE_H
#define PK_PRELOAD_CMDLINE_H

#include <stddef.h>

#include "engine/preload/qopts.h"

#define PK_QC_ID_MAX 64
#define PK_QC_NAME_MAX 128
#define PK_QC_PATH_MAX 256
#define PK_QC_MAX_BACKENDS 32

enum pk_qc_backend_type {
	PK_QC_BE_OTHER = 0, /* memory-backend-ram, -epc, ...: not a file */
	PK_QC_BE_MEMFD,	    /* memory-backend-memfd */
	PK_QC_BE_FILE,	    /* memory-backend-file */
};

struct pk_qc_backend {
	char id[PK_QC_ID_MAX];
	int type;	  /* enum pk_qc_backend_type */
	int share;	  /* share=on (memfd: on unless share=off) */
	int discard_data; /* discard-data=on (file) */
	int prealloc;	  /* prealloc=on, or -mem-prealloc */
	int ram;	  /* used as guest RAM (see the header comment) */
	char mem_path[PK_QC_PATH_MAX]; /* file: mem-path as written */
};

struct pk_qemu_cmdline {
	char name[PK_QC_NAME_MAX];	/* -name guest; "" if none */
	char qmp_path[PK_QC_PATH_MAX];	/* first QMP monitor's socket */
	int qmp_fd_passed;		/* first QMP monitor is fd=N (libvirt) */
	int incoming;			/* -incoming given */
	int no_guest;			/* -machine none, -version, -help... */
	char conflict[PK_QC_ID_MAX];	/* first vhost-user/VFIO/vDPA driver */
	struct pk_qc_backend backends[PK_QC_MAX_BACKENDS];
	unsigned n_backends;
	char problem[160];		/* first malformed option, "" if none */
};

/*
 * Parse argv[0..argc).  Always fills *out (zeroed first); returns 0, or
 * -E2BIG when more than PK_QC_MAX_BACKENDS backends were given (the
 * extra ones are ignored).
 */
int pk_qc_parse(int argc, char *const argv[], struct pk_qemu_cmdline *out);

/* Index of the backend with that id, or -1. */
int pk_qc_find_backend(const struct pk_qemu_cmdline *c, const char *id);

/* Number of backends pagekeeper can manage: guest RAM, memfd or file,
 * shared. */
unsigned pk_qc_managed_count(const struct pk_qemu_cmdline *c);

#endif
