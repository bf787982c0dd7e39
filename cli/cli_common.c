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

bool cli_net_check_url(const cli_net *n, const char *cmd, const char *flag, const char *url)
{
    if (n->insecure || !rpc_url_exposed(url))
        return true;
    fprintf(stderr,
            "canopy %s: --%s %s is plain TCP on a non-loopback address: the cluster token would "
            "cross the network in clear text. Use tls+tcp:// (docs/security.md), or pass "
            "--insecure on a private network you trust.\n",
            cmd, flag, url);
    return false;
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
    if (!cli_net_check_url(n, cmd, "scheduler", n->scheduler))
        return NULL;
    rpc_client_opts o = {.url = n->scheduler, .token = n->token, .tls = cli_net_tls(n)};
    if (rpc_client_open(&c, &o, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy %s: %s\n", cmd, err);
        return NULL;
    }
    return c;
}

int cli_exit_for_err(cn_err e)
{
    switch (e) {
    case CN_OK:
        return CLI_EXIT_OK;
    case CN_EFORMAT:
    case CN_ENOTFOUND:
    case CN_EIO:
    case CN_ETOOBIG:
    case CN_EVERSION:
        return CLI_EXIT_DATA;
    case CN_EINVAL:
    case CN_ERANGE:
        return CLI_EXIT_USAGE;
    case CN_EAUTH:
        return CLI_EXIT_AUTH;
    case CN_EUNAVAIL:
    case CN_ETIMEDOUT:
    case CN_ECLOSED:
        return CLI_EXIT_UNAVAILABLE;
    case CN_ECANCELED:
        return CLI_EXIT_INTERRUPTED;
    default:
        return CLI_EXIT_FAILURE;
    }
}

int cli_exit_for_rpc(rpc_code code)
{
    switch (code) {
    case RPC_OK:
        return CLI_EXIT_OK;
    case RPC_UNAUTHENTICATED:
    case RPC_PERMISSION_DENIED:
        return CLI_EXIT_AUTH;
    case RPC_UNAVAILABLE:
    case RPC_DEADLINE_EXCEEDED:
        return CLI_EXIT_UNAVAILABLE;
    case RPC_INVALID_ARGUMENT:
    case RPC_OUT_OF_RANGE:
    case RPC_NOT_FOUND:
    case RPC_ALREADY_EXISTS:
        return CLI_EXIT_USAGE;
    case RPC_CANCELLED:
        return CLI_EXIT_INTERRUPTED;
    default:
        return CLI_EXIT_FAILURE;
    }
}

int cli_rpc_fail(const cli_net *n, const char *cmd, rpc_code code, const char *detail)
{
    int rc = cli_exit_for_rpc(code);
    // "CODE: detail", or the code alone when the detail says nothing more.
    char why[RPC_DETAIL_LEN + 64];
    const char *name = rpc_code_name(code);
    if (detail && detail[0] && strcmp(detail, name) != 0)
        snprintf(why, sizeof why, "%s: %s", name, detail);
    else
        snprintf(why, sizeof why, "%s", name);
    if (rc == CLI_EXIT_AUTH)
        fprintf(stderr,
                "canopy %s: the scheduler at %s refused the cluster token (%s); give the token "
                "the scheduler was started with (--token-file FILE or $CANOPY_TOKEN)\n",
                cmd, n->scheduler, why);
    else if (rc == CLI_EXIT_UNAVAILABLE)
        fprintf(stderr,
                "canopy %s: cannot reach the scheduler at %s (%s); is it running, and is "
                "--scheduler (or $CANOPY_SCHEDULER) its address?\n",
                cmd, n->scheduler, why);
    else
        fprintf(stderr, "canopy %s: the scheduler at %s answered %s\n", cmd, n->scheduler, why);
    return rc;
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
