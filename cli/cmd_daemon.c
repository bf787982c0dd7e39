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
#include "proto/http_server.h"
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

// http_addr_ok refuses a dashboard or metrics address off loopback unless
// --insecure: the server has no TLS, so the token would cross the network
// in clear.
static bool http_addr_ok(const cli_net *net, const char *cmd, const char *flag, const char *addr)
{
    if (!addr[0] || http_addr_is_loopback(addr) || net->insecure)
        return true;
    fprintf(stderr,
            "canopy %s: --%s %s is not a loopback address and HTTP here has no TLS, so the "
            "cluster token would cross the network in clear; add --insecure on a private "
            "network, or bind 127.0.0.1 and put a TLS proxy in front\n",
            cmd, flag, addr);
    return false;
}

static void h_metrics(const http_request *req, http_reply *rep, void *arg)
{
    (void)req;
    snprintf(rep->content_type, sizeof rep->content_type, "text/plain; version=0.0.4");
    rpc_server_metrics(arg, &rep->body);
}

// serve_metrics serves /metrics (the RPC server's counters) on addr.
static cn_err serve_metrics(http_server **out, const char *addr, const char *token, rpc_server *srv,
                            char *err, size_t errlen)
{
    http_server_opts ho = {.addr = addr, .token = token};
    cn_err e = http_server_open(out, &ho, err, errlen);
    if (e == CN_OK && (e = http_server_route(*out, "/metrics", false, h_metrics, srv)) != CN_OK)
        cn_errf(err, errlen, e, "cannot route /metrics");
    if (e == CN_OK)
        e = http_server_start(*out, err, errlen);
    return e;
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
    char http[CN_OPT_STRLEN] = "";
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
        {"http", CN_OPT_STRING, http,
         "serve the dashboard, JSON API and /metrics on HOST:PORT (token required off loopback)", 0,
         0, NULL},
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
    if (!cli_net_load(&net, "scheduler") ||
        !cli_net_check_url(&net, "scheduler", "listen", listen) ||
        !http_addr_ok(&net, "scheduler", "http", http))
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
                     .handler_threads = (int)handlers,
                     .http = http};
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
    if (http[0]) {
        char hurl[300];
        sched_http_url_of(s, hurl, sizeof hurl);
        CN_INFO("dashboard on %s (token %s)", hurl,
                http_addr_is_loopback(http) ? "not needed on loopback" : "required");
    }
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

// node_opts holds a ps or worker daemon's options.
typedef struct node_opts {
    const char *cmd;
    cluster_role role;
    cli_net net;
    char listen[CN_OPT_STRLEN], advertise[CN_OPT_STRLEN], name[CN_OPT_STRLEN];
    char cache_dir[CN_OPT_STRLEN], ckpt_dir[CN_OPT_STRLEN], data_dir[CN_OPT_STRLEN];
    char metrics[CN_OPT_STRLEN]; // HOST:PORT of Prometheus /metrics, "" = none
    int64_t threads, register_ms, max_msg_mb, slots;
} node_opts;

