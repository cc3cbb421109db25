/*
 * lab.h - `pagekeeper lab`: the scenario runner (run.c) and the quick demo
 * of before (tools/lab.c), which the runner hands the old flags to.
 */
#ifndef PK_LAB_LAB_H
#define PK_LAB_LAB_H

#include <stdio.h>

/* The demo: --guests, --size, --duration, --workload, --anon. */
int pk_lab_demo(int argc, char **argv);

/* Both usages and the exit statuses. */
void pk_lab_usage(FILE *f);

#endif
