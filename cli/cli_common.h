// cli_common.h: options every networked subcommand shares (cluster address,
// token, TLS, logging), and the signal handling of daemons.
#ifndef CANOPY_CLI_COMMON_H
#define CANOPY_CLI_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "common/cn_config.h"
#include "proto/rpc.h"

typedef struct cli_net {
    char scheduler[CN_OPT_STRLEN];  // scheduler RPC URL
    char token_file[CN_OPT_STRLEN]; // file holding the cluster token
    char tls_cert[CN_OPT_STRLEN];
    char tls_key[CN_OPT_STRLEN];
    char tls_ca[CN_OPT_STRLEN];
    char log_level[CN_OPT_STRLEN];
    char token[256]; // loaded by cli_net_load
    bool insecure;   // allow plain tcp:// off loopback
} cli_net;

#define CLI_DEFAULT_SCHEDULER "tcp://127.0.0.1:7070"

// cli_net_defaults fills defaults (scheduler from $CANOPY_SCHEDULER if set).
void cli_net_defaults(cli_net *n);

// CLI_AUTH_OPTS(n) expands to the option-table entries of a cli_net but the
// scheduler's address: the token, TLS and logging options every networked
// command takes, the scheduler included.
#define CLI_AUTH_OPTS(n)                                                                           \
    {"token-file",                                                                                 \
     CN_OPT_STRING,                                                                                \
     (n)->token_file,                                                                              \
     "file holding the cluster token (else $CANOPY_TOKEN)",                                        \
     0,                                                                                            \
     0,                                                                                            \
     NULL},                                                                                        \
        {"tls-cert", CN_OPT_STRING, (n)->tls_cert, "TLS certificate (PEM) for tls+tcp://", 0,      \
         0,          NULL},                                                                        \
        {"tls-key", CN_OPT_STRING, (n)->tls_key, "TLS private key (PEM)", 0, 0, NULL},             \
        {"tls-ca", CN_OPT_STRING, (n)->tls_ca, "TLS CA certificate (PEM) to verify peers", 0,      \
         0,        NULL},                                                                          \
        {"insecure",                                                                               \
         CN_OPT_BOOL,                                                                              \
         &(n)->insecure,                                                                           \
         "allow plain tcp:// on a non-loopback address (token in clear: private networks only)",   \
         0,                                                                                        \
         0,                                                                                        \
         NULL},                                                                                    \
    {                                                                                              \
        "log-level", CN_OPT_CHOICE, (n)->log_level, "log verbosity", 0, 0,                         \
            "debug|info|warn|error|off"                                                            \
    }

// CLI_NET_OPTS(n) expands to the option-table entries for a cli_net: the
// scheduler's address, then CLI_AUTH_OPTS.
#define CLI_NET_OPTS(n)                                                                            \
    {"scheduler", CN_OPT_STRING, (n)->scheduler, "scheduler RPC URL", 0, 0, NULL}, CLI_AUTH_OPTS(n)

// cli_net_load reads the token and applies the log level. Prints the error
// as "canopy <cmd>: ..." and returns false on failure.
bool cli_net_load(cli_net *n, const char *cmd);

// cli_net_check_url refuses (prints why and returns false) a plain tcp://
// url on a non-loopback address unless n->insecure: the token would cross
// the network in clear text. flag names the option it came from.
bool cli_net_check_url(const cli_net *n, const char *cmd, const char *flag, const char *url);

// cli_net_tls returns the rpc_tls view of n's TLS options.
rpc_tls cli_net_tls(const cli_net *n);

// cli_open_scheduler opens a client to n->scheduler (checked with
// cli_net_check_url); prints and returns NULL on failure.
rpc_client *cli_open_scheduler(const cli_net *n, const char *cmd);

// cli_exit_for_err maps a library error to an exit code (cli.h): malformed,
// missing or unreadable input (CN_EFORMAT, CN_ENOTFOUND, CN_EIO, CN_ETOOBIG,
// CN_EVERSION) is CLI_EXIT_DATA; CN_EINVAL and CN_ERANGE (a bad option or
// spec value) CLI_EXIT_USAGE; CN_EAUTH CLI_EXIT_AUTH; CN_EUNAVAIL,
// CN_ETIMEDOUT and CN_ECLOSED CLI_EXIT_UNAVAILABLE; CN_ECANCELED
// CLI_EXIT_INTERRUPTED; anything else CLI_EXIT_FAILURE. A step that reads a
// data file reports CLI_EXIT_DATA for any error but CN_ENOMEM, whatever the
// code, so bad data gives 3 whichever command meets it.
int cli_exit_for_err(cn_err e);

// cli_exit_for_rpc maps a reply's status the same way: UNAUTHENTICATED and
// PERMISSION_DENIED are CLI_EXIT_AUTH, UNAVAILABLE and DEADLINE_EXCEEDED
// CLI_EXIT_UNAVAILABLE, INVALID_ARGUMENT, OUT_OF_RANGE, NOT_FOUND and
// ALREADY_EXISTS CLI_EXIT_USAGE, CANCELLED CLI_EXIT_INTERRUPTED, others
// CLI_EXIT_FAILURE.
int cli_exit_for_rpc(rpc_code code);

// cli_rpc_fail prints why a call to the scheduler failed as "canopy <cmd>:
// ..." (a refused token says so and how to fix it; an unreachable scheduler
// says which URL) and returns cli_exit_for_rpc(code).
int cli_rpc_fail(const cli_net *n, const char *cmd, rpc_code code, const char *detail);

// cli_block_signals blocks SIGINT/SIGTERM/SIGHUP in the calling thread and
// every thread it starts later; cli_wait_signal waits for one of them and
// returns its number. Daemons call the first before starting threads.
void cli_block_signals(void);
int cli_wait_signal(void);

// cli_log_blas logs which BLAS library, version, core (and why) and thread
// count this process uses: every daemon's first log line.
void cli_log_blas(void);

// cli_parse parses flags for cmd; on --help prints usage + options and
// returns 0 with *done set; on error prints it and returns CLI_EXIT_USAGE
// with *done set.
int cli_parse(const char *cmd, const char *usage, const cn_opt *opts, int argc, char **argv,
              cn_args *args, bool *done);

#endif
