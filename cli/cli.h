// cli.h: the subcommands of the canopy executable.
//
// Each subcommand is `int cmd_<name>(int argc, char **argv)`, where argv
// holds the arguments after the subcommand's name (argv[0] is the first of
// them, not the program name), and returns one of the exit codes below.
// Subcommands parse their flags with cn_config_parse, support --help, print
// results on stdout and errors on stderr as "canopy <cmd>: <what>".
#ifndef CANOPY_CLI_H
#define CANOPY_CLI_H

// Exit codes (documented in docs/cli.md). cli_exit_for_err and
// cli_exit_for_rpc (cli_common.h) are the one mapping from errors to them.
enum {
    CLI_EXIT_OK = 0,            // success
    CLI_EXIT_FAILURE = 1,       // the command ran and failed (a job failed, a goal missed)
    CLI_EXIT_USAGE = 2,         // bad flags, config or job file: nothing was run
    CLI_EXIT_DATA = 3,          // an input file is missing or malformed
    CLI_EXIT_UNAVAILABLE = 4,   // the cluster (scheduler, shard) could not be reached
    CLI_EXIT_AUTH = 5,          // the cluster refused our token
    CLI_EXIT_INTERRUPTED = 130, // stopped by SIGINT/SIGTERM
};

int cmd_scheduler(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_local(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_train_job(int argc, char **argv); // `canopy train` (cmd_mlp.c has its own static cmd_train)
int cmd_jobs(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_forest(int argc, char **argv);
int cmd_mlp(int argc, char **argv);

// cli_usage_error prints "canopy <cmd>: <msg>" and a hint to use --help on
// stderr and returns CLI_EXIT_USAGE.
int cli_usage_error(const char *cmd, const char *msg);

#endif
