// wk_train.c: the training rank executor (see wk_train.h).
#include "worker/wk_train.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_clock.h"
#include "common/cn_config.h"
#include "common/cn_log.h"
#include "common/cn_rand.h"

// ------------------------------------------------------------ the task

// read_widths copies the widths array.
static cn_err read_widths(const cJSON *a, wk_train_task *t, char *err, size_t errlen)
{
    int n = cJSON_GetArraySize(a);
    if (n < 2 || n > MLP_MAX_LAYERS + 1)
        return cn_errf(err, errlen, CN_EINVAL, "training task: key \"widths\": %d layers (2..%d)",
                       n, MLP_MAX_LAYERS + 1);
    for (int i = 0; i < n; i++) {
        const cJSON *w = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(w) || w->valuedouble < 1 || w->valuedouble > 1e6)
            return cn_errf(err, errlen, CN_EINVAL,
                           "training task: key \"widths\": element %d is not a width", i);
        t->widths[i] = (int)w->valuedouble;
    }
    t->n_widths = n;
    return CN_OK;
}

static cn_err read_urls(const cJSON *a, wk_train_task *t, char *err, size_t errlen)
{
    int n = cJSON_GetArraySize(a);
    for (int i = 0; i < n; i++) {
        const char *u = cJSON_GetStringValue(cJSON_GetArrayItem(a, i));
        if (u == NULL || strlen(u) >= sizeof t->shard_urls[0])
            return cn_errf(err, errlen, CN_EINVAL,
                           "training task: key \"shard_urls\": element %d is not a URL", i);
        snprintf(t->shard_urls[i], sizeof t->shard_urls[i], "%s", u);
    }
    t->n_shards = (uint32_t)n;
    return CN_OK;
}

