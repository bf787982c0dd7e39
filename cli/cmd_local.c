// cmd_local.c: `canopy local`: the embedded default cluster.
//
// Starts a scheduler, S ps shards and M workers as child processes on
// loopback, waits until every node has registered, runs a canopy subcommand
// against them (default: `status --ping`), and tears everything down when
// that command ends, on Ctrl-C, or when a daemon dies unexpectedly. Children
// get PR_SET_PDEATHSIG so they never outlive this process. The cluster gets
// a fresh random token unless CANOPY_TOKEN is set.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "common/cn_clock.h"
#include "common/cn_file.h"
#include "proto/cluster_client.h"

#define MAX_CHILDREN 64

typedef struct child {
    pid_t pid;
    char name[32];
    char log[1100];
    int is_command;
} child;

static child children[MAX_CHILDREN];
static int nchildren;
static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

// Commands that talk to the cluster (forest and mlp run without one).
static const char *subcommands[] = {"status", "tune", "train", "jobs", "cancel", NULL};

static int is_subcommand(const char *s)
{
    for (int i = 0; subcommands[i]; i++)
        if (strcmp(s, subcommands[i]) == 0)
            return 1;
    return 0;
}

static pid_t spawn(const char *name, char **argv, const char *log_path, int is_command)
{
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        signal(SIGINT, is_command ? SIG_DFL : SIG_IGN); // the parent decides when daemons stop
        if (log_path) {
            int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
        }
        execv("/proc/self/exe", argv);
        fprintf(stderr, "canopy local: cannot start %s: %s\n", name, strerror(errno));
        _exit(127);
    }
    if (nchildren < MAX_CHILDREN) {
        child *c = &children[nchildren++];
        c->pid = pid;
        c->is_command = is_command;
        snprintf(c->name, sizeof c->name, "%s", name);
        snprintf(c->log, sizeof c->log, "%s", log_path ? log_path : "");
    }
    return pid;
}

static char published[CN_OPT_STRLEN]; // where the URL and token were written

static void teardown(void)
{
    if (published[0]) {
        cli_local_unpublish(published);
        published[0] = 0;
    }
    for (int i = 0; i < nchildren; i++)
        if (children[i].pid > 0)
            kill(children[i].pid, SIGTERM);
    uint64_t start = cn_now_ms();
    for (;;) {
        int left = 0;
        for (int i = 0; i < nchildren; i++) {
            if (children[i].pid <= 0)
                continue;
            if (waitpid(children[i].pid, NULL, WNOHANG) == children[i].pid)
                children[i].pid = 0;
            else
                left++;
        }
        if (left == 0)
            return;
        if (cn_now_ms() - start > 5000) {
            for (int i = 0; i < nchildren; i++)
                if (children[i].pid > 0) {
                    kill(children[i].pid, SIGKILL);
                    waitpid(children[i].pid, NULL, 0);
                    children[i].pid = 0;
                }
            return;
        }
        cn_sleep_ms(20);
    }
}

// reap_one checks for exited children; returns the index of one that exited
// (its status in *status) or -1.
static int reap_one(int *status)
{
    for (int i = 0; i < nchildren; i++) {
        if (children[i].pid <= 0)
            continue;
        if (waitpid(children[i].pid, status, WNOHANG) == children[i].pid) {
            children[i].pid = 0;
            return i;
        }
    }
    return -1;
}

static void describe_exit(const child *c, int status)
{
    if (WIFSIGNALED(status))
        fprintf(stderr, "canopy local: %s was killed by signal %d (log: %s)\n", c->name,
                WTERMSIG(status), c->log);
    else
        fprintf(stderr, "canopy local: %s exited with status %d (log: %s)\n", c->name,
                WEXITSTATUS(status), c->log);
}

typedef struct local_opts {
    int64_t nps, nworkers, port, threads, ready_ms;
    char state_dir[CN_OPT_STRLEN];
    char log_level[CN_OPT_STRLEN];
    char http[CN_OPT_STRLEN];
    char logdir[CN_OPT_STRLEN + 8]; // STATE_DIR/logs
    char url[64];                   // the scheduler's
} local_opts;

// pick_port asks the kernel for a free loopback port when none was given;
// the scheduler binds it right after.
static bool pick_port(local_opts *o)
{
    if (o->port == 0) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t alen = sizeof a;
        bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
                  getsockname(fd, (struct sockaddr *)&a, &alen) == 0;
        if (!ok)
            fprintf(stderr, "canopy local: cannot find a free port: %s\n", strerror(errno));
        if (fd >= 0)
            close(fd);
        if (!ok)
            return false;
        o->port = ntohs(a.sin_port);
    }
    snprintf(o->url, sizeof o->url, "tcp://127.0.0.1:%d", (int)o->port);
    return true;
}

