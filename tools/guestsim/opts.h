/*
 * opts.h - pk-guestsim's command line.  See opts.c.
 */
#ifndef GS_OPTS_H
#define GS_OPTS_H

#include <stdbool.h>
#include <stdint.h>

#include "workload.h"

struct gs_opts {
	const char *socket_path;   /* NULL: the client library's default */
	const char *name;
	const char *share_domain;  /* NULL: none */
	uint64_t size;		   /* bytes, multiple of 4096 */
	uint64_t seed;
	double zero_frac, shared_frac;
	enum gs_workload workload;
	unsigned writers, readers;
	double duration_s;
	double idle_before_s;	   /* idle after the fill; SIGUSR1 ends it */
	bool anon, verify, no_daemon, hold, json, quiet;
	bool mergeable;		   /* madvise(MADV_MERGEABLE) the RAM (KSM) */
	bool discard;		   /* --discard given */
	uint64_t discard_first, discard_count; /* pages */
	bool corrupt;		   /* PK_GUESTSIM_CORRUPT_PAGE set */
	uint64_t corrupt_page;
	int balloon_kind;	   /* enum pk_balloon_kind sent at attach, 0 none */
	const char *balloon_channel; /* its channel, NULL with kind 0 */
	/* The guest OS model (--balloon): guestos.c, labballoon.c. */
	bool balloon;
	const char *balloon_socket; /* NULL: a temp path */
	const char *page_file;	   /* NULL: a temp file under $TMPDIR */
	uint64_t working_set;	   /* bytes, multiple of 4096; 0 until parsed */
	double locked;		   /* fraction of the working set, 0..1 */
	double live;		   /* --live: fraction kept live, 0..1 (1) */
	double churn;		   /* --churn: objects allocated per op */
	uint64_t ops;		   /* --ops: accesses to do, 0: by --duration */
	double timeline_s;	   /* --json timeline interval */
	double grow_s;		   /* --grow: heap grows over this, 0: full */
	char default_name[32];	   /* storage for the default name */
};

enum {
	GS_OPTS_RUN = 0,
	GS_OPTS_HELP = 1,  /* --help printed: exit 0 */
	GS_OPTS_BAD = 2,   /* message and usage printed: exit 2 */
};

int gs_opts_parse(struct gs_opts *o, int argc, char **argv);

#endif
