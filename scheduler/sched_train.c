// sched_train.c: the training job kind: data-parallel MLP training over
// parameter-server shards, on the job kernel (sched_job.h).
//
// A job file (train_spec.h) names its four IDX files by hash (roles
// train_images, train_labels, test_images, test_labels). The job's thread
// loads the test set from the Data store, fixes the model's shape, picks
// the shards (sched_model), configures them, and records a "configured"
// record (shard URLs, shape, steps) in the results log; then it adds one
// work item per rank. A worker slot that takes rank r trains its part of
// the data (fetched by hash) against the shards and reports progress every
// report_every_s (which renews its lease) and a final report when done.
// Meanwhile the thread evaluates the global model every eval_every_s and
// reconfigures a shard that lost the job (restarted), which restores its
// checkpoint. When every rank is done it evaluates once more, saves
// model.cnm and writes summary.json.
//
// After a scheduler crash the job is restored from its log: the shards are
// asked whether they still hold it (else they restore their checkpoints),
// and the workers, which carried on, take their ranks back with their next
// report.
#include "scheduler/sched_kinds_impl.h"
#include "scheduler/sched_train_impl.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/cn_clock.h"
#include "common/cn_log.h"
#include "ml/idx.h"
#include "ml/mlp.h"
#include "scheduler/sched_model.h"
#include "scheduler/train_spec.h"

const char *const SCHED_TRAIN_ROLES[4] = {"train_images", "train_labels", "test_images",
                                          "test_labels"};

static void train_free(void *impl)
{
    train_job *t = impl;
    if (t == NULL)
        return;
    sched_fed_free(t);
    free(t->urls);
    free(t->ranks);
    free(t->evals);
    free(t);
}

static cn_err train_create(sched_jobs *k, const sched_job_input *in, void **impl, char *err,
                           size_t errlen)
{
    (void)k;
    train_job *t = calloc(1, sizeof *t);
    if (t == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    t->time_to_target = -1;
    cn_err e = train_spec_parse(in->spec_json, in->spec_name, &t->spec, err, errlen);
    for (int r = 0; e == CN_OK && r < 4; r++) {
        const sched_data_ref *d = NULL;
        for (size_t i = 0; i < in->n_data; i++)
            if (strcmp(in->data[i].role, SCHED_TRAIN_ROLES[r]) == 0)
                d = &in->data[i];
        if (d == NULL)
            e = cn_errf(err, errlen, CN_EINVAL,
                        "%s: the job names no data set for \"%s\" (upload the file and name it "
                        "by hash)",
                        in->spec_name, SCHED_TRAIN_ROLES[r]);
        else
            snprintf(t->sha[r], sizeof t->sha[r], "%s", d->sha256);
    }
    if (e == CN_OK) {
        t->urls = calloc(t->spec.shards, sizeof *t->urls);
        t->ranks = calloc(t->spec.workers, sizeof *t->ranks);
        t->evals = calloc(MAX_EVALS, sizeof *t->evals);
        if (!t->urls || !t->ranks || !t->evals)
            e = cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    }
    if (e != CN_OK) {
        train_free(t);
        return e;
    }
    *impl = t;
    return CN_OK;
}

static void train_make_id(const void *impl, const sched_job_input *in, char *id, size_t n)
{
    (void)in;
    const train_job *t = impl;
    // A unique, readable id: name-YYYYmmdd-HHMMSS-xxxx.
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    uint16_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd = (uint16_t)cn_now_ns();
    snprintf(id, n, "%.60s-%04d%02d%02d-%02d%02d%02d-%04x", t->spec.name, tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rnd);
}

double sched_train_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *type_of(const cJSON *rec)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "type"));
    return s ? s : "";
}

// ------------------------------------------------------------ replay

static void set_rank(rank_info *ri, const cJSON *r)
{
    ri->step = (uint64_t)sched_train_num(r, "step");
    ri->epoch = (uint32_t)sched_train_num(r, "epoch");
    ri->loss = sched_train_num(r, "loss");
    ri->samples = (uint64_t)sched_train_num(r, "samples");
    ri->seconds = sched_train_num(r, "seconds");
    ri->compute_s = sched_train_num(r, "compute_seconds");
    ri->comm_s = sched_train_num(r, "comm_seconds");
    ri->bytes_sent = (uint64_t)sched_train_num(r, "bytes_sent");
    ri->bytes_recv = (uint64_t)sched_train_num(r, "bytes_received");
    ri->done = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "done"));
}