// ensure_token gives the cluster a fresh random token unless CANOPY_TOKEN
// is set; children inherit it and the scheduler's URL through the
// environment.
static void ensure_token(const local_opts *o)
{
    const char *tok = getenv("CANOPY_TOKEN");
    if (tok == NULL || !*tok) {
        uint8_t raw[16];
        char hex[33];
        if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
            for (int i = 0; i < 16; i++)
                raw[i] = (uint8_t)(cn_now_ns() >> (i % 8));
        for (int i = 0; i < 16; i++)
            snprintf(hex + 2 * i, 3, "%02x", raw[i]);
        setenv("CANOPY_TOKEN", hex, 1);
    }
    setenv("CANOPY_SCHEDULER", o->url, 1);
}

// start_daemons spawns the scheduler, the shards and the workers, each
// logging to STATE_DIR/logs/NAME.log. False (with the reason on stderr)
// when one cannot start.
static bool start_daemons(const local_opts *o)
{
    char err[CN_ERRBUF_LEN], logpath[CN_OPT_STRLEN + 64], threads_s[32];
    char ckpt[CN_OPT_STRLEN + 32]; // the shards keep checkpoints in the state directory
    snprintf(threads_s, sizeof threads_s, "%lld", (long long)o->threads);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints", o->state_dir);
    if (cn_file_mkdirs(ckpt, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy local: %s\n", err);
        return false;
    }
    snprintf(logpath, sizeof logpath, "%s/scheduler.log", o->logdir);
    char *sargv[] = {"canopy",
                     "scheduler",
                     "--listen",
                     (char *)o->url,
                     "--state-dir",
                     (char *)o->state_dir,
                     "--log-level",
                     (char *)o->log_level,
                     o->http[0] ? "--http" : NULL,
                     (char *)o->http,
                     NULL};
    bool ok = spawn("scheduler", sargv, logpath, 0) > 0;
    for (int i = 0; ok && i < o->nps + o->nworkers; i++) {
        bool ps = i < o->nps;
        char name[32];
        snprintf(name, sizeof name, ps ? "ps-%d" : "worker-%d", ps ? i : i - (int)o->nps);
        snprintf(logpath, sizeof logpath, "%s/%s.log", o->logdir, name);
        char *pargv[] = {
            "canopy",           "ps", "--name", name, "--log-level", (char *)o->log_level,
            "--checkpoint-dir", ckpt, NULL};
        char *wargv[] = {"canopy",    "worker",  "--name",      name,
                         "--threads", threads_s, "--log-level", (char *)o->log_level,
                         NULL};
        ok = spawn(name, ps ? pargv : wargv, logpath, 0) > 0;
    }
    if (!ok)
        fprintf(stderr, "canopy local: cannot start a child process: %s\n", strerror(errno));
    return ok;
}

// count_alive asks the scheduler how many shards and workers are alive.
static bool count_alive(rpc_client *c, size_t *ps, size_t *workers)
{
    cluster_node *nodes = NULL;
    size_t n = 0;
    if (cluster_status(c, &nodes, &n, NULL, NULL, 0) != RPC_OK)
        return false;
    *ps = *workers = 0;
    for (size_t i = 0; i < n; i++) {
        if (nodes[i].state != CLUSTER_NODE_ALIVE)
            continue;
        *ps += nodes[i].role == CLUSTER_ROLE_PS;
        *workers += nodes[i].role == CLUSTER_ROLE_WORKER;
    }
    free(nodes);
    return true;
}

// wait_ready waits until every node has registered and is alive. Returns
// CLI_EXIT_OK, or the exit code when a daemon died, the wait timed out or
// a signal came.
static int wait_ready(const local_opts *o)
{
    char err[CN_ERRBUF_LEN];
    rpc_client *c = NULL;
    rpc_client_opts co = {.url = o->url, .token = getenv("CANOPY_TOKEN")};
    if (rpc_client_open(&c, &co, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy local: %s\n", err);
        return CLI_EXIT_FAILURE;
    }
    uint64_t start = cn_now_ms();
    int rc = CLI_EXIT_INTERRUPTED, status;
    while (!got_signal) {
        int dead = reap_one(&status);
        if (dead >= 0) {
            describe_exit(&children[dead], status);
            rc = CLI_EXIT_FAILURE;
            break;
        }
        size_t ps, workers;
        if (count_alive(c, &ps, &workers) && ps >= (size_t)o->nps &&
            workers >= (size_t)o->nworkers) {
            fprintf(stderr,
                    "canopy local: cluster ready in %.2f s: scheduler %s, %lld ps, %lld workers "
                    "(logs in %s)\n",
                    (double)(cn_now_ms() - start) / 1000.0, o->url, (long long)o->nps,
                    (long long)o->nworkers, o->logdir);
            rc = CLI_EXIT_OK;
            break;
        }
        if (cn_now_ms() - start > (uint64_t)o->ready_ms) {
            fprintf(stderr,
                    "canopy local: the cluster was not ready within %lld ms; see the logs in %s\n",
                    (long long)o->ready_ms, o->logdir);
            rc = CLI_EXIT_UNAVAILABLE;
            break;
        }
        cn_sleep_ms(20);
    }
    rpc_client_close(c);
    return rc;
}

// run_command runs COMMAND (argv[split..], default `status --ping`) with
// --scheduler set to the local cluster and waits for it, a signal, or a
// daemon's death. Returns the exit code.
static int run_command(int argc, char **argv, int split, const local_opts *o)
{
    char *cargv[CN_ARGS_MAX + 8];
    int k = 0;
    cargv[k++] = "canopy";
    if (split >= argc) {
        cargv[k++] = "status";
        cargv[k++] = "--ping";
    } else {
        for (int i = split; i < argc && k < CN_ARGS_MAX + 4; i++)
            cargv[k++] = argv[i];
    }
    cargv[k++] = "--scheduler";
    cargv[k++] = (char *)o->url;
    cargv[k] = NULL;
    if (spawn(cargv[1], cargv, NULL, 1) < 0) {
        fprintf(stderr, "canopy local: cannot start %s: %s\n", cargv[1], strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    for (;;) {
        if (got_signal) {
            fprintf(stderr, "canopy local: interrupted; stopping the cluster\n");
            return CLI_EXIT_INTERRUPTED;
        }
        int status, i = reap_one(&status);
        if (i >= 0 && children[i].is_command)
            return WIFEXITED(status) ? WEXITSTATUS(status) : CLI_EXIT_FAILURE;
        if (i >= 0) {
            describe_exit(&children[i], status);
            fprintf(stderr, "canopy local: a daemon died; stopping the cluster\n");
            return CLI_EXIT_FAILURE;
        }
        cn_sleep_ms(20);
    }
}

int cmd_local(int argc, char **argv)
{
    int split = argc;
    for (int i = 0; i < argc; i++)
        if (is_subcommand(argv[i])) {
            split = i;
            break;
        }
    local_opts o = {.nps = 1, .nworkers = 2, .ready_ms = 30000};
    snprintf(o.state_dir, sizeof o.state_dir, "state/local");
    snprintf(o.log_level, sizeof o.log_level, "info");
    cn_opt opts[] = {
        {"ps", CN_OPT_INT, &o.nps, "parameter-server shards to start", 0, 32, NULL},
        {"workers", CN_OPT_INT, &o.nworkers, "workers to start", 0, 32, NULL},
        {"port", CN_OPT_INT, &o.port, "scheduler TCP port on 127.0.0.1 (0 = any free port)", 0,
         65535, NULL},
        {"threads", CN_OPT_INT, &o.threads, "compute threads per worker (0 = all CPUs)", 0, 1024,
         NULL},
        {"state-dir", CN_OPT_STRING, o.state_dir,
         "scheduler state directory; logs go to logs/ in it", 0, 0, NULL},
        {"ready-timeout-ms", CN_OPT_INT, &o.ready_ms, "how long to wait for every node to register",
         100, 600000, NULL},
        {"log-level", CN_OPT_CHOICE, o.log_level, "daemon log verbosity", 0, 0,
         "debug|info|warn|error|off"},
        {"http", CN_OPT_STRING, o.http,
         "serve the scheduler's dashboard on HOST:PORT (e.g. 127.0.0.1:8080)", 0, 0, NULL},
        CN_OPT_END,
    };
    cn_args args;
    bool done;
    int rc = cli_parse("local",
                       "local [--ps S] [--workers M] [options] [COMMAND [ARGS...]]\n\n"
                       "COMMAND is one of status, tune, train, jobs, cancel\n"
                       "(default: status --ping); it runs with --scheduler set to the local "
                       "cluster.",
                       opts, split, argv, &args, &done);
    if (done)
        return rc;
    if (args.npos > 0)
        return cli_usage_error("local", "unknown command before the options end; "
                                        "give COMMAND after local's own options");
    char err[CN_ERRBUF_LEN];
    snprintf(o.logdir, sizeof o.logdir, "%s/logs", o.state_dir);
    if (cn_file_mkdirs(o.logdir, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy local: %s\n", err);
        return CLI_EXIT_FAILURE;
    }
    if (!pick_port(&o))
        return CLI_EXIT_FAILURE;
    ensure_token(&o);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = start_daemons(&o) ? wait_ready(&o) : CLI_EXIT_FAILURE;
    if (rc == CLI_EXIT_OK) {
        if (cli_local_publish(o.state_dir, o.url, getenv("CANOPY_TOKEN")) &&
            snprintf(published, sizeof published, "%s", o.state_dir) > 0)
            fprintf(stderr,
                    "canopy local: from another terminal: canopy status --local %s (also jobs, "
                    "tune, train, cancel)\n",
                    o.state_dir);
        if (o.http[0])
            fprintf(stderr, "canopy local: dashboard on http://%s/\n", o.http);
        rc = run_command(argc, argv, split, &o);
    }
    teardown();
    return rc;
}