cn_err wk_train_task_read(const cJSON *doc, wk_train_task *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    char job[CN_OPT_STRLEN] = "", images[CN_OPT_STRLEN] = "", labels[CN_OPT_STRLEN] = "",
         part[CN_OPT_STRLEN] = "iid", cons[CN_OPT_STRLEN] = "bsp";
    int64_t rank = -1, workers = 0, k_labels = 2, seed = 0, batch = 0, epochs = 0, spe = 0,
            threads = 0, timeout = 30000, attempt = 0, n_params = 0, rows = 0;
    double alpha = 0.5, report_every = 0.5;
    const cJSON *urls = NULL, *widths = NULL;
    cn_opt opts[] = {
        {"job_id", CN_OPT_STRING, job, "job", 0, 0, NULL},
        {"rank", CN_OPT_INT, &rank, "rank", 0, PS_MAX_WORKERS - 1, NULL},
        {"workers", CN_OPT_INT, &workers, "ranks", 1, PS_MAX_WORKERS, NULL},
        {"shard_urls", CN_OPT_ARRAY, &urls, "shards", 1, WK_TRAIN_MAX_SHARDS, NULL},
        {"n_params", CN_OPT_INT, &n_params, "parameters", 1, 1e12, NULL},
        {"widths", CN_OPT_ARRAY, &widths, "layer widths", 2, MLP_MAX_LAYERS + 1, NULL},
        {"train_images", CN_OPT_STRING, images, "images by hash", 0, 0, NULL},
        {"train_labels", CN_OPT_STRING, labels, "labels by hash", 0, 0, NULL},
        {"train_rows", CN_OPT_INT, &rows, "rows used (0 = all)", 0, 1e12, NULL},
        {"partition", CN_OPT_CHOICE, part, "partition", 0, 0,
         "iid|dirichlet|klabels|quantity|contiguous"},
        {"alpha", CN_OPT_DOUBLE, &alpha, "Dirichlet alpha", 1e-9, 1e9, NULL},
        {"k_labels", CN_OPT_INT, &k_labels, "labels per part", 1, 100000, NULL},
        {"seed", CN_OPT_INT, &seed, "seed", 0, 9.007199254740992e15, NULL},
        {"batch", CN_OPT_INT, &batch, "batch", 1, 1 << 20, NULL},
        {"epochs", CN_OPT_INT, &epochs, "epochs", 1, 1e9, NULL},
        {"steps_per_epoch", CN_OPT_INT, &spe, "steps per epoch", 1, 1e15, NULL},
        {"consistency", CN_OPT_CHOICE, cons, "consistency", 0, 0, "bsp|asp|ssp"},
        {"threads", CN_OPT_INT, &threads, "threads", 0, 1024, NULL},
        {"report_every_s", CN_OPT_DOUBLE, &report_every, "report interval", 0.01, 3600, NULL},
        {"call_timeout_ms", CN_OPT_INT, &timeout, "shard call timeout", 100, 3600000, NULL},
        {"attempt", CN_OPT_INT, &attempt, "attempt", 0, 1e9, NULL},
        CN_OPT_END,
    };
    cn_err e = cn_config_apply_json(opts, doc, "training task", err, errlen);
    if (e != CN_OK)
        return e;
    if (!job[0] || rank < 0 || !urls || !widths || !images[0] || !labels[0] || !batch || !epochs ||
        !spe)
        return cn_errf(err, errlen, CN_EINVAL,
                       "training task: job_id, rank, shard_urls, widths, train_images, "
                       "train_labels, batch, epochs and steps_per_epoch are required");
    if (rank >= workers)
        return cn_errf(err, errlen, CN_EINVAL, "training task: rank %lld of %lld workers",
                       (long long)rank, (long long)workers);
    if ((e = read_widths(widths, t, err, errlen)) != CN_OK ||
        (e = read_urls(urls, t, err, errlen)) != CN_OK)
        return e;
    part_kind_parse(part, &t->partition); // validated as a choice above
    ps_mode_parse(cons, &t->consistency);
    snprintf(t->job_id, sizeof t->job_id, "%s", job);
    snprintf(t->train_images, sizeof t->train_images, "%s", images);
    snprintf(t->train_labels, sizeof t->train_labels, "%s", labels);
    t->rank = (uint32_t)rank;
    t->workers = (uint32_t)workers;
    t->n_params = (uint64_t)n_params;
    t->train_rows = (uint64_t)rows;
    t->alpha = alpha;
    t->k_labels = (uint32_t)k_labels;
    t->seed = (uint64_t)seed;
    t->batch = (uint32_t)batch;
    t->epochs = (uint32_t)epochs;
    t->steps_per_epoch = (uint64_t)spe;
    t->report_every_s = report_every;
    t->call_timeout_ms = (int)timeout;
    return CN_OK;
}

// ------------------------------------------------------------ the run

typedef struct rank_run {
    const wk_train_task *t;
    const wk_train_env *env;
    uint64_t t0_ns;
    uint64_t samples;
    double compute_s, comm_s;
    double loss_sum;
    uint64_t loss_n;
    ps_client *pc;
    part_set *parts;
    mlp_trainer *tr;
    mlp_shape sh;
    float *params, *grad;
    size_t *order, *idx;
    size_t mine; // rows of this rank
    uint64_t step;
    uint32_t epoch;
} rank_run;

static cJSON *progress_doc(rank_run *r, bool done)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)r->step);
    cJSON_AddNumberToObject(o, "epoch", r->epoch);
    cJSON_AddNumberToObject(o, "loss", r->loss_n ? r->loss_sum / (double)r->loss_n : 0);
    cJSON_AddNumberToObject(o, "samples", (double)r->samples);
    cJSON_AddNumberToObject(o, "seconds", (double)(cn_now_ns() - r->t0_ns) * 1e-9);
    cJSON_AddNumberToObject(o, "compute_seconds", r->compute_s);
    cJSON_AddNumberToObject(o, "comm_seconds", r->comm_s);
    uint64_t sent = 0, recv = 0;
    if (r->pc)
        ps_client_bytes(r->pc, &sent, &recv);
    cJSON_AddNumberToObject(o, "bytes_sent", (double)sent);
    cJSON_AddNumberToObject(o, "bytes_received", (double)recv);
    cJSON_AddBoolToObject(o, "done", done);
    r->loss_sum = 0;
    r->loss_n = 0;
    return o;
}