// replay_configured restores the shape, steps and shard URLs.
static void replay_configured(train_job *t, const cJSON *rec)
{
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(rec, "widths");
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(rec, "shard_urls");
    int nw = cJSON_GetArraySize(w);
    if (nw < 2 || nw > MLP_MAX_LAYERS + 1 || cJSON_GetArraySize(u) != (int)t->spec.shards)
        return;
    int hidden[MLP_MAX_LAYERS];
    for (int l = 1; l + 1 < nw; l++)
        hidden[l - 1] = (int)cJSON_GetArrayItem(w, l)->valuedouble;
    char err[CN_ERRBUF_LEN];
    if (mlp_shape_init(&t->shape, (int)cJSON_GetArrayItem(w, 0)->valuedouble, hidden, nw - 2,
                       (int)cJSON_GetArrayItem(w, nw - 1)->valuedouble, err, sizeof err) != CN_OK)
        return;
    for (uint32_t k = 0; k < t->spec.shards; k++)
        snprintf(t->urls[k], sizeof t->urls[k], "%s",
                 cJSON_GetStringValue(cJSON_GetArrayItem(u, (int)k)));
    t->steps_per_epoch = (uint64_t)sched_train_num(rec, "steps_per_epoch");
    t->steps = (uint64_t)sched_train_num(rec, "steps");
    t->configured = true;
}

static void train_replay(sched_job *j, const cJSON *rec)
{
    train_job *t = sched_job_impl(j);
    const char *type = type_of(rec);
    if (strcmp(type, "configured") == 0) {
        replay_configured(t, rec);
    } else if (strcmp(type, "worker") == 0) {
        double r = sched_train_num(rec, "rank");
        if (r >= 0 && r < t->spec.workers)
            set_rank(&t->ranks[(size_t)r], rec);
    } else if (strcmp(type, "eval") == 0 && t->n_evals < MAX_EVALS) {
        eval_point *p = &t->evals[t->n_evals++];
        *p = (eval_point){sched_train_num(rec, "t"), sched_train_num(rec, "accuracy"), sched_train_num(rec, "loss"),
                          sched_train_num(rec, "samples_per_s"), (uint64_t)sched_train_num(rec, "step")};
        t->acc = p->acc;
        t->test_loss = p->loss;
    } else if (strcmp(type, "shard_restart") == 0) {
        t->shard_restarts++;
    } else if (strcmp(type, "summary") == 0) {
        t->finished = true;
    } else if (t->spec.fed.on) {
        sched_fed_replay(j, rec);
    }
}

// ------------------------------------------------------------ metrics

uint64_t sched_train_slowest_step(const train_job *t)
{
    uint64_t m = UINT64_MAX;
    for (uint32_t r = 0; r < t->spec.workers; r++)
        m = t->ranks[r].step < m ? t->ranks[r].step : m;
    return m == UINT64_MAX ? 0 : m;
}

// samples_per_s is the job's throughput: the sum of each worker's samples
// over its own training time (data loading excluded).
double sched_train_sps(const train_job *t)
{
    double sps = 0;
    for (uint32_t r = 0; r < t->spec.workers; r++)
        if (t->ranks[r].seconds > 0)
            sps += (double)t->ranks[r].samples / t->ranks[r].seconds;
    return sps;
}

void sched_train_log(sched_job *j, cJSON *o)
{
    sched_job_log(j, o);
    cJSON_Delete(o);
}

// ------------------------------------------------------------ the job thread


// load_shape loads the test set and fixes the model's shape from it (the
// input width) and from both label files (the classes). No lock.
cn_err sched_train_load_shape(run *r, uint64_t *n_train)
{
    const train_spec *sp = &r->t->spec;
    char paths[4][1200];
    for (int i = 0; i < 4; i++)
        sched_jobs_data_path(r->k, r->t->sha[i], paths[i], sizeof paths[i]);
    cn_err e = idx_load(paths[2], paths[3], sp->test_rows, &r->test, r->err, sizeof r->err);
    int32_t *labels = NULL;
    size_t n = 0;
    if (e == CN_OK)
        e = idx_load_labels(paths[1], sp->train_rows, &labels, &n, r->err, sizeof r->err);
    if (e != CN_OK)
        return e;
    int n_classes = r->test->n_classes;
    for (size_t i = 0; i < n; i++)
        n_classes = labels[i] + 1 > n_classes ? labels[i] + 1 : n_classes;
    free(labels);
    *n_train = n;
    if (r->t->configured)
        return CN_OK;
    e = mlp_shape_init(&r->t->shape, (int)r->test->n_features, sp->hidden, sp->n_hidden, n_classes,
                       r->err, sizeof r->err);
    if (e == CN_OK && r->t->shape.n_params < sp->shards)
        e = cn_errf(r->err, sizeof r->err, CN_EINVAL, "the model has fewer parameters than shards");
    return e;
}

