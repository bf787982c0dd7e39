// main.c: the canopy executable: dispatches to subcommands (cli.h).
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "ml/blas_info.h"

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"scheduler", cmd_scheduler, "run the scheduler daemon (membership, jobs, results on disk)"},
    {"ps", cmd_ps, "run a parameter-server shard daemon"},
    {"worker", cmd_worker, "run a worker daemon (cross-validation folds, training steps)"},
    {"status", cmd_status, "show the cluster: node, role, address, state, last heartbeat"},
    {"tune", cmd_tune, "submit a hyper-parameter sweep (SWEEP.json) and follow it"},
    {"train", cmd_train_job, "submit a data-parallel training job (JOB.json) and follow it"},
    {"jobs", cmd_jobs, "list the scheduler's jobs: kind, state, progress, results"},
    {"cancel", cmd_cancel, "cancel a job (JOB from `canopy jobs`)"},
    {"local", cmd_local, "run a whole cluster on this machine and a command against it"},
#ifdef CANOPY_HAVE_FOREST
    {"forest", cmd_forest, "random forest: fit, predict, cross-validate on a CSV file"},
#endif
#ifdef CANOPY_HAVE_MLP
    {"mlp", cmd_mlp, "MLP: train on one machine, evaluate a saved model"},
#endif
    {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: canopy <command> [options] [arguments]\n\ncommands:\n");
    for (const command *c = commands; c->name; c++)
        fprintf(out, "  %-10s %s\n", c->name, c->summary);
    fprintf(out, "  %-10s %s\n", "version", "print the version");
    fprintf(out, "  %-10s %s\n", "help", "show this help, or `canopy help <command>`");
    fprintf(out, "\nEvery command takes --help. Exit codes: 0 ok, 1 failure, 2 usage error,\n"
                 "3 bad input data, 4 cluster unreachable, 5 token refused, 130 interrupted\n"
                 "(docs/cli.md).\n");
}

int cli_usage_error(const char *cmd, const char *msg)
{
    fprintf(stderr, "canopy %s: %s\n(see `canopy %s --help`)\n", cmd, msg, cmd);
    return CLI_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    // Before anything else runs (and before any thread starts): if OpenBLAS
    // fell back to a generic core this CPU outgrows, start again with the
    // right one. Returns when there is nothing to do.
    blas_fit_core(argv);
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "version") == 0 || strcmp(name, "--version") == 0) {
        char blas[256];
        blas_describe(blas, sizeof blas);
        printf("canopy %s\nblas: %s\n", CANOPY_VERSION, blas);
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        if (argc >= 3) {
            for (const command *c = commands; c->name; c++)
                if (strcmp(c->name, argv[2]) == 0) {
                    char help[] = "--help";
                    char *hv[] = {help, NULL};
                    return c->fn(1, hv);
                }
        }
        usage(stdout);
        return CLI_EXIT_OK;
    }
    for (const command *c = commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c->fn(argc - 2, argv + 2);
    fprintf(stderr, "canopy: unknown command \"%s\"\n\n", name);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
