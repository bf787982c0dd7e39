// wk_fed.c: a federated client's round (see wk_fed.h).
#include "worker/wk_fed.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_clock.h"
#include "common/cn_config.h"
#include "common/cn_log.h"
#include "common/cn_rand.h"
#include "federated/fed.h"

cn_err wk_fed_task_read(const cJSON *doc, wk_fed_task *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    // The parts a federated task shares with a rank's task (job, shards,
    // model, data, partition) are read by that reader; then the rest.
    cJSON *rank = cJSON_CreateObject();
    const char *shared[] = {"job_id", "shard_urls", "n_params", "widths", "train_images",
                            "train_labels", "train_rows", "partition", "alpha", "k_labels", "seed",
                            "report_every_s", "call_timeout_ms", "attempt", NULL};
    for (int i = 0; shared[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, shared[i]);
        if (v)
            cJSON_AddItemToObject(rank, shared[i], cJSON_Duplicate(v, 1));
    }
    char mode[CN_OPT_STRLEN] = "", data[CN_OPT_STRLEN] = "partition", opt[CN_OPT_STRLEN] = "sgd";
    int64_t client = -1, clients = 0, round = -1, epochs = 1, batch = 32;
    double lr = 0.05, mu = 0, slowdown = 1, delay = 0;
    cn_opt opts[40];
    size_t n = 0;
    opts[n++] = (cn_opt){"mode", CN_OPT_CHOICE, mode, "federated", 0, 0, "federated"};
    opts[n++] = (cn_opt){"client", CN_OPT_INT, &client, "client", 0, PS_MAX_WORKERS - 1, NULL};
    opts[n++] = (cn_opt){"clients", CN_OPT_INT, &clients, "clients", 1, PS_MAX_WORKERS, NULL};
    opts[n++] = (cn_opt){"round", CN_OPT_INT, &round, "round", 0, 1e12, NULL};
    opts[n++] = (cn_opt){"client_data", CN_OPT_CHOICE, data, "data", 0, 0, "partition|local"};
    opts[n++] = (cn_opt){"local_epochs", CN_OPT_INT, &epochs, "local epochs", 1, 10000, NULL};
    opts[n++] = (cn_opt){"local_batch", CN_OPT_INT, &batch, "local batch", 1, 65536, NULL};
    opts[n++] =
        (cn_opt){"local_optimizer", CN_OPT_CHOICE, opt, "local optimizer", 0, 0, OPTIM_NAMES};
    opts[n++] = (cn_opt){"local_lr", CN_OPT_DOUBLE, &lr, "local lr", 1e-9, 100, NULL};
    opts[n++] = (cn_opt){"mu", CN_OPT_DOUBLE, &mu, "FedProx mu", 0, 1000, NULL};
    opts[n++] = (cn_opt){"slowdown", CN_OPT_DOUBLE, &slowdown, "slowdown", 1, 1000, NULL};
    opts[n++] = (cn_opt){"delay_s", CN_OPT_DOUBLE, &delay, "added delay", 0, 3600, NULL};
    const char **names = shared; // read by the rank reader: skipped here
    for (int i = 0; names[i]; i++)
        opts[n++] = (cn_opt){names[i], CN_OPT_STRING, NULL, "read with the rank's keys", 0, 0,
                             NULL};
    opts[n] = (cn_opt)CN_OPT_END;
    cn_err e = cn_config_apply_json(opts, doc, "federated task", err, errlen);
    // The rank reader needs these three, which a client's task does not use.
    cJSON_AddNumberToObject(rank, "rank", 0);
    cJSON_AddNumberToObject(rank, "workers", 1);
    cJSON_AddNumberToObject(rank, "batch", (double)batch);
    cJSON_AddNumberToObject(rank, "epochs", 1);
    cJSON_AddNumberToObject(rank, "steps_per_epoch", 1);
    wk_train_task rt;
    if (e == CN_OK)
        e = wk_train_task_read(rank, &rt, err, errlen);
    cJSON_Delete(rank);
    if (e != CN_OK)
        return e;
    if (client < 0 || round < 0 || clients == 0 || client >= clients)
        return cn_errf(err, errlen, CN_EINVAL,
                       "federated task: client (%lld of %lld clients) and round are required",
                       (long long)client, (long long)clients);
    snprintf(t->job_id, sizeof t->job_id, "%s", rt.job_id);
    t->n_shards = rt.n_shards;
    memcpy(t->shard_urls, rt.shard_urls, sizeof t->shard_urls);
    t->n_params = rt.n_params;
    memcpy(t->widths, rt.widths, sizeof t->widths);
    t->n_widths = rt.n_widths;
    memcpy(t->train_images, rt.train_images, sizeof t->train_images);
    memcpy(t->train_labels, rt.train_labels, sizeof t->train_labels);
    t->train_rows = rt.train_rows;
    t->partition = rt.partition;
    t->alpha = rt.alpha;
    t->k_labels = rt.k_labels;
    t->seed = rt.seed;
    t->report_every_s = rt.report_every_s;
    t->call_timeout_ms = rt.call_timeout_ms;
    t->client = (uint32_t)client;
    t->clients = (uint32_t)clients;
    t->round = (uint64_t)round;
    t->local_data = strcmp(data, "local") == 0;
    t->local_epochs = (uint32_t)epochs;
    t->local_batch = (uint32_t)batch;
    optim_cfg_named(&t->local, opt);
    t->local.lr = (float)lr;
    t->mu = (float)mu;
    t->slowdown = slowdown;
    t->delay_s = delay;
    return CN_OK;
}