void sched_train_fill_cfg(run *r)
{
    const train_spec *sp = &r->t->spec;
    memset(&r->cfg, 0, sizeof r->cfg);
    snprintf(r->cfg.job_id, sizeof r->cfg.job_id, "%s", sched_job_id(r->j));
    r->cfg.shards = sp->shards;
    r->cfg.n_params = r->t->shape.n_params;
    r->cfg.optim = sp->optim;
    if (r->cfg.optim.schedule == OPTIM_SCHED_COSINE && r->cfg.optim.total_steps == 0)
        r->cfg.optim.total_steps = r->t->steps * (sp->mode == PS_BSP ? 1 : sp->workers);
    r->cfg.mode = sp->mode;
    r->cfg.staleness = sp->staleness;
    r->cfg.workers = sp->workers;
    // A name under each shard's own checkpoint root: the shards' disks are
    // not the scheduler's.
    snprintf(r->cfg.checkpoint_dir, sizeof r->cfg.checkpoint_dir, "%s", sched_job_id(r->j));
    r->cfg.checkpoint_every = sp->checkpoint_every;
    if (sp->fed.on) {
        // Federated: the shards fold the clients' updates of a round and
        // step the strategy's server optimizer once per round, saving the
        // model after each.
        r->cfg.mode = PS_ROUND;
        r->cfg.workers = sp->fed.clients;
        char err[CN_ERRBUF_LEN];
        fed_server_optim(&sp->fed.server, &r->cfg.optim, err, sizeof err); // checked by the spec
        r->cfg.checkpoint_every = 1;
    }
}

void sched_train_log_configured(run *r, bool restored)
{
    const train_job *t = r->t;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "configured");
    cJSON_AddNumberToObject(o, "t", sched_job_elapsed_s(r->j));
    cJSON *w = cJSON_AddArrayToObject(o, "widths");
    for (int l = 0; l <= t->shape.n_layers; l++)
        cJSON_AddItemToArray(w, cJSON_CreateNumber(t->shape.widths[l]));
    cJSON *u = cJSON_AddArrayToObject(o, "shard_urls");
    for (uint32_t k = 0; k < t->spec.shards; k++)
        cJSON_AddItemToArray(u, cJSON_CreateString(t->urls[k]));
    cJSON_AddNumberToObject(o, "n_params", (double)t->shape.n_params);
    cJSON_AddNumberToObject(o, "steps_per_epoch", (double)t->steps_per_epoch);
    cJSON_AddNumberToObject(o, "steps", (double)t->steps);
    cJSON_AddBoolToObject(o, "restored", restored);
    sched_train_log(r->j, o);
}

// configure sets up the shards: a new job picks and configures them; a
// restored one reconnects and restores their checkpoints if they lost it.
cn_err sched_train_connect(run *r, bool *resumed)
{
    train_job *t = r->t;
    const train_spec *sp = &t->spec;
    uint64_t n_train = 0;
    cn_err e = sched_train_load_shape(r, &n_train);
    bool restoring = t->configured;
    *resumed = restoring;
    if (e == CN_OK && !restoring) {
        uint64_t per = n_train / ((uint64_t)sp->workers * sp->batch);
        t->steps_per_epoch = per > 0 ? per : 1;
        t->steps = sp->fed.on ? sp->fed.rounds : t->steps_per_epoch * sp->epochs;
        e = sched_model_pick_shards(sched_jobs_members(r->k), sp->shards, t->urls, r->err,
                                    sizeof r->err);
    }
    r->params = e == CN_OK ? malloc(t->shape.n_params * sizeof *r->params) : NULL;
    r->ws = e == CN_OK ? mlp_ws_new(&t->shape, 1000) : NULL;
    if (e == CN_OK && (!r->params || !r->ws))
        e = cn_errf(r->err, sizeof r->err, CN_ENOMEM, "out of memory");
    if (e != CN_OK)
        return e;
    sched_train_fill_cfg(r);
    const char *urls[SCHED_MODEL_MAX_SHARDS];
    for (uint32_t k = 0; k < sp->shards && k < SCHED_MODEL_MAX_SHARDS; k++)
        urls[k] = t->urls[k];
    sched_model_opts mo = {.urls = urls,
                           .cfg = &r->cfg,
                           .shape = &t->shape,
                           .token = sched_jobs_token(r->k),
                           .tls = sched_jobs_tls(r->k)};
    e = sched_model_open(&r->model, &mo, r->err, sizeof r->err);
    if (e != CN_OK)
        return e;
    mlp_init_params(&t->shape, r->params, sp->seed);
    bool restored = false;
    if (!restoring)
        e = sched_model_configure(r->model, r->params, false, NULL, r->err, sizeof r->err);
    else if (sched_model_lost(r->model))
        e = sched_model_configure(r->model, r->params, true, &restored, r->err, sizeof r->err);
    if (e != CN_OK)
        return e;
    sched_jobs_lock(r->k);
    if (!restoring || restored)
        sched_train_log_configured(r, restored);
    t->configured = true;
    sched_jobs_unlock(r->k);
    return CN_OK;
}

