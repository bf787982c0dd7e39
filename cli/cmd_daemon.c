// cmd_daemon.c: `canopy scheduler`, `canopy ps` and `canopy worker`: start a
// daemon, serve until SIGINT/SIGTERM, shut down cleanly.
//
// ps and worker nodes serve RPC on their own address (Cluster/Ping, plus
// their role's services) and register with the scheduler, heartbeating from
// a background thread.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "common/cn_log.h"
#include "proto/cluster_client.h"
#include "ps/ps.h"
#include "scheduler/scheduler.h"
#include "ml/mlp.h"
#include "worker/wk_exec.h"

// shutdown_watchdog bounds how long a daemon may take to stop after a
// signal: shutdown drains in-flight calls, but a stuck peer or library must
// not keep a process alive that its supervisor asked to stop.
static void *watchdog_main(void *arg)
{
    unsigned secs = (unsigned)(uintptr_t)arg;
    sleep(secs);
    CN_ERROR("shutdown did not finish within %u s; exiting now", secs);
    _exit(CLI_EXIT_FAILURE);
    return NULL;
}

static void start_shutdown_watchdog(unsigned secs)
{
    pthread_t t;
    if (pthread_create(&t, NULL, watchdog_main, (void *)(uintptr_t)secs) == 0)
        pthread_detach(t);
}

int cmd_scheduler(int argc, char **argv)
{
    cli_net net;
    cli_net_defaults(&net);
    char listen[CN_OPT_STRLEN] = "tcp://127.0.0.1:7070";
    char state_dir[CN_OPT_STRLEN] = "state";
    int64_t heartbeat_ms = 500, dead_after_ms = 3000, max_msg_mb = 256, handlers = 4;
    cn_opt opts[] = {
        {"listen", CN_OPT_STRING, listen, "RPC URL to listen on (tcp://, ipc://, tls+tcp://)", 0, 0,
         NULL},
        {"state-dir", CN_OPT_STRING, state_dir, "directory for results and job specs", 0, 0, NULL},
        {"heartbeat-ms", CN_OPT_INT, &heartbeat_ms, "heartbeat interval nodes are told to use", 10,
         60000, NULL},
        {"dead-after-ms", CN_OPT_INT, &dead_after_ms, "silence after which a node is declared dead",
         50, 600000, NULL},
        {"max-msg-mb", CN_OPT_INT, &max_msg_mb, "largest RPC message accepted, MiB", 1, 2047, NULL},
        {"handler-threads", CN_OPT_INT, &handlers, "RPC handler threads", 1, 256, NULL},
        CLI_AUTH_OPTS(&net),
        {"scheduler", CN_OPT_STRING, NULL,
         "the address the other roles point at; the scheduler has no --scheduler", 0, 0, NULL},
        CN_OPT_END,
    };
    cn_args args;
    bool done;
    int rc = cli_parse("scheduler", "scheduler [options]", opts, argc, argv, &args, &done);
    if (done)
        return rc;
    if (args.npos > 0)
        return cli_usage_error("scheduler", "takes no arguments");
    if (dead_after_ms <= heartbeat_ms)
        return cli_usage_error("scheduler", "--dead-after-ms must be larger than --heartbeat-ms");
    if (!cli_net_load(&net, "scheduler") || !cli_net_check_url(&net, "scheduler", "listen", listen))
        return CLI_EXIT_USAGE;
    cn_log_set_node("scheduler");
    cli_log_blas();
    cli_block_signals();
    char err[CN_ERRBUF_LEN];
    sched_opts so = {.listen = listen,
                     .token = net.token,
                     .tls = cli_net_tls(&net),
                     .state_dir = state_dir,
                     .heartbeat_ms = (uint32_t)heartbeat_ms,
                     .dead_after_ms = (uint32_t)dead_after_ms,
                     .max_msg_bytes = (size_t)max_msg_mb << 20,
                     .handler_threads = (int)handlers};
    sched *s = NULL;
    if (sched_open(&s, &so, err, sizeof err) != CN_OK || sched_start(s, err, sizeof err) != CN_OK) {
        CN_ERROR("cannot start: %s", err);
        sched_close(s);
        return CLI_EXIT_FAILURE;
    }
    char url[256];
    sched_url(s, url, sizeof url);
    CN_INFO("serving on %s (state in %s, token %s)", url, state_dir,
            net.token[0] ? "required" : "not set");
    int sig = cli_wait_signal();
    CN_INFO("signal %d: shutting down", sig);
    start_shutdown_watchdog(15);
    sched_close(s);
    return CLI_EXIT_OK;
}