// ------------------------------------------------------------ the round

typedef struct client_run {
    const wk_fed_task *t;
    const wk_train_env *env;
    mlp_shape sh;
    ps_client *pc;
    part_set *parts;
    size_t *rows, n_rows;
    mlp_trainer *tr;
    optim_state *st;
    float *w, *wg, *grad;
    size_t *order;
    double compute_s, upload_s, download_s, loss_sum;
    uint64_t batches;
} client_run;

// prepare checks the task against d, takes the client's rows and allocates.
static cn_err prepare(client_run *c, const ds_dataset *d, char *err, size_t errlen)
{
    const wk_fed_task *t = c->t;
    int hidden[MLP_MAX_LAYERS];
    for (int l = 1; l + 1 < t->n_widths; l++)
        hidden[l - 1] = t->widths[l];
    cn_err e = mlp_shape_init(&c->sh, t->widths[0], hidden, t->n_widths - 2,
                              t->widths[t->n_widths - 1], err, errlen);
    if (e == CN_OK && c->sh.n_params != t->n_params)
        e = cn_errf(err, errlen, CN_EINVAL, "layout has %zu parameters, the job says %" PRIu64,
                    c->sh.n_params, t->n_params);
    if (e == CN_OK && d->n_features != (size_t)t->widths[0])
        e = cn_errf(err, errlen, CN_EINVAL, "the client's data has %zu features, the model takes %d",
                    d->n_features, t->widths[0]);
    if (e != CN_OK)
        return e;
    if (t->local_data) {
        c->n_rows = d->n_rows;
    } else {
        part_cfg pc;
        part_cfg_default(&pc, t->partition, (int)t->clients);
        pc.seed = t->seed;
        pc.alpha = t->alpha;
        pc.k = (int)t->k_labels;
        e = part_split(&pc, d->y, d->n_rows, d->n_classes, &c->parts, err, errlen);
        if (e != CN_OK)
            return e;
        c->n_rows = c->parts->sizes[t->client];
    }
    if (c->n_rows == 0)
        return cn_errf(err, errlen, CN_EINVAL, "client %u has no rows", t->client);
    size_t n = c->sh.n_params;
    c->tr = mlp_trainer_new(&c->sh, (int)t->local_batch, c->env->threads > 0 ? c->env->threads : 1);
    c->st = optim_state_new(&t->local, n);
    c->w = malloc(n * sizeof *c->w);
    c->wg = malloc(n * sizeof *c->wg);
    c->grad = malloc(n * sizeof *c->grad);
    c->order = malloc(c->n_rows * sizeof *c->order);
    if (!c->tr || !c->st || !c->w || !c->wg || !c->grad || !c->order)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    for (size_t i = 0; i < c->n_rows; i++)
        c->order[i] = t->local_data ? i : c->parts->rows[t->client][i];
    const char *urls[WK_TRAIN_MAX_SHARDS];
    for (uint32_t k = 0; k < t->n_shards; k++)
        urls[k] = t->shard_urls[k];
    ps_client_opts po = {.urls = urls,
                         .shards = t->n_shards,
                         .n_params = n,
                         .job_id = t->job_id,
                         .token = c->env->token,
                         .tls = c->env->tls,
                         .worker = t->client,
                         .call_timeout_ms = t->call_timeout_ms};
    return ps_client_open(&c->pc, &po, err, errlen);
}

static bool progress(client_run *c, uint32_t epoch)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "round", (double)c->t->round);
    cJSON_AddNumberToObject(o, "epoch", epoch);
    cJSON_AddNumberToObject(o, "loss", c->batches ? c->loss_sum / (double)c->batches : 0);
    bool stop = c->env->report(c->env->arg, o);
    cJSON_Delete(o);
    return stop;
}