// configure connects the shards and adds one item per rank.
static cn_err configure(run *r)
{
    train_job *t = r->t;
    const train_spec *sp = &t->spec;
    bool resumed;
    cn_err e = sched_train_connect(r, &resumed);
    if (e != CN_OK)
        return e;
    sched_jobs_lock(r->k);
    sched_job_set_policy(r->j, 10000 + (uint32_t)(sp->report_every_s * 20000), 1000, 0);
    e = sched_job_add_items(r->j, sp->workers);
    for (uint32_t q = 0; e == CN_OK && q < sp->workers; q++)
        if (t->ranks[q].done)
            sched_job_item_settle(r->j, q);
    t->waiting_since_ms = cn_now_ms();
    CN_INFO("job %s %s: model %zu params, %u shards, %u workers, %s, %" PRIu64 " steps per worker",
            sched_job_id(r->j), resumed ? "resumed" : "running", t->shape.n_params, sp->shards,
            sp->workers, ps_mode_name(sp->mode), t->steps);
    sched_jobs_unlock(r->k);
    return e;
}

// watch_shards configures again a shard that lost the job. No lock.
bool sched_train_watch_shards(run *r)
{
    if (!sched_model_lost(r->model))
        return false;
    bool restored = false;
    cn_err e = sched_model_configure(r->model, r->params, true, &restored, r->err, sizeof r->err);
    sched_jobs_lock(r->k);
    r->t->shard_restarts++;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "shard_restart");
    cJSON_AddNumberToObject(o, "t", sched_job_elapsed_s(r->j));
    cJSON_AddBoolToObject(o, "restored", restored);
    cJSON_AddBoolToObject(o, "ok", e == CN_OK);
    sched_train_log(r->j, o);
    sched_jobs_unlock(r->k);
    CN_WARN("job %s: a shard lost the job; configured again (%s)", sched_job_id(r->j),
            e == CN_OK ? (restored ? "checkpoint restored" : "no checkpoint") : r->err);
    return true;
}

// add_eval records an evaluation. Lock held.
void sched_train_add_eval(run *r, double acc, double loss, uint64_t step)
{
    train_job *t = r->t;
    double el = sched_job_elapsed_s(r->j);
    if (t->n_evals < MAX_EVALS)
        t->evals[t->n_evals++] = (eval_point){el, acc, loss, sched_train_sps(t), step};
    t->acc = acc;
    t->test_loss = loss;
    if (t->spec.target_accuracy > 0 && acc >= t->spec.target_accuracy && t->time_to_target < 0)
        t->time_to_target = el;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "eval");
    cJSON_AddNumberToObject(o, "t", el);
    cJSON_AddNumberToObject(o, "step", (double)step);
    cJSON_AddNumberToObject(o, "accuracy", acc);
    cJSON_AddNumberToObject(o, "loss", loss);
    cJSON_AddNumberToObject(o, "samples_per_s", sched_train_sps(t));
    cJSON_AddNumberToObject(o, "bytes", sched_train_bytes(t));
    sched_train_log(r->j, o);
}

double sched_train_bytes(const train_job *t)
{
    if (t->spec.fed.on)
        return sched_fed_bytes(t);
    double b = 0;
    for (uint32_t q = 0; q < t->spec.workers; q++)
        b += (double)(t->ranks[q].bytes_sent + t->ranks[q].bytes_recv);
    return b;
}

static bool all_done(const train_job *t)
{
    for (uint32_t q = 0; q < t->spec.workers; q++)
        if (!t->ranks[q].done)
            return false;
    return true;
}

