// load_bench.c: the load generator of bench/load.sh. Configures one ASP job
// on the given shards, then runs C clients (one thread and one ps_client
// each, worker ranks 0..C-1) that push a gradient and pull the values
// (fused PushPull) in a loop for the given time; the cluster token comes
// from $CANOPY_TOKEN. After a warm-up it notes
// the resident memory of the shard processes (--pids), and again at the
// end. Prints one line:
//   load_bench: clients=C ops=N seconds=S ops_per_s=R p50_ms=A p99_ms=P
//   errors=E rss_growth_mb=M
//   load_bench --urls U1,U2 --pids P1,P2 [--clients 64] [--seconds 60]
//              [--params 100000] [--warmup 5]
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cn_clock.h"
#include "ps/ps.h"

#define MAX_SHARDS 8
#define MAX_OPS_PER_CLIENT (1 << 20)

typedef struct client {
    const char *const *urls;
    uint32_t shards, rank, workers;
    uint64_t n;
    uint64_t warm_until_ns, until_ns;
    float *lat_ms; // (MAX_OPS_PER_CLIENT) after the warm-up
    size_t nlat;
    uint64_t errors;
    char last_err[256];
} client;

static void *client_main(void *arg)
{
    client *c = arg;
    ps_client_opts o = {.urls = c->urls,
                        .shards = c->shards,
                        .n_params = c->n,
                        .job_id = "load",
                        .token = getenv("CANOPY_TOKEN"),
                        .worker = c->rank,
                        .call_timeout_ms = 10000,
                        .outage_ms = 10000};
    ps_client *pc;
    if (ps_client_open(&pc, &o, c->last_err, sizeof c->last_err) != CN_OK) {
        c->errors++;
        return NULL;
    }
    float *g = malloc(c->n * sizeof *g);
    const float *w;
    for (uint64_t i = 0; i < c->n; i++)
        g[i] = 1e-6f * (float)((i + c->rank) % 7);
    ps_sync sy = {0};
    for (uint64_t clock = 0;; clock++) {
        uint64_t t0 = cn_now_ns();
        if (t0 >= c->until_ns)
            break;
        cn_err e =
            ps_client_push_pull(pc, clock, sy.version, g, &w, &sy, c->last_err, sizeof c->last_err);
        uint64_t t1 = cn_now_ns();
        if (e != CN_OK)
            c->errors++;
        else if (t0 >= c->warm_until_ns && c->nlat < MAX_OPS_PER_CLIENT)
            c->lat_ms[c->nlat++] = (float)((double)(t1 - t0) / 1e6);
    }
    free(g);
    ps_client_close(pc);
    return NULL;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

// rss_kb sums VmRSS of the processes in pids ("1,2").
static long rss_kb(const char *pids)
{
    long total = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", pids);
    for (char *p = strtok(buf, ","); p; p = strtok(NULL, ",")) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%s/status", p);
        FILE *f = fopen(path, "r");
        if (!f)
            return -1;
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "VmRSS:", 6) == 0)
                total += strtol(line + 6, NULL, 10);
        fclose(f);
    }
    return total;
}

int main(int argc, char **argv)
{
    const char *urls_arg = NULL, *pids = "";
    int nclients = 64, secs = 60, warm = 5;
    uint64_t n = 100000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--urls") == 0)
            urls_arg = argv[i + 1];
        else if (strcmp(argv[i], "--pids") == 0)
            pids = argv[i + 1];
        else if (strcmp(argv[i], "--clients") == 0)
            nclients = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            secs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--params") == 0)
            n = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--warmup") == 0)
            warm = atoi(argv[i + 1]);
    }
    if (!urls_arg || nclients < 1 || secs < 1 || warm < 0 || warm >= secs || n < 1) {
        fprintf(stderr, "usage: load_bench --urls U1,U2 --pids P1,P2 [--clients 64] "
                        "[--seconds 60] [--params 100000] [--warmup 5]\n");
        return 2;
    }
    static char ubuf[1024];
    snprintf(ubuf, sizeof ubuf, "%s", urls_arg);
    const char *urls[MAX_SHARDS];
    uint32_t shards = 0;
    for (char *p = strtok(ubuf, ","); p && shards < MAX_SHARDS; p = strtok(NULL, ","))
        urls[shards++] = p;

    char err[512];
    ps_client_opts ao = {.urls = urls,
                         .shards = shards,
                         .n_params = n,
                         .job_id = "load",
                         .token = getenv("CANOPY_TOKEN")};
    ps_client *admin;
    if (ps_client_open(&admin, &ao, err, sizeof err) != CN_OK) {
        fprintf(stderr, "load_bench: %s\n", err);
        return 1;
    }
    ps_shard_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.job_id, sizeof cfg.job_id, "load");
    cfg.shards = shards;
    cfg.n_params = n;
    optim_cfg_default(&cfg.optim, OPTIM_SGD);
    cfg.optim.lr = 0.01f;
    cfg.mode = PS_ASP;
    cfg.workers = (uint32_t)nclients;
    float *init = calloc(n, sizeof *init);
    if (ps_client_configure(admin, &cfg, init, false, NULL, err, sizeof err) != CN_OK) {
        fprintf(stderr, "load_bench: configure: %s\n", err);
        return 1;
    }
    free(init);
    ps_client_close(admin);

    client *cs = calloc((size_t)nclients, sizeof *cs);
    pthread_t *th = calloc((size_t)nclients, sizeof *th);
    uint64_t start = cn_now_ns();
    for (int i = 0; i < nclients; i++) {
        cs[i] = (client){.urls = urls,
                         .shards = shards,
                         .rank = (uint32_t)i,
                         .n = n,
                         .warm_until_ns = start + (uint64_t)warm * 1000000000ull,
                         .until_ns = start + (uint64_t)secs * 1000000000ull,
                         .lat_ms = malloc(MAX_OPS_PER_CLIENT * sizeof(float))};
        pthread_create(&th[i], NULL, client_main, &cs[i]);
    }
    struct timespec ws = {warm, 0};
    nanosleep(&ws, NULL);
    long rss0 = rss_kb(pids);
    size_t total = 0;
    uint64_t errors = 0;
    for (int i = 0; i < nclients; i++) {
        pthread_join(th[i], NULL);
        total += cs[i].nlat;
        errors += cs[i].errors;
    }
    long rss1 = rss_kb(pids);
    float *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < nclients; i++) {
        memcpy(all + k, cs[i].lat_ms, cs[i].nlat * sizeof *all);
        k += cs[i].nlat;
        if (cs[i].errors)
            fprintf(stderr, "load_bench: client %d: %llu errors, last: %s\n", i,
                    (unsigned long long)cs[i].errors, cs[i].last_err);
        free(cs[i].lat_ms);
    }
    qsort(all, total, sizeof *all, cmp_float);
    double measured = (double)(secs - warm);
    float p50 = total ? all[total / 2] : 0, p99 = total ? all[(size_t)((double)total * 0.99)] : 0;
    printf("load_bench: clients=%d ops=%zu seconds=%.0f ops_per_s=%.0f p50_ms=%.2f p99_ms=%.2f "
           "errors=%llu rss_growth_mb=%.1f\n",
           nclients, total, measured, (double)total / measured, p50, p99,
           (unsigned long long)errors,
           rss0 >= 0 && rss1 >= 0 ? (double)(rss1 - rss0) / 1024.0 : -1.0);
    free(all);
    free(cs);
    free(th);
    return errors ? 1 : 0;
}
