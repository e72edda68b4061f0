/*
 * opts.h — storm-load's command line.
 *
 * Contract: opts_parse fills *o from argv (argv[1] is the scenario) and
 * checks every bound of run.h; on any error it prints a message (and the
 * usage when the command itself is wrong) on stderr and returns 2,
 * otherwise 0. Strings in *o point into argv.
 */
#ifndef STORM_LOAD_OPTS_H
#define STORM_LOAD_OPTS_H

#include "load/run.h"

void opts_usage(void);
int opts_parse(int argc, char **argv, load_opts_t *o);

#endif