// train_loop evaluates at intervals and watches the shards until every
// rank is done, the job ends otherwise, or the scheduler stops. Returns with
// the lock held.
static void train_loop(run *r)
{
    const train_spec *sp = &r->t->spec;
    uint64_t last_eval = cn_now_ms(), last_stats = cn_now_ms();
    sched_jobs_lock(r->k);
    for (;;) {
        sched_jobs_wait_ms(r->k, 100);
        if (sched_jobs_stopping(r->k) || sched_job_state(r->j) != JOB_RUNNING || all_done(r->t))
            return;
        uint64_t now = cn_now_ms();
        bool do_eval = now - last_eval >= (uint64_t)(sp->eval_every_s * 1000);
        bool do_stats = now - last_stats >= 500;
        if (!do_eval && !do_stats)
            continue;
        sched_jobs_unlock(r->k);
        if (do_stats) {
            sched_train_watch_shards(r);
            last_stats = now;
        }
        double acc = 0, loss = 0;
        cn_err e = CN_OK;
        if (do_eval) {
            e = sched_model_evaluate(r->model, r->test, r->ws, r->params, &acc, &loss, r->err,
                                     sizeof r->err);
            last_eval = cn_now_ms();
        }
        sched_jobs_lock(r->k);
        if (do_eval && e == CN_OK)
            sched_train_add_eval(r, acc, loss, sched_train_slowest_step(r->t));
    }
}

static void add_summary_fields(run *r, cJSON *o, const sched_model_stats *st)
{
    const train_job *t = r->t;
    const train_spec *sp = &t->spec;
    double comp = 0, comm = 0;
    uint64_t samples = 0, bs = 0, br = 0;
    for (uint32_t q = 0; q < sp->workers; q++) {
        comp += t->ranks[q].compute_s;
        comm += t->ranks[q].comm_s;
        samples += t->ranks[q].samples;
        bs += t->ranks[q].bytes_sent;
        br += t->ranks[q].bytes_recv;
    }
    char model[256];
    mlp_shape_format(&t->shape, model, sizeof model);
    cJSON_AddStringToObject(o, "type", "summary");
    cJSON_AddStringToObject(o, "job", sched_job_id(r->j));
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddNumberToObject(o, "n_params", (double)t->shape.n_params);
    cJSON_AddStringToObject(o, "consistency", ps_mode_name(sp->mode));
    cJSON_AddNumberToObject(o, "staleness_bound", sp->staleness);
    cJSON_AddNumberToObject(o, "shards", sp->shards);
    cJSON_AddNumberToObject(o, "workers", sp->workers);
    cJSON_AddNumberToObject(o, "batch", sp->batch);
    cJSON_AddNumberToObject(o, "epochs", sp->epochs);
    cJSON_AddNumberToObject(o, "steps_per_worker", (double)t->steps);
    cJSON_AddNumberToObject(o, "seconds", sched_job_elapsed_s(r->j));
    cJSON_AddNumberToObject(o, "samples", (double)samples);
    cJSON_AddNumberToObject(o, "samples_per_s", sched_train_sps(t));
    cJSON_AddNumberToObject(o, "test_accuracy", t->acc);
    cJSON_AddNumberToObject(o, "test_loss", t->test_loss);
    cJSON_AddNumberToObject(o, "target_accuracy", sp->target_accuracy);
    cJSON_AddNumberToObject(o, "time_to_target_s", t->time_to_target);
    cJSON_AddNumberToObject(o, "compute_seconds", comp);
    cJSON_AddNumberToObject(o, "comm_seconds", comm);
    cJSON_AddNumberToObject(o, "compute_comm_ratio", comm > 0 ? comp / comm : 0);
    cJSON_AddNumberToObject(o, "bytes_sent", (double)bs);
    cJSON_AddNumberToObject(o, "bytes_received", (double)br);
    cJSON_AddNumberToObject(o, "shard_apply_seconds", st->apply_seconds);
    cJSON_AddNumberToObject(o, "shard_wait_seconds", st->wait_seconds);
    cJSON_AddNumberToObject(o, "checkpoints", (double)st->checkpoints);
    cJSON_AddNumberToObject(o, "duplicate_pushes", (double)st->duplicates);
    cJSON_AddNumberToObject(o, "shard_restarts", t->shard_restarts);
    cJSON *hist = cJSON_AddArrayToObject(o, "staleness_hist");
    for (int b = 0; b < PS_STALE_BUCKETS; b++)
        cJSON_AddItemToArray(hist, cJSON_CreateNumber((double)st->staleness[b]));
    char path[1600];
    snprintf(path, sizeof path, "%s/model.cnm", sched_job_dir(r->j));
    cJSON_AddStringToObject(o, "model_path", path);
    if (t->spec.fed.on)
        sched_fed_summary(t, o);
}