// node_table writes the option table of o's role into opts (room for 20):
// each role lists only the options it uses.
static void node_table(node_opts *o, cn_opt *opts)
{
    bool worker = o->role == CLUSTER_ROLE_WORKER;
    const cn_opt net_opts[] = {CLI_NET_OPTS(&o->net)};
    size_t k = 0;
    opts[k++] = (cn_opt){
        "listen", CN_OPT_STRING, o->listen, "RPC URL to listen on (port 0 = any free port)", 0,
        0,        NULL};
    opts[k++] = (cn_opt){"advertise",
                         CN_OPT_STRING,
                         o->advertise,
                         "URL other nodes use to reach this one (default: the bound URL)",
                         0,
                         0,
                         NULL};
    opts[k++] = (cn_opt){
        "name", CN_OPT_STRING, o->name, "human-readable node name (default: host:pid)", 0, 0, NULL};
    opts[k++] = (cn_opt){"threads",
                         CN_OPT_INT,
                         &o->threads,
                         worker ? "compute threads to use (0 = all CPUs)"
                                : "threads reported to the scheduler (0 = all CPUs)",
                         0,
                         1024,
                         NULL};
    opts[k++] = (cn_opt){"register-timeout-ms",
                         CN_OPT_INT,
                         &o->register_ms,
                         "how long to wait for the scheduler at start-up",
                         100,
                         3600000,
                         NULL};
    opts[k++] =
        (cn_opt){"max-msg-mb", CN_OPT_INT, &o->max_msg_mb, "largest RPC message accepted, MiB", 1,
                 2047,         NULL};
    opts[k++] = (cn_opt){"metrics", CN_OPT_STRING, o->metrics,
                         "serve Prometheus /metrics on HOST:PORT (token required off loopback)", 0,
                         0, NULL};
    if (worker) {
        opts[k++] = (cn_opt){"cache-dir",
                             CN_OPT_STRING,
                             o->cache_dir,
                             "where the worker keeps the data sets it fetched",
                             0,
                             0,
                             NULL};
        opts[k++] = (cn_opt){"slots",   CN_OPT_INT,
                             &o->slots, "work items run at once; --threads are shared among them",
                             1,         64,
                             NULL};
        opts[k++] = (cn_opt){"data",
                             CN_OPT_STRING,
                             o->data_dir,
                             "a directory of this worker's own IDX files "
                             "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz])",
                             0,
                             0,
                             NULL};
    } else {
        opts[k++] = (cn_opt){"checkpoint-dir",
                             CN_OPT_STRING,
                             o->ckpt_dir,
                             "root of shard checkpoints; a job's directory is a name under it "
                             "(default: the working directory)",
                             0,
                             0,
                             NULL};
    }
    for (size_t i = 0; i < sizeof net_opts / sizeof net_opts[0]; i++)
        opts[k++] = net_opts[i];
    opts[k] = (cn_opt)CN_OPT_END;
    CN_ASSERT(k < 20);
}

// node_check checks the options before anything starts (directories
// included, not when the first item or checkpoint would trip over them) and
// fills the defaults that depend on the machine. False: printed, exit 2.
static bool node_check(node_opts *o)
{
    const char *cmd = o->cmd;
    bool worker = o->role == CLUSTER_ROLE_WORKER;
    if (!cli_net_load(&o->net, cmd) || !cli_net_check_url(&o->net, cmd, "listen", o->listen) ||
        !cli_net_check_url(&o->net, cmd, "advertise", o->advertise) ||
        !cli_net_check_url(&o->net, cmd, "scheduler", o->net.scheduler) ||
        !http_addr_ok(&o->net, cmd, "metrics", o->metrics))
        return false;
    if (worker && (!dir_ok(cmd, "cache-dir", o->cache_dir, true) ||
                   (o->data_dir[0] && !dir_ok(cmd, "data", o->data_dir, false))))
        return false;
    if (!worker && o->ckpt_dir[0] && !dir_ok(cmd, "checkpoint-dir", o->ckpt_dir, true))
        return false;
    if (o->threads == 0)
        o->threads = sysconf(_SC_NPROCESSORS_ONLN);
    if (!o->name[0]) {
        char host[128] = "host";
        gethostname(host, sizeof host);
        host[sizeof host - 1] = 0;
        snprintf(o->name, sizeof o->name, "%s:%d", host, (int)getpid());
    }
    return true;
}

// start_worker starts the worker's slots.
static cn_err start_worker(node_opts *o, cluster_agent *agent, wk_exec **exec, char *err,
                           size_t errlen)
{
    // Each slot's gradient threads call BLAS single-threaded.
    mlp_set_threads(1);
    wk_exec_opts wo = {.scheduler_url = o->net.scheduler,
                       .token = o->net.token,
                       .tls = cli_net_tls(&o->net),
                       .node_id = cluster_agent_node_id(agent),
                       .name = o->name,
                       .slots = (int)o->slots,
                       .threads = (int)o->threads,
                       .cache_dir = o->cache_dir,
                       .data_dir = o->data_dir[0] ? o->data_dir : NULL,
                       .agent = agent};
    return wk_exec_start(exec, &wo, err, errlen);
}