// train runs the local epochs; false when told to stop.
static bool train(client_run *c, const ds_dataset *d)
{
    const wk_fed_task *t = c->t;
    size_t n = c->sh.n_params;
    uint64_t step = 0, last = cn_now_ms(), t0 = cn_now_ns();
    for (uint32_t ep = 0; ep < t->local_epochs; ep++) {
        cn_rng rng;
        cn_rng_seed(&rng, t->seed ^ ((t->round * 1000003ull + ep) * 0x9e3779b97f4a7c15ull),
                    t->client + 1);
        cn_rng_shuffle(&rng, c->order, c->n_rows, sizeof *c->order);
        for (size_t at = 0; at < c->n_rows; at += t->local_batch) {
            size_t nb = c->n_rows - at < t->local_batch ? c->n_rows - at : t->local_batch;
            mlp_batch b = {.d = d, .idx = c->order + at, .n = (int)nb};
            float loss;
            mlp_trainer_grad(c->tr, c->w, &b, c->grad, &loss);
            if (t->mu > 0)
                fed_prox_grad(c->w, c->wg, t->mu, c->grad, n);
            optim_step(&t->local, c->st, c->w, c->grad, n, step++);
            c->loss_sum += loss;
            c->batches++;
            if (atomic_load(c->env->stopping))
                return false;
            if (cn_now_ms() - last >= (uint64_t)(t->report_every_s * 1000)) {
                if (progress(c, ep))
                    return false;
                last = cn_now_ms();
            }
        }
    }
    c->compute_s = (double)(cn_now_ns() - t0) * 1e-9;
    // A slower machine, for the experiments: as if it computed slowdown
    // times slower, plus a fixed delay.
    double extra = (t->slowdown - 1) * c->compute_s + t->delay_s;
    if (extra > 0) {
        cn_sleep_ms((uint64_t)(extra * 1000));
        c->compute_s += extra;
    }
    return true;
}

static cJSON *result_doc(client_run *c, const ds_dataset *d, bool late)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "client", c->t->client);
    cJSON_AddNumberToObject(o, "round", (double)c->t->round);
    cJSON_AddNumberToObject(o, "samples", (double)c->n_rows);
    cJSON_AddNumberToObject(o, "loss", c->batches ? c->loss_sum / (double)c->batches : 0);
    cJSON_AddNumberToObject(o, "compute_seconds", c->compute_s);
    cJSON_AddNumberToObject(o, "upload_seconds", c->upload_s);
    cJSON_AddNumberToObject(o, "download_seconds", c->download_s);
    uint64_t sent = 0, recv = 0;
    if (c->pc)
        ps_client_bytes(c->pc, &sent, &recv);
    cJSON_AddNumberToObject(o, "bytes_sent", (double)sent);
    cJSON_AddNumberToObject(o, "bytes_received", (double)recv);
    cJSON_AddBoolToObject(o, "late", late);
    if (c->t->local_data) {
        cJSON *h = cJSON_AddArrayToObject(o, "labels");
        for (int k = 0; k < d->n_classes; k++) {
            size_t cnt = 0;
            for (size_t i = 0; i < d->n_rows; i++)
                cnt += d->y[i] == k;
            cJSON_AddItemToArray(h, cJSON_CreateNumber((double)cnt));
        }
    }
    return o;
}

cn_err wk_fed_run(const wk_fed_task *t, const ds_dataset *d, const wk_train_env *env,
                  cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    client_run c = {.t = t, .env = env};
    cn_err e = prepare(&c, d, err, errlen);
    if (e == CN_OK)
        CN_INFO("job %s round %" PRIu64 ": client %u trains on %zu rows%s", t->job_id, t->round,
                t->client, c.n_rows, t->slowdown > 1 || t->delay_s > 0 ? " (a slow client)" : "");
    ps_sync sy = {0};
    bool late = false;
    if (e == CN_OK) {
        uint64_t t0 = cn_now_ns();
        e = ps_client_pull(c.pc, t->round, false, c.wg, &sy, err, errlen);
        c.download_s = (double)(cn_now_ns() - t0) * 1e-9;
        late = e == CN_OK && sy.clock != t->round; // the round closed (or is not open yet)
    }
    bool trained = false;
    if (e == CN_OK && !late) {
        memcpy(c.w, c.wg, c.sh.n_params * sizeof *c.w);
        trained = train(&c, d);
    }
    if (e == CN_OK && trained) {
        for (size_t i = 0; i < c.sh.n_params; i++)
            c.grad[i] = c.w[i] - c.wg[i]; // the update: the local model's delta
        uint64_t t0 = cn_now_ns();
        e = ps_client_push_update(c.pc, t->round, (double)c.n_rows, c.grad, &sy, err, errlen);
        c.upload_s = (double)(cn_now_ns() - t0) * 1e-9;
        if (e == CN_ESTATE) { // a shard had closed the round
            late = true;
            e = CN_OK;
        }
    }
    if (e == CN_OK && (trained || late)) {
        *result = result_doc(&c, d, late);
        if (late)
            snprintf(err, errlen, "round %" PRIu64 " closed before the update arrived",
                     t->round);
    }
    ps_client_close(c.pc);
    part_set_free(c.parts);
    mlp_trainer_free(c.tr);
    optim_state_free(c.st);
    free(c.w);
    free(c.wg);
    free(c.grad);
    free(c.order);
    return e;
}