// finish_job evaluates the final model, saves it and writes the summary.
// Called without the lock; returns with it held.
void sched_train_finish(run *r)
{
    double acc = 0, loss = 0;
    char path[1600];
    snprintf(path, sizeof path, "%s/model.cnm", sched_job_dir(r->j));
    cn_err e = sched_model_evaluate(r->model, r->test, r->ws, r->params, &acc, &loss, r->err,
                                    sizeof r->err);
    if (e == CN_OK)
        e = mlp_model_save(path, &r->t->shape, r->params, r->err, sizeof r->err);
    sched_model_stats st;
    sched_model_stats_sum(r->model, &st);
    sched_jobs_lock(r->k);
    if (e != CN_OK) {
        sched_job_finish(r->j, JOB_FAILED, r->err);
        return;
    }
    sched_train_add_eval(r, acc, loss, r->t->steps);
    memcpy(r->t->staleness, st.staleness, sizeof st.staleness);
    cJSON *o = cJSON_CreateObject();
    add_summary_fields(r, o, &st);
    sched_job_write_json(r->j, "summary.json", o);
    sched_train_log(r->j, o);
    r->t->finished = true;
    sched_job_finish(r->j, JOB_DONE, NULL);
    CN_INFO("job %s done: test accuracy %.4f, %.0f samples/s", sched_job_id(r->j), acc,
            sched_train_sps(r->t));
}

static void *job_main(void *arg)
{
    run *r = arg;
    cn_err e = configure(r);
    if (e != CN_OK) {
        sched_jobs_lock(r->k);
        sched_job_finish(r->j, JOB_FAILED, r->err);
    } else {
        train_loop(r); // returns with the lock held
        bool finish = sched_job_state(r->j) == JOB_RUNNING && !sched_jobs_stopping(r->k);
        sched_jobs_unlock(r->k);
        if (finish)
            sched_train_finish(r); // returns with the lock held
        else
            sched_jobs_lock(r->k);
    }
    sched_jobs_unlock(r->k);
    sched_model_close(r->model);
    mlp_ws_free(r->ws);
    free(r->params);
    ds_dataset_free(r->test);
    free(r);
    return NULL;
}

// ------------------------------------------------------------ kind callbacks

static cn_err train_start(sched_job *j, char *err, size_t errlen)
{
    train_job *t = sched_job_impl(j);
    if (t->finished) { // the summary was written before a crash
        sched_job_finish(j, JOB_DONE, NULL);
        return CN_OK;
    }
    run *r = calloc(1, sizeof *r);
    if (r == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    *r = (run){.j = j, .t = t, .k = sched_job_kernel(j)};
    if (pthread_create(&t->thread, NULL, t->spec.fed.on ? sched_fed_main : job_main, r) != 0) {
        free(r);
        return cn_errf(err, errlen, CN_ENOMEM, "cannot start the job thread");
    }
    t->thread_started = true;
    return CN_OK;
}

static char *train_task(sched_job *j, uint64_t item, uint32_t attempt)
{
    train_job *t = sched_job_impl(j);
    if (t->spec.fed.on)
        return sched_fed_task(j, item, attempt);
    const train_spec *sp = &t->spec;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "job_id", sched_job_id(j));
    cJSON_AddNumberToObject(o, "rank", (double)item);
    cJSON_AddNumberToObject(o, "workers", sp->workers);
    cJSON *u = cJSON_AddArrayToObject(o, "shard_urls");
    for (uint32_t k = 0; k < sp->shards; k++)
        cJSON_AddItemToArray(u, cJSON_CreateString(t->urls[k]));
    cJSON_AddNumberToObject(o, "n_params", (double)t->shape.n_params);
    cJSON *w = cJSON_AddArrayToObject(o, "widths");
    for (int l = 0; l <= t->shape.n_layers; l++)
        cJSON_AddItemToArray(w, cJSON_CreateNumber(t->shape.widths[l]));
    cJSON_AddStringToObject(o, "train_images", t->sha[0]);
    cJSON_AddStringToObject(o, "train_labels", t->sha[1]);
    cJSON_AddNumberToObject(o, "train_rows", (double)sp->train_rows);
    cJSON_AddStringToObject(o, "partition", part_kind_name(sp->partition));
    cJSON_AddNumberToObject(o, "alpha", sp->alpha);
    cJSON_AddNumberToObject(o, "k_labels", sp->k_labels);
    cJSON_AddNumberToObject(o, "seed", (double)sp->seed);
    cJSON_AddNumberToObject(o, "batch", sp->batch);
    cJSON_AddNumberToObject(o, "epochs", sp->epochs);
    cJSON_AddNumberToObject(o, "steps_per_epoch", (double)t->steps_per_epoch);
    cJSON_AddStringToObject(o, "consistency", ps_mode_name(sp->mode));
    cJSON_AddNumberToObject(o, "threads", sp->threads);
    cJSON_AddNumberToObject(o, "report_every_s", sp->report_every_s);
    cJSON_AddNumberToObject(o, "call_timeout_ms", 30000);
    cJSON_AddNumberToObject(o, "attempt", attempt);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    CN_INFO("job %s: rank %" PRIu64 " handed out (attempt %u)", sched_job_id(j), item, attempt);
    return text;
}