// dir_ok reports whether path names a directory, or (when it may be absent)
// nothing yet; on false it prints the usage error for flag.
static bool dir_ok(const char *cmd, const char *flag, const char *path, bool may_be_absent)
{
    struct stat st;
    if (stat(path, &st) == 0 ? S_ISDIR(st.st_mode) : may_be_absent)
        return true;
    char msg[CN_OPT_STRLEN + 128];
    snprintf(msg, sizeof msg, "--%s: \"%s\" %s", flag, path,
             access(path, F_OK) == 0 ? "exists and is not a directory" : "is not a directory");
    cli_usage_error(cmd, msg);
    return false;
}

// node_main runs a ps or worker daemon.
static int node_main(const char *cmd, cluster_role role, int argc, char **argv)
{
    cli_net net;
    cli_net_defaults(&net);
    char listen[CN_OPT_STRLEN] = "tcp://127.0.0.1:0";
    char advertise[CN_OPT_STRLEN] = "";
    char name[CN_OPT_STRLEN] = "";
    char cache_dir[CN_OPT_STRLEN];
    const char *tmp = getenv("TMPDIR");
    snprintf(cache_dir, sizeof cache_dir, "%s/canopy-cache-%d", tmp && *tmp ? tmp : "/tmp",
             (int)getuid());
    char ckpt_dir[CN_OPT_STRLEN] = "";
    char data_dir[CN_OPT_STRLEN] = "";
    int64_t threads = 0, register_ms = 30000, max_msg_mb = 256, slots = 1;
    bool worker = role == CLUSTER_ROLE_WORKER;
    // Each role lists only the options it uses.
    const cn_opt net_opts[] = {CLI_NET_OPTS(&net)};
    cn_opt opts[20];
    size_t k = 0;
    opts[k++] = (cn_opt){
        "listen", CN_OPT_STRING, listen, "RPC URL to listen on (port 0 = any free port)", 0,
        0,        NULL};
    opts[k++] =
        (cn_opt){"advertise", CN_OPT_STRING,
                 advertise,   "URL other nodes use to reach this one (default: the bound URL)",
                 0,           0,
                 NULL};
    opts[k++] = (cn_opt){
        "name", CN_OPT_STRING, name, "human-readable node name (default: host:pid)", 0, 0, NULL};
    opts[k++] = (cn_opt){"threads",
                         CN_OPT_INT,
                         &threads,
                         worker ? "compute threads to use (0 = all CPUs)"
                                : "threads reported to the scheduler (0 = all CPUs)",
                         0,
                         1024,
                         NULL};
    opts[k++] = (cn_opt){"register-timeout-ms",
                         CN_OPT_INT,
                         &register_ms,
                         "how long to wait for the scheduler at start-up",
                         100,
                         3600000,
                         NULL};
    opts[k++] = (cn_opt){
        "max-msg-mb", CN_OPT_INT, &max_msg_mb, "largest RPC message accepted, MiB", 1, 2047, NULL};
    if (worker) {
        opts[k++] = (cn_opt){"cache-dir", CN_OPT_STRING,
                             cache_dir,   "where the worker keeps the data sets it fetched",
                             0,           0,
                             NULL};
        opts[k++] = (cn_opt){"slots", CN_OPT_INT, &slots,
                             "work items run at once; --threads are shared among them", 1, 64,
                             NULL};
        opts[k++] = (cn_opt){"data", CN_OPT_STRING, data_dir,
                             "a directory of this worker's own IDX files "
                             "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz])",
                             0, 0, NULL};
    } else
        opts[k++] = (cn_opt){"checkpoint-dir",
                             CN_OPT_STRING,
                             ckpt_dir,
                             "root of shard checkpoints; a job's directory is a name under it "
                             "(default: the working directory)",
                             0,
                             0,
                             NULL};
    for (size_t i = 0; i < sizeof net_opts / sizeof net_opts[0]; i++)
        opts[k++] = net_opts[i];
    opts[k] = (cn_opt)CN_OPT_END;
    CN_ASSERT(k < sizeof opts / sizeof opts[0]);
    cn_args args;
    bool done;
    char usage[64];
    snprintf(usage, sizeof usage, "%s [options]", cmd);
    int rc = cli_parse(cmd, usage, opts, argc, argv, &args, &done);
    if (done)
        return rc;
    if (args.npos > 0)
        return cli_usage_error(cmd, "takes no arguments");
    if (!cli_net_load(&net, cmd) || !cli_net_check_url(&net, cmd, "listen", listen) ||
        !cli_net_check_url(&net, cmd, "advertise", advertise) ||
        !cli_net_check_url(&net, cmd, "scheduler", net.scheduler))
        return CLI_EXIT_USAGE;
    // Directories are checked before anything starts, not when the first
    // work item or checkpoint would trip over them.
    if (worker && (!dir_ok(cmd, "cache-dir", cache_dir, true) ||
                   (data_dir[0] && !dir_ok(cmd, "data", data_dir, false))))
        return CLI_EXIT_USAGE;
    if (!worker && ckpt_dir[0] && !dir_ok(cmd, "checkpoint-dir", ckpt_dir, true))
        return CLI_EXIT_USAGE;
    if (threads == 0)
        threads = sysconf(_SC_NPROCESSORS_ONLN);
    if (!name[0]) {
        char host[128] = "host";
        gethostname(host, sizeof host);
        host[sizeof host - 1] = 0;
        snprintf(name, sizeof name, "%s:%d", host, (int)getpid());
    }
    cn_log_set_node(cmd);
    cli_log_blas();
    cli_block_signals();
    char err[CN_ERRBUF_LEN];
    rpc_server *srv = NULL;
    cluster_agent *agent = NULL;
    wk_exec *exec = NULL;
    ps_service *shard = NULL;
    rpc_server_opts so = {.url = listen,
                          .token = net.token,
                          .max_msg_bytes = (size_t)max_msg_mb << 20,
                          .tls = cli_net_tls(&net),
                          .on_refuse = cn_log_warn_line};
    int exit_code = CLI_EXIT_FAILURE;
    if (rpc_server_open(&srv, &so, err, sizeof err) != CN_OK ||
        cluster_serve_ping(srv, role, name) != CN_OK ||
        (role == CLUSTER_ROLE_PS &&
         ps_service_new(&shard, srv, ckpt_dir, err, sizeof err) != CN_OK) ||
        rpc_server_start(srv, err, sizeof err) != CN_OK) {
        CN_ERROR("cannot serve on %s: %s", listen, err);
        goto out;
    }
    char url[256];
    rpc_server_url(srv, url, sizeof url);
    cluster_agent_opts ao = {.scheduler_url = net.scheduler,
                             .token = net.token,
                             .tls = cli_net_tls(&net),
                             .role = role,
                             .address = advertise[0] ? advertise : url,
                             .name = name,
                             .threads = (uint32_t)threads};
    cn_err e = cluster_agent_start(&agent, &ao, (int)register_ms, err, sizeof err);
    if (e != CN_OK) {
        CN_ERROR("%s", err);
        exit_code = cli_exit_for_err(e);
        goto out;
    }
    char node[64];
    snprintf(node, sizeof node, "%s-%u", cmd, cluster_agent_rank(agent));
    cn_log_set_node(node);
    CN_INFO("serving on %s, registered with %s as rank %u", ao.address, net.scheduler,
            cluster_agent_rank(agent));
    if (role == CLUSTER_ROLE_WORKER) {
        // Each slot's gradient threads call BLAS single-threaded.
        mlp_set_threads(1);
        wk_exec_opts wo = {.scheduler_url = net.scheduler,
                           .token = net.token,
                           .tls = cli_net_tls(&net),
                           .node_id = cluster_agent_node_id(agent),
                           .name = name,
                           .slots = (int)slots,
                           .threads = (int)threads,
                           .cache_dir = cache_dir,
                           .data_dir = data_dir[0] ? data_dir : NULL,
                           .agent = agent};
        if (wk_exec_start(&exec, &wo, err, sizeof err) != CN_OK) {
            CN_ERROR("cannot start the worker's slots: %s", err);
            goto out;
        }
    }
    int sig = cli_wait_signal();
    CN_INFO("signal %d: shutting down", sig);
    start_shutdown_watchdog(15);
    exit_code = CLI_EXIT_OK;
out:
    wk_exec_stop(exec);
    cluster_agent_stop(agent);
    ps_service_stop(shard);
    rpc_server_close(srv, 2000);
    ps_service_free(shard);
    return exit_code;
}

int cmd_ps(int argc, char **argv)
{
    return node_main("ps", CLUSTER_ROLE_PS, argc, argv);
}
int cmd_worker(int argc, char **argv)
{
    return node_main("worker", CLUSTER_ROLE_WORKER, argc, argv);
}