static bool report(rank_run *r)
{
    cJSON *o = progress_doc(r, false);
    bool stop = r->env->report(r->env->arg, o);
    cJSON_Delete(o);
    return stop;
}

// prepare checks the task against the data, takes the rank's rows and
// allocates the trainer.
static cn_err prepare(rank_run *r, const ds_dataset *d, char *err, size_t errlen)
{
    const wk_train_task *t = r->t;
    int hidden[MLP_MAX_LAYERS];
    for (int l = 1; l + 1 < t->n_widths; l++)
        hidden[l - 1] = t->widths[l];
    cn_err e = mlp_shape_init(&r->sh, t->widths[0], hidden, t->n_widths - 2,
                              t->widths[t->n_widths - 1], err, errlen);
    if (e == CN_OK && r->sh.n_params != t->n_params)
        e = cn_errf(err, errlen, CN_EINVAL, "layout has %zu parameters, the job says %" PRIu64,
                    r->sh.n_params, t->n_params);
    if (e == CN_OK && d->n_features != (size_t)t->widths[0])
        e = cn_errf(err, errlen, CN_EINVAL, "the training set has %zu features, the model takes %d",
                    d->n_features, t->widths[0]);
    if (e != CN_OK)
        return e;
    part_cfg pc;
    part_cfg_default(&pc, t->partition, (int)t->workers);
    pc.seed = t->seed;
    pc.alpha = t->alpha;
    pc.k = (int)t->k_labels;
    e = part_split(&pc, d->y, d->n_rows, d->n_classes, &r->parts, err, errlen);
    if (e != CN_OK)
        return e;
    r->mine = r->parts->sizes[t->rank];
    if (r->mine == 0)
        return cn_errf(err, errlen, CN_EINVAL, "rank %u got no training rows", t->rank);
    r->tr = mlp_trainer_new(&r->sh, (int)t->batch, r->env->threads > 0 ? r->env->threads : 1);
    r->params = malloc(r->sh.n_params * sizeof *r->params);
    r->grad = malloc(r->sh.n_params * sizeof *r->grad);
    r->order = malloc(r->mine * sizeof *r->order);
    r->idx = malloc(t->batch * sizeof *r->idx);
    if (!r->tr || !r->params || !r->grad || !r->order || !r->idx)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    const char *urls[WK_TRAIN_MAX_SHARDS];
    for (uint32_t k = 0; k < t->n_shards; k++)
        urls[k] = t->shard_urls[k];
    ps_client_opts po = {.urls = urls,
                         .shards = t->n_shards,
                         .n_params = r->sh.n_params,
                         .job_id = t->job_id,
                         .token = r->env->token,
                         .tls = r->env->tls,
                         .worker = t->rank,
                         .call_timeout_ms = t->call_timeout_ms};
    return ps_client_open(&r->pc, &po, err, errlen);
}

// fill_batch gathers the row indices of the batch at r->step.
static void fill_batch(rank_run *r, uint64_t *cur_epoch)
{
    const wk_train_task *t = r->t;
    uint64_t ep = r->step / t->steps_per_epoch;
    if (ep != *cur_epoch) {
        memcpy(r->order, r->parts->rows[t->rank], r->mine * sizeof *r->order);
        cn_rng rng;
        cn_rng_seed(&rng, t->seed ^ (ep * 0x9e3779b97f4a7c15ull), t->rank + 1);
        cn_rng_shuffle(&rng, r->order, r->mine, sizeof *r->order);
        *cur_epoch = ep;
    }
    r->epoch = (uint32_t)ep;
    uint64_t pos = (r->step % t->steps_per_epoch) * t->batch;
    for (uint32_t i = 0; i < t->batch; i++)
        r->idx[i] = r->order[(pos + i) % r->mine];
}