// log_worker records a rank's report.
static void log_worker(sched_job *j, uint64_t rank, const cJSON *res, const char *error)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "worker");
    cJSON_AddNumberToObject(o, "t", sched_job_elapsed_s(j));
    cJSON_AddNumberToObject(o, "rank", (double)rank);
    const char *keys[] = {"step",         "epoch",      "loss",
                          "samples",      "seconds",    "compute_seconds",
                          "comm_seconds", "bytes_sent", "bytes_received"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cJSON_AddNumberToObject(o, keys[i], sched_train_num(res, keys[i]));
    double s = sched_train_num(res, "seconds");
    cJSON_AddNumberToObject(o, "samples_per_s", s > 0 ? sched_train_num(res, "samples") / s : 0);
    cJSON_AddBoolToObject(o, "done", cJSON_IsTrue(cJSON_GetObjectItem(res, "done")));
    if (error)
        cJSON_AddStringToObject(o, "error", error);
    sched_train_log(j, o);
}

static void train_progress(sched_job *j, uint64_t item, uint64_t node, const cJSON *result)
{
    (void)node;
    train_job *t = sched_job_impl(j);
    if (t->spec.fed.on || item >= t->spec.workers)
        return; // a federated client's progress only renews its lease
    set_rank(&t->ranks[item], result);
    t->ranks[item].done = false; // only a final report ends a rank
    log_worker(j, item, result, NULL);
}

static void train_item_done(sched_job *j, uint64_t item, uint64_t node, bool ok, const char *error,
                            const cJSON *result)
{
    (void)node;
    train_job *t = sched_job_impl(j);
    if (t->spec.fed.on) {
        sched_fed_item_done(j, item, ok, error, result);
        return;
    }
    if (item >= t->spec.workers)
        return;
    set_rank(&t->ranks[item], result);
    t->ranks[item].done = ok;
    log_worker(j, item, result, ok ? NULL : error);
    if (!ok) {
        char why[700];
        snprintf(why, sizeof why, "worker rank %" PRIu64 ": %s", item, error);
        sched_job_finish(j, JOB_FAILED, why);
    }
}

static void train_item_failed(sched_job *j, uint64_t item, const char *why)
{
    train_job *t = sched_job_impl(j);
    if (t->spec.fed.on) {
        sched_fed_item_failed(j, item, why);
        return;
    }
    char msg[700];
    snprintf(msg, sizeof msg, "rank %" PRIu64 " gave up: %s", item, why);
    sched_job_finish(j, JOB_FAILED, msg);
}

static void train_item_lost(sched_job *j, uint64_t item, uint64_t node, const char *why)
{
    (void)node;
    train_job *t = sched_job_impl(j);
    if (t->spec.fed.on)
        CN_WARN("job %s: the client of item %" PRIu64 " %s", sched_job_id(j), item, why);
    else
        CN_WARN("job %s: worker of rank %" PRIu64 " %s; its rank is free", sched_job_id(j), item,
                why);
}

// train_tick fails a synchronous job whose ranks cannot all be held: BSP
// and SSP workers wait for each other, so one rank without a worker stops
// them all.
static void train_tick(sched_job *j, uint64_t now)
{
    train_job *t = sched_job_impl(j);
    if (!t->configured || t->spec.fed.on || t->spec.mode == PS_ASP || t->waiting_since_ms == 0)
        return;
    size_t pending;
    sched_job_items(j, NULL, &pending, NULL, NULL, NULL);
    if (pending == 0) {
        t->waiting_since_ms = now;
        return;
    }
    if (now - t->waiting_since_ms < (uint64_t)(t->spec.admission_timeout_s * 1000))
        return;
    char why[400];
    snprintf(why, sizeof why,
             "%zu of %u ranks found no worker within %.0f s (admission_timeout_s); %zu live "
             "workers; start more (`canopy worker`) or lower \"workers\"",
             pending, t->spec.workers, t->spec.admission_timeout_s,
             sched_members_count(sched_jobs_members(sched_job_kernel(j)), CLUSTER_ROLE_WORKER));
    sched_job_finish(j, JOB_FAILED, why);
}

