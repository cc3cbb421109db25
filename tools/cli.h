/*
 * cli.h - pieces shared by the `pagekeeper` subcommands.
 */
#ifndef PK_CLI_H
#define PK_CLI_H

struct json_object;

/* `pagekeeper`'s exit codes (its --help and README "CLI" list them). */
enum {
	PK_EXIT_OK = 0,
	PK_EXIT_FAILED = 1,	 /* the daemon refused or failed the request */
	PK_EXIT_USAGE = 2,
	PK_EXIT_UNREACHABLE = 3, /* no pagekeeperd answers at the socket */
	PK_EXIT_STALLED = 4,	 /* balloon: stopped short of the target */
	PK_EXIT_TIMEOUT = 5,	 /* balloon: target not reached in time */
	PK_EXIT_DENIED = 6,	 /* no permission to use the socket */
};

/* Fetch and parse the daemon's status; NULL (message printed) on error. */
struct json_object *pk_cli_status(const char *socket_path, int quiet);

/* The same, with the exit code (PK_EXIT_*) in *rc when it fails. */
struct json_object *pk_cli_status_rc(const char *socket_path, int quiet,
				     int *rc);

/* `pagekeeper top ...` and `pagekeeper vm VM` (top.c): argv[0] is the
 * command; the exit code. */
int pk_cli_top(const char *socket_path, int argc, char **argv);
int pk_cli_vm(const char *socket_path, int argc, char **argv);

/* `pagekeeper advise ...` (advise.c, issue 16): argv[0] is "advise". */
int pk_cli_advise(const char *socket_path, int argc, char **argv);

/* `pagekeeper lab ...`: argv[0] is "lab". */
int pk_cli_lab(int argc, char **argv);

#endif