// node_run serves, registers, starts the role's work and waits for a signal.
static int node_run(node_opts *o)
{
    cn_log_set_node(o->cmd);
    cli_log_blas();
    // Shards and workers move a model-sized message every step.
    if (o->role == CLUSTER_ROLE_PS || o->role == CLUSTER_ROLE_WORKER)
        ps_tune_allocator();
    cli_block_signals();
    char err[CN_ERRBUF_LEN];
    rpc_server *srv = NULL;
    cluster_agent *agent = NULL;
    wk_exec *exec = NULL;
    ps_service *shard = NULL;
    http_server *mserv = NULL;
    rpc_server_opts so = {.url = o->listen,
                          .token = o->net.token,
                          .max_msg_bytes = (size_t)o->max_msg_mb << 20,
                          .tls = cli_net_tls(&o->net),
                          .on_refuse = cn_log_warn_line};
    int exit_code = CLI_EXIT_FAILURE;
    if (rpc_server_open(&srv, &so, err, sizeof err) != CN_OK ||
        cluster_serve_ping(srv, o->role, o->name) != CN_OK ||
        (o->role == CLUSTER_ROLE_PS &&
         ps_service_new(&shard, srv, o->ckpt_dir, err, sizeof err) != CN_OK) ||
        rpc_server_start(srv, err, sizeof err) != CN_OK) {
        CN_ERROR("cannot serve on %s: %s", o->listen, err);
        goto out;
    }
    if (o->metrics[0]) {
        if (serve_metrics(&mserv, o->metrics, o->net.token, srv, err, sizeof err) != CN_OK) {
            CN_ERROR("%s", err);
            goto out;
        }
        char murl[300];
        http_server_url(mserv, murl, sizeof murl);
        CN_INFO("metrics on %s/metrics", murl);
    }
    char url[256];
    rpc_server_url(srv, url, sizeof url);
    cluster_agent_opts ao = {.scheduler_url = o->net.scheduler,
                             .token = o->net.token,
                             .tls = cli_net_tls(&o->net),
                             .role = o->role,
                             .address = o->advertise[0] ? o->advertise : url,
                             .name = o->name,
                             .threads = (uint32_t)o->threads};
    CN_INFO("registering with the scheduler at %s (waiting up to %.0f s for it)",
            o->net.scheduler, (double)o->register_ms / 1000.0);
    cn_err e = cluster_agent_start(&agent, &ao, (int)o->register_ms, err, sizeof err);
    if (e != CN_OK) {
        CN_ERROR("%s", err);
        exit_code = cli_exit_for_err(e);
        goto out;
    }
    char node[64];
    snprintf(node, sizeof node, "%s-%u", o->cmd, cluster_agent_rank(agent));
    cn_log_set_node(node);
    CN_INFO("serving on %s, registered with %s as rank %u", ao.address, o->net.scheduler,
            cluster_agent_rank(agent));
    if (o->role == CLUSTER_ROLE_WORKER && start_worker(o, agent, &exec, err, sizeof err) != CN_OK) {
        CN_ERROR("cannot start the worker's slots: %s", err);
        goto out;
    }
    int sig = cli_wait_signal();
    CN_INFO("signal %d: shutting down", sig);
    start_shutdown_watchdog(15);
    exit_code = CLI_EXIT_OK;
out:
    http_server_close(mserv);
    wk_exec_stop(exec);
    cluster_agent_stop(agent);
    ps_service_stop(shard);
    rpc_server_close(srv, 2000);
    ps_service_free(shard);
    return exit_code;
}

// node_main runs a ps or worker daemon.
static int node_main(const char *cmd, cluster_role role, int argc, char **argv)
{
    node_opts o = {.cmd = cmd,
                   .role = role,
                   .listen = "tcp://127.0.0.1:0",
                   .register_ms = 30000,
                   .max_msg_mb = 256,
                   .slots = 1};
    cli_net_defaults(&o.net);
    const char *tmp = getenv("TMPDIR");
    snprintf(o.cache_dir, sizeof o.cache_dir, "%s/canopy-cache-%d", tmp && *tmp ? tmp : "/tmp",
             (int)getuid());
    cn_opt opts[20];
    node_table(&o, opts);
    cn_args args;
    bool done;
    char usage[64];
    snprintf(usage, sizeof usage, "%s [options]", cmd);
    int rc = cli_parse(cmd, usage, opts, argc, argv, &args, &done);
    if (done)
        return rc;
    if (args.npos > 0)
        return cli_usage_error(cmd, "takes no arguments");
    if (!node_check(&o))
        return CLI_EXIT_USAGE;
    return node_run(&o);
}

int cmd_ps(int argc, char **argv)
{
    return node_main("ps", CLUSTER_ROLE_PS, argc, argv);
}
int cmd_worker(int argc, char **argv)
{
    return node_main("worker", CLUSTER_ROLE_WORKER, argc, argv);
}