static void train_status(sched_job *j, cJSON *o)
{
    train_job *t = sched_job_impl(j);
    const train_spec *sp = &t->spec;
    uint64_t step = sched_train_slowest_step(t);
    double loss = 0, comp = 0, comm = 0;
    uint32_t active = 0;
    for (uint32_t q = 0; q < sp->workers; q++) {
        loss += t->ranks[q].loss;
        comp += t->ranks[q].compute_s;
        comm += t->ranks[q].comm_s;
        item_state st;
        sched_job_item_info(j, q, &st, NULL, NULL);
        active += st == ITEM_LEASED;
    }
    char model[256] = "";
    if (t->configured)
        mlp_shape_format(&t->shape, model, sizeof model);
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddNumberToObject(o, "n_params", t->configured ? (double)t->shape.n_params : 0);
    cJSON_AddStringToObject(o, "consistency", ps_mode_name(sp->mode));
    cJSON_AddNumberToObject(o, "shards", sp->shards);
    cJSON_AddNumberToObject(o, "workers_wanted", sp->workers);
    cJSON_AddNumberToObject(o, "workers_active", active);
    cJSON_AddNumberToObject(o, "epochs", sp->epochs);
    cJSON_AddNumberToObject(o, "epoch",
                            t->steps_per_epoch ? (double)(step / t->steps_per_epoch) : 0);
    cJSON_AddNumberToObject(o, "step", (double)step);
    cJSON_AddNumberToObject(o, "steps", (double)t->steps);
    cJSON_AddNumberToObject(o, "loss", sp->workers ? loss / sp->workers : 0);
    cJSON_AddNumberToObject(o, "accuracy", t->n_evals ? t->acc : -1);
    cJSON_AddNumberToObject(o, "test_loss", t->test_loss);
    cJSON_AddNumberToObject(o, "samples_per_s", sched_train_sps(t));
    cJSON_AddNumberToObject(o, "compute_comm_ratio", comm > 0 ? comp / comm : 0);
    cJSON_AddNumberToObject(o, "shard_restarts", t->shard_restarts);
    char path[1600] = "";
    if (sched_job_state(j) == JOB_DONE)
        snprintf(path, sizeof path, "%s/model.cnm", sched_job_dir(j));
    cJSON_AddStringToObject(o, "model_path", path);
    cJSON *ev = cJSON_AddArrayToObject(o, "evals");
    for (size_t i = 0; i < t->n_evals; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "t", t->evals[i].t);
        cJSON_AddNumberToObject(p, "step", (double)t->evals[i].step);
        cJSON_AddNumberToObject(p, "accuracy", t->evals[i].acc);
        cJSON_AddNumberToObject(p, "loss", t->evals[i].loss);
        cJSON_AddNumberToObject(p, "samples_per_s", t->evals[i].sps);
        cJSON_AddItemToArray(ev, p);
    }
    cJSON *h = cJSON_AddArrayToObject(o, "staleness");
    for (int b = 0; sched_job_state(j) == JOB_DONE && b < PS_STALE_BUCKETS; b++)
        cJSON_AddItemToArray(h, cJSON_CreateNumber((double)t->staleness[b]));
    if (t->spec.fed.on)
        sched_fed_status(j, o);
}

static double train_progress_frac(sched_job *j)
{
    train_job *t = sched_job_impl(j);
    if (sched_job_state(j) == JOB_DONE)
        return 1;
    if (t->spec.fed.on)
        return sched_fed_progress(j);
    return t->steps ? (double)sched_train_slowest_step(t) / (double)t->steps : 0;
}

static void train_stop(sched_job *j)
{
    train_job *t = sched_job_impl(j);
    if (t->thread_started) {
        pthread_join(t->thread, NULL);
        t->thread_started = false;
    }
}

const sched_kind sched_train_kind = {
    .name = "train",
    .dir = "train",
    .create = train_create,
    .make_id = train_make_id,
    .replay = train_replay,
    .start = train_start,
    .task = train_task,
    .progress = train_progress,
    .item_done = train_item_done,
    .item_failed = train_item_failed,
    .item_lost = train_item_lost,
    .tick = train_tick,
    .status = train_status,
    .progress_frac = train_progress_frac,
    .stop = train_stop,
    .free = train_free,
};
