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
#include <time.h>
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
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
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

int cmd_local(int argc, char **argv)
{
    int split = argc;
    for (int i = 0; i < argc; i++)
        if (is_subcommand(argv[i])) {
            split = i;
            break;
        }
    int64_t nps = 1, nworkers = 2, port = 0, threads = 0, ready_ms = 30000;
    char state_dir[CN_OPT_STRLEN] = "state/local";
    char log_level[CN_OPT_STRLEN] = "info";
    char http[CN_OPT_STRLEN] = "";
    cn_opt opts[] = {
        {"ps", CN_OPT_INT, &nps, "parameter-server shards to start", 0, 32, NULL},
        {"workers", CN_OPT_INT, &nworkers, "workers to start", 0, 32, NULL},
        {"port", CN_OPT_INT, &port, "scheduler TCP port on 127.0.0.1 (0 = any free port)", 0, 65535,
         NULL},
        {"threads", CN_OPT_INT, &threads, "compute threads per worker (0 = all CPUs)", 0, 1024,
         NULL},
        {"state-dir", CN_OPT_STRING, state_dir, "scheduler state directory; logs go to logs/ in it",
         0, 0, NULL},
        {"ready-timeout-ms", CN_OPT_INT, &ready_ms, "how long to wait for every node to register",
         100, 600000, NULL},
        {"log-level", CN_OPT_CHOICE, log_level, "daemon log verbosity", 0, 0,
         "debug|info|warn|error|off"},
        {"http", CN_OPT_STRING, http,
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
    char err[CN_ERRBUF_LEN], logdir[1100];
    snprintf(logdir, sizeof logdir, "%s/logs", state_dir);
    if (cn_file_mkdirs(logdir, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy local: %s\n", err);
        return CLI_EXIT_FAILURE;
    }
    if (port == 0) {
        // Ask the kernel for a free port; the scheduler binds it right after.
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t alen = sizeof a;
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
            getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
            fprintf(stderr, "canopy local: cannot find a free port: %s\n", strerror(errno));
            return CLI_EXIT_FAILURE;
        }
        port = ntohs(a.sin_port);
        close(fd);
    }
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", (int)port);
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
    setenv("CANOPY_SCHEDULER", url, 1);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char logpath[1200], threads_s[32];
    snprintf(threads_s, sizeof threads_s, "%lld", (long long)threads);
    snprintf(logpath, sizeof logpath, "%s/scheduler.log", logdir);
    char *sargv[] = {"canopy",      "scheduler",   "--listen",
                     url,           "--state-dir", state_dir,
                     "--log-level", log_level,     http[0] ? "--http" : NULL,
                     http,          NULL};
    if (spawn("scheduler", sargv, logpath, 0) < 0)
        goto spawn_failed;
    for (int i = 0; i < nps; i++) {
        char name[32];
        snprintf(name, sizeof name, "ps-%d", i);
        snprintf(logpath, sizeof logpath, "%s/%s.log", logdir, name);
        // The shards keep their checkpoints in the cluster's state directory.
        char ckpt[CN_OPT_STRLEN + 32];
        snprintf(ckpt, sizeof ckpt, "%s/checkpoints", state_dir);
        if (cn_file_mkdirs(ckpt, err, sizeof err) != CN_OK) {
            fprintf(stderr, "canopy local: %s\n", err);
            teardown();
            return CLI_EXIT_FAILURE;
        }
        char *pargv[] = {"canopy",           "ps", "--name", name, "--log-level", log_level,
                         "--checkpoint-dir", ckpt, NULL};
        if (spawn(name, pargv, logpath, 0) < 0)
            goto spawn_failed;
    }
    for (int i = 0; i < nworkers; i++) {
        char name[32];
        snprintf(name, sizeof name, "worker-%d", i);
        snprintf(logpath, sizeof logpath, "%s/%s.log", logdir, name);
        char *wargv[] = {"canopy",  "worker",      "--name",  name, "--threads",
                         threads_s, "--log-level", log_level, NULL};
        if (spawn(name, wargv, logpath, 0) < 0)
            goto spawn_failed;
    }

    // Wait until every node is registered and alive.
    rpc_client *c = NULL;
    rpc_client_opts co = {.url = url, .token = getenv("CANOPY_TOKEN")};
    if (rpc_client_open(&c, &co, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy local: %s\n", err);
        teardown();
        return CLI_EXIT_FAILURE;
    }
    uint64_t start = cn_now_ms();
    int ready = 0, status;
    while (!ready && !got_signal) {
        int dead = reap_one(&status);
        if (dead >= 0) {
            describe_exit(&children[dead], status);
            rpc_client_close(c);
            teardown();
            return CLI_EXIT_FAILURE;
        }
        cluster_node *nodes = NULL;
        size_t n = 0;
        if (cluster_status(c, &nodes, &n, NULL, NULL, 0) == RPC_OK) {
            size_t alive_ps = 0, alive_w = 0;
            for (size_t i = 0; i < n; i++) {
                if (nodes[i].state != CLUSTER_NODE_ALIVE)
                    continue;
                alive_ps += nodes[i].role == CLUSTER_ROLE_PS;
                alive_w += nodes[i].role == CLUSTER_ROLE_WORKER;
            }
            ready = alive_ps >= (size_t)nps && alive_w >= (size_t)nworkers;
            free(nodes);
        }
        if (!ready) {
            if (cn_now_ms() - start > (uint64_t)ready_ms) {
                fprintf(stderr,
                        "canopy local: the cluster was not ready within %lld ms; see the logs in "
                        "%s\n",
                        (long long)ready_ms, logdir);
                rpc_client_close(c);
                teardown();
                return CLI_EXIT_UNAVAILABLE;
            }
            struct timespec ts = {0, 20 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    rpc_client_close(c);
    if (got_signal) {
        teardown();
        return CLI_EXIT_INTERRUPTED;
    }
    fprintf(stderr,
            "canopy local: cluster ready in %.2f s: scheduler %s, %lld ps, %lld workers "
            "(logs in %s)\n",
            (double)(cn_now_ms() - start) / 1000.0, url, (long long)nps, (long long)nworkers,
            logdir);
    if (cli_local_publish(state_dir, url, getenv("CANOPY_TOKEN")) &&
        snprintf(published, sizeof published, "%s", state_dir) > 0)
        fprintf(stderr,
                "canopy local: from another terminal: canopy status --local %s (also jobs, "
                "tune, train, cancel)\n",
                state_dir);
    if (http[0])
        fprintf(stderr, "canopy local: dashboard on http://%s/\n", http);

    // Run the command against the cluster.
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
    cargv[k++] = url;
    cargv[k] = NULL;
    pid_t cmd = spawn(cargv[1], cargv, NULL, 1);
    if (cmd < 0)
        goto spawn_failed;
    int exit_code = CLI_EXIT_FAILURE;
    for (;;) {
        if (got_signal) {
            fprintf(stderr, "canopy local: interrupted; stopping the cluster\n");
            exit_code = CLI_EXIT_INTERRUPTED;
            break;
        }
        int i = reap_one(&status);
        if (i >= 0) {
            if (children[i].is_command) {
                exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : CLI_EXIT_FAILURE;
            } else {
                describe_exit(&children[i], status);
                fprintf(stderr, "canopy local: a daemon died; stopping the cluster\n");
            }
            break;
        }
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    teardown();
    return exit_code;
spawn_failed:
    fprintf(stderr, "canopy local: cannot start a child process: %s\n", strerror(errno));
    teardown();
    return CLI_EXIT_FAILURE;
}
