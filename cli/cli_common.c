// cli_common.c: shared options and signal handling for subcommands.
#include "cli/cli_common.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/cn_log.h"
#include "ml/blas_info.h"

void cli_net_defaults(cli_net *n)
{
    memset(n, 0, sizeof *n);
    const char *env = getenv("CANOPY_SCHEDULER");
    snprintf(n->scheduler, sizeof n->scheduler, "%s", env && *env ? env : CLI_DEFAULT_SCHEDULER);
    snprintf(n->log_level, sizeof n->log_level, "info");
}

bool cli_net_load(cli_net *n, const char *cmd)
{
    int lvl = cn_log_parse_level(n->log_level);
    cn_log_set_level(lvl < 0 ? CN_LOG_INFO : (cn_log_level)lvl);
    char err[CN_ERRBUF_LEN];
    if (rpc_token_load(n->token_file, n->token, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy %s: %s\n", cmd, err);
        return false;
    }
    return true;
}

rpc_tls cli_net_tls(const cli_net *n)
{
    rpc_tls t = {.cert_file = n->tls_cert[0] ? n->tls_cert : NULL,
                 .key_file = n->tls_key[0] ? n->tls_key : NULL,
                 .ca_file = n->tls_ca[0] ? n->tls_ca : NULL,
                 .server_name = NULL};
    return t;
}

rpc_client *cli_open_scheduler(const cli_net *n, const char *cmd)
{
    rpc_client *c = NULL;
    char err[CN_ERRBUF_LEN];
    rpc_client_opts o = {.url = n->scheduler, .token = n->token, .tls = cli_net_tls(n)};
    if (rpc_client_open(&c, &o, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy %s: %s\n", cmd, err);
        return NULL;
    }
    return c;
}

static sigset_t daemon_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    return set;
}

void cli_log_blas(void)
{
    char line[256];
    blas_describe(line, sizeof line);
    CN_INFO("blas: %s", line);
}

void cli_block_signals(void)
{
    sigset_t set = daemon_signals();
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int cli_wait_signal(void)
{
    sigset_t set = daemon_signals();
    int sig = 0;
    sigwait(&set, &sig);
    return sig;
}

int cli_parse(const char *cmd, const char *usage, const cn_opt *opts, int argc, char **argv,
              cn_args *args, bool *done)
{
    char err[CN_ERRBUF_LEN];
    *done = false;
    if (cn_config_parse(opts, argc, argv, args, err, sizeof err) != CN_OK) {
        *done = true;
        return cli_usage_error(cmd, err);
    }
    if (args->help) {
        printf("usage: canopy %s\n\n", usage);
        cn_config_print_help(opts, stdout);
        *done = true;
        return CLI_EXIT_OK;
    }
    return CLI_EXIT_OK;
}
