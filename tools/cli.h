/*
 * cli.h - pieces shared by the `pagekeeper` subcommands.
 */
#ifndef PK_CLI_H
#define PK_CLI_H

struct json_object;

/* Fetch and parse the daemon's status; NULL (message printed) on error. */
struct json_object *pk_cli_status(const char *socket_path, int quiet);

/* `pagekeeper lab ...`: argv[0] is "lab". */
int pk_cli_lab(int argc, char **argv);

#endif