// steps runs the training loop; returns with r->step at the end reached.
static cn_err steps(rank_run *r, const ds_dataset *d, bool *stopped, char *err, size_t errlen)
{
    const wk_train_task *t = r->t;
    ps_sync sy;
    bool bsp = t->consistency == PS_BSP;
    uint64_t total = t->steps_per_epoch * t->epochs;
    // Start where the shards expect this rank (0 for a new job).
    cn_err e = ps_client_pull(r->pc, 0, false, r->params, &sy, err, errlen);
    if (e == CN_OK) {
        r->step = sy.worker_clock;
        if (bsp && sy.clock > r->step)
            r->step = sy.clock;
        e = ps_client_pull(r->pc, r->step, true, r->params, &sy, err, errlen);
    }
    // The values a step computes on: r->params at first, then each
    // push-pull's reply, read in place (valid until the next push-pull).
    const float *w = r->params;
    r->t0_ns = cn_now_ns(); // throughput counts training, not data loading
    uint64_t last_report = cn_now_ms(), cur_epoch = UINT64_MAX;
    uint64_t report_ms = (uint64_t)(t->report_every_s * 1000);
    *stopped = false;
    while (e == CN_OK && r->step < total && !atomic_load(r->env->stopping) && !*stopped) {
        fill_batch(r, &cur_epoch);
        uint64_t t0 = cn_now_ns();
        mlp_batch b = {.d = d, .idx = r->idx, .n = (int)t->batch};
        float loss;
        mlp_trainer_grad(r->tr, w, &b, r->grad, &loss);
        uint64_t t1 = cn_now_ns();
        r->compute_s += (double)(t1 - t0) * 1e-9;
        e = ps_client_push_pull(r->pc, r->step, sy.version, r->grad, &w, &sy, err, errlen);
        r->comm_s += (double)(cn_now_ns() - t1) * 1e-9;
        if (e != CN_OK)
            break;
        r->samples += t->batch;
        r->loss_sum += loss;
        r->loss_n++;
        r->step = bsp && sy.clock > r->step + 1 ? sy.clock : r->step + 1;
        // The first step is always reported: it is the loss the run starts from.
        if (r->samples == t->batch || cn_now_ms() - last_report >= report_ms) {
            *stopped = report(r);
            last_report = cn_now_ms();
        }
    }
    return e;
}

cn_err wk_train_run(const wk_train_task *t, const ds_dataset *d, const wk_train_env *env,
                    cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    rank_run r = {.t = t, .env = env, .t0_ns = cn_now_ns()};
    CN_INFO("job %s: rank %u of %u, %u %s", t->job_id, t->rank, t->workers, t->n_shards,
            cn_plural(t->n_shards, "shard", "shards"));
    bool stopped = false;
    cn_err e = prepare(&r, d, err, errlen);
    if (e == CN_OK)
        e = steps(&r, d, &stopped, err, errlen);
    uint64_t total = t->steps_per_epoch * t->epochs;
    if (e == CN_OK) {
        *result = progress_doc(&r, r.step >= total);
        char last[320];
        uint64_t retries = ps_client_retries(r.pc, last, sizeof last);
        CN_INFO("job %s rank %u %s: %" PRIu64 " steps, %.0f samples/s, %" PRIu64
                " shard calls retried%s%s",
                t->job_id, t->rank, r.step >= total ? "done" : "stopped", r.step,
                (double)r.samples / ((double)(cn_now_ns() - r.t0_ns) * 1e-9), retries,
                retries ? "; last: " : "", retries ? last : "");
    }
    ps_client_close(r.pc);
    part_set_free(r.parts);
    mlp_trainer_free(r.tr);
    free(r.params);
    free(r.grad);
    free(r.order);
    free(r.idx);
    return e;
}
