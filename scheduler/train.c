// train.c: the Train service (see train.h): job specs, shard configuration,
// worker assignment, metrics, evaluation and the results log.
#include "scheduler/train.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/cn_buf.h"
#include "common/cn_clock.h"
#include "common/cn_config.h"
#include "common/cn_file.h"
#include "common/cn_log.h"
#include "ml/idx.h"
#include "ml/mlp.h"
#include "train.pb-c.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/"
#define MAX_EVALS 4096

// ------------------------------------------------------------ spec

static const char *const KEYS[] = {"name",
                                   "train_images",
                                   "train_labels",
                                   "test_images",
                                   "test_labels",
                                   "train_rows",
                                   "test_rows",
                                   "hidden",
                                   "optimizer",
                                   "lr",
                                   "momentum",
                                   "nesterov",
                                   "weight_decay",
                                   "schedule",
                                   "step_every",
                                   "gamma",
                                   "min_lr",
                                   "batch",
                                   "epochs",
                                   "consistency",
                                   "staleness",
                                   "shards",
                                   "workers",
                                   "partition",
                                   "alpha",
                                   "k_labels",
                                   "seed",
                                   "eval_every_s",
                                   "checkpoint_every",
                                   "threads",
                                   "target_accuracy",
                                   "report_every_s",
                                   "beta1",
                                   "beta2",
                                   NULL};

static cn_err get_str(const cJSON *o, const char *key, char *dst, size_t n, const char *origin,
                      char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (v == NULL)
        return CN_OK;
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= n)
        return cn_errf(err, errlen, CN_EINVAL, "%s: key \"%s\": expected a string (< %zu chars)",
                       origin, key, n);
    snprintf(dst, n, "%s", v->valuestring);
    return CN_OK;
}

static cn_err get_num(const cJSON *o, const char *key, double *dst, double min, double max,
                      bool integer, const char *origin, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (v == NULL)
        return CN_OK;
    if (!cJSON_IsNumber(v) || (integer && v->valuedouble != floor(v->valuedouble)) ||
        !(v->valuedouble >= min && v->valuedouble <= max))
        return cn_errf(err, errlen, CN_EINVAL, "%s: key \"%s\": %s is not allowed (%s in %g..%g)",
                       origin, key, cJSON_IsNumber(v) ? "the value" : "a non-number",
                       integer ? "an integer" : "a number", min, max);
    *dst = v->valuedouble;
    return CN_OK;
}

static cn_err get_choice(const cJSON *o, const char *key, char *dst, size_t n, const char *choices,
                         const char *origin, char *err, size_t errlen)
{
    char tmp[64] = "";
    cn_err e = get_str(o, key, tmp, sizeof tmp, origin, err, errlen);
    if (e != CN_OK || !tmp[0])
        return e;
    char list[256];
    snprintf(list, sizeof list, "|%s|", choices);
    char want[80];
    snprintf(want, sizeof want, "|%s|", tmp);
    if (strstr(list, want) == NULL)
        return cn_errf(err, errlen, CN_EINVAL, "%s: key \"%s\": \"%s\" is not one of %s", origin,
                       key, tmp, choices);
    snprintf(dst, n, "%s", tmp);
    return CN_OK;
}

cn_err train_spec_parse(const char *json, const char *origin, train_spec *s, char *err,
                        size_t errlen)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "train");
    snprintf(s->train_images, sizeof s->train_images, FMNIST "train-images-idx3-ubyte.gz");
    snprintf(s->train_labels, sizeof s->train_labels, FMNIST "train-labels-idx1-ubyte.gz");
    snprintf(s->test_images, sizeof s->test_images, FMNIST "t10k-images-idx3-ubyte.gz");
    snprintf(s->test_labels, sizeof s->test_labels, FMNIST "t10k-labels-idx1-ubyte.gz");
    s->hidden[0] = 256;
    s->hidden[1] = 128;
    s->n_hidden = 2;
    optim_cfg_default(&s->optim, OPTIM_SGD);
    s->optim.lr = 0.05f;
    s->batch = 64;
    s->epochs = 5;
    s->mode = PS_BSP;
    s->staleness = 2;
    s->shards = 1;
    s->workers = 1;
    s->partition = PART_IID;
    s->alpha = 0.5;
    s->k_labels = 2;
    s->seed = 1;
    s->eval_every_s = 2.0;
    s->checkpoint_every = 100;
    s->report_every_s = 0.5;

    cJSON *o = cJSON_Parse(json);
    if (o == NULL || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return cn_errf(err, errlen, CN_EFORMAT, "%s: not a JSON object", origin);
    }
    cn_err e = CN_OK;
    for (const cJSON *it = o->child; it; it = it->next) {
        int known = 0;
        for (int i = 0; KEYS[i]; i++)
            known |= strcmp(it->string, KEYS[i]) == 0;
        if (!known) {
            const char *best = cn_closest_name(KEYS, it->string);
            if (best)
                e = cn_errf(err, errlen, CN_EINVAL, "%s: unknown key \"%s\" (did you mean \"%s\"?)",
                            origin, it->string, best);
            else
                e = cn_errf(err, errlen, CN_EINVAL, "%s: unknown key \"%s\"", origin, it->string);
            goto out;
        }
    }
    double d;
    char ch[64];
#define NUM(key, min, max, integer, dst)                                                           \
    do {                                                                                           \
        d = NAN;                                                                                   \
        if ((e = get_num(o, key, &d, min, max, integer, origin, err, errlen)) != CN_OK)            \
            goto out;                                                                              \
        if (!isnan(d))                                                                             \
            dst = d;                                                                               \
    } while (0)
    if ((e = get_str(o, "name", s->name, sizeof s->name, origin, err, errlen)) != CN_OK ||
        (e = get_str(o, "train_images", s->train_images, sizeof s->train_images, origin, err,
                     errlen)) != CN_OK ||
        (e = get_str(o, "train_labels", s->train_labels, sizeof s->train_labels, origin, err,
                     errlen)) != CN_OK ||
        (e = get_str(o, "test_images", s->test_images, sizeof s->test_images, origin, err,
                     errlen)) != CN_OK ||
        (e = get_str(o, "test_labels", s->test_labels, sizeof s->test_labels, origin, err,
                     errlen)) != CN_OK)
        goto out;
    for (const char *p = s->name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.')) {
            e = cn_errf(err, errlen, CN_EINVAL,
                        "%s: key \"name\": \"%s\": only letters, digits, '-', '_' and '.'", origin,
                        s->name);
            goto out;
        }
    NUM("train_rows", 0, 1e9, true, s->train_rows);
    NUM("test_rows", 0, 1e9, true, s->test_rows);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "hidden");
    if (h) {
        int n = cJSON_IsArray(h) ? cJSON_GetArraySize(h) : -1;
        if (n < 0 || n > TRAIN_MAX_HIDDEN) {
            e = cn_errf(err, errlen, CN_EINVAL,
                        "%s: key \"hidden\": expected an array of at most %d widths", origin,
                        TRAIN_MAX_HIDDEN);
            goto out;
        }
        for (int i = 0; i < n; i++) {
            const cJSON *x = cJSON_GetArrayItem(h, i);
            if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) ||
                x->valuedouble < 1 || x->valuedouble > 65536) {
                e = cn_errf(err, errlen, CN_EINVAL,
                            "%s: key \"hidden\": element %d is not a width in 1..65536", origin, i);
                goto out;
            }
            s->hidden[i] = (int)x->valuedouble;
        }
        s->n_hidden = n;
    }
    ch[0] = 0;
    if ((e = get_choice(o, "optimizer", ch, sizeof ch, "sgd|momentum|adam|adamw", origin, err,
                        errlen)) != CN_OK)
        goto out;
    if (ch[0]) {
        optim_kind k;
        optim_kind_parse(ch, &k);
        optim_cfg_default(&s->optim, strcmp(ch, "adamw") == 0 ? OPTIM_ADAM : k);
        s->optim.decoupled_wd = strcmp(ch, "adamw") == 0;
    }
    d = NAN;
    NUM("lr", 1e-9, 100, false, s->optim.lr);
    NUM("momentum", 0, 0.999999, false, s->optim.momentum);
    NUM("weight_decay", 0, 10, false, s->optim.weight_decay);
    NUM("beta1", 0, 0.999999, false, s->optim.beta1);
    NUM("beta2", 0, 0.999999, false, s->optim.beta2);
    NUM("gamma", 1e-6, 1, false, s->optim.gamma);
    NUM("step_every", 1, 1e12, true, s->optim.step_every);
    NUM("min_lr", 0, 100, false, s->optim.min_lr);
    const cJSON *nv = cJSON_GetObjectItemCaseSensitive(o, "nesterov");
    if (nv) {
        if (!cJSON_IsBool(nv)) {
            e = cn_errf(err, errlen, CN_EINVAL, "%s: key \"nesterov\": expected true or false",
                        origin);
            goto out;
        }
        s->optim.nesterov = cJSON_IsTrue(nv);
    }
    ch[0] = 0;
    if ((e = get_choice(o, "schedule", ch, sizeof ch, "constant|step|cosine", origin, err,
                        errlen)) != CN_OK)
        goto out;
    if (ch[0])
        optim_sched_parse(ch, &s->optim.schedule);
    NUM("batch", 1, 65536, true, s->batch);
    NUM("epochs", 1, 100000, true, s->epochs);
    ch[0] = 0;
    if ((e = get_choice(o, "consistency", ch, sizeof ch, "bsp|asp|ssp", origin, err, errlen)) !=
        CN_OK)
        goto out;
    if (ch[0])
        ps_mode_parse(ch, &s->mode);
    NUM("staleness", 0, 1000, true, s->staleness);
    NUM("shards", 1, 64, true, s->shards);
    NUM("workers", 1, 64, true, s->workers);
    ch[0] = 0;
    if ((e = get_choice(o, "partition", ch, sizeof ch, "iid|dirichlet|klabels|quantity|contiguous",
                        origin, err, errlen)) != CN_OK)
        goto out;
    if (ch[0])
        part_kind_parse(ch, &s->partition);
    NUM("alpha", 1e-6, 1e6, false, s->alpha);
    NUM("k_labels", 1, 1000, true, s->k_labels);
    NUM("seed", 0, 9007199254740992.0, true, s->seed);
    NUM("eval_every_s", 0.05, 3600, false, s->eval_every_s);
    NUM("checkpoint_every", 0, 1e9, true, s->checkpoint_every);
    NUM("threads", 0, 1024, true, s->threads);
    NUM("target_accuracy", 0, 1, false, s->target_accuracy);
    NUM("report_every_s", 0.05, 60, false, s->report_every_s);
#undef NUM
    if (s->optim.schedule == OPTIM_SCHED_COSINE)
        s->optim.total_steps = 0; // filled in when the step count is known
    e = CN_OK;
out:
    cJSON_Delete(o);
    return e;
}

// ------------------------------------------------------------ jobs

typedef enum { J_CONFIGURING, J_RUNNING, J_DONE, J_FAILED } job_state;

static const char *state_name(job_state s)
{
    static const char *n[] = {"configuring", "running", "done", "failed"};
    return n[s];
}

typedef struct rank_info {
    uint64_t node; // 0 = unassigned
    bool done;
    uint64_t step;
    uint32_t epoch;
    double loss;
    uint64_t samples;
    double seconds, compute_s, comm_s;
    uint64_t bytes_sent, bytes_recv;
    uint64_t last_ms;
} rank_info;

typedef struct eval_point {
    double t, acc, loss, sps;
    uint64_t step;
} eval_point;

typedef struct job {
    char id[PS_JOB_ID_LEN];
    char dir[1400];
    train_spec spec;
    job_state state;
    char error[512];
    mlp_shape shape;
    uint64_t steps_per_epoch, steps;
    char (*urls)[256]; // (shards)
    rank_info *ranks;  // (workers)
    eval_point *evals;
    size_t n_evals;
    double acc, test_loss;
    uint64_t started_ms, running_ms, finished_ms;
    uint32_t shard_restarts;
    uint64_t staleness[PS_STALE_BUCKETS];
    double time_to_target; // seconds; -1 = not reached
    int log_fd;
    pthread_t thread;
    bool thread_started;
    struct job *next;
} job;

struct train_svc {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sched_members *members;
    char state_dir[1024];
    char token[256];
    rpc_tls tls;
    job *jobs; // newest first
    int stopping;
};

static job *find_job(train_svc *s, const char *id)
{
    for (job *j = s->jobs; j; j = j->next)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

static job *active_job(train_svc *s)
{
    for (job *j = s->jobs; j; j = j->next)
        if (j->state == J_CONFIGURING || j->state == J_RUNNING)
            return j;
    return NULL;
}

static void job_free(job *j)
{
    if (j == NULL)
        return;
    if (j->log_fd >= 0)
        close(j->log_fd);
    free(j->urls);
    free(j->ranks);
    free(j->evals);
    free(j);
}

// append_json writes one record (takes o) to the job's results log.
static void append_json(job *j, cJSON *o)
{
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (line == NULL)
        return;
    size_t n = strlen(line);
    char *buf = malloc(n + 2);
    if (buf) {
        memcpy(buf, line, n);
        buf[n] = '\n';
        if (j->log_fd >= 0 && cn_file_append_line(j->log_fd, buf, n + 1) != CN_OK)
            CN_WARN("job %s: cannot append to the results log", j->id);
        free(buf);
    }
    cJSON_free(line);
}

static double job_elapsed(const job *j, uint64_t now)
{
    uint64_t end = j->finished_ms ? j->finished_ms : now;
    return (double)(end - (j->running_ms ? j->running_ms : j->started_ms)) / 1000.0;
}

static uint64_t slowest_step(const job *j)
{
    uint64_t m = UINT64_MAX;
    for (uint32_t r = 0; r < j->spec.workers; r++)
        if (j->ranks[r].step < m)
            m = j->ranks[r].step;
    return m == UINT64_MAX ? 0 : m;
}

// samples_per_s is the job's throughput: the sum of each worker's samples
// over its own training time (data loading excluded).
static double samples_per_s(const job *j, uint64_t now)
{
    (void)now;
    double sps = 0;
    for (uint32_t r = 0; r < j->spec.workers; r++)
        if (j->ranks[r].seconds > 0)
            sps += (double)j->ranks[r].samples / j->ranks[r].seconds;
    return sps;
}

static void job_fail(job *j, const char *why)
{
    if (j->state == J_DONE || j->state == J_FAILED)
        return;
    j->state = J_FAILED;
    snprintf(j->error, sizeof j->error, "%s", why);
    j->finished_ms = cn_now_ms();
    CN_ERROR("job %s failed: %s", j->id, why);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "failed");
    cJSON_AddStringToObject(o, "error", why);
    append_json(j, o);
}

// evaluate pulls the global model and scores it on the test set.
static cn_err evaluate(ps_client *pc, const mlp_shape *sh, const ds_dataset *test, mlp_ws *ws,
                       float *params, double *acc, double *loss, char *err, size_t errlen)
{
    ps_sync sy;
    cn_err e = ps_client_pull(pc, 0, false, params, &sy, err, errlen);
    if (e != CN_OK)
        return e;
    mlp_eval ev;
    e = mlp_evaluate(sh, params, test, ws, &ev, err, errlen);
    if (e != CN_OK)
        return e;
    *acc = ev.accuracy;
    *loss = ev.loss;
    mlp_eval_fini(&ev);
    return CN_OK;
}

typedef struct job_ctx {
    train_svc *s;
    job *j;
} job_ctx;

static void *job_main(void *arg)
{
    job_ctx *ctx = arg;
    train_svc *s = ctx->s;
    job *j = ctx->j;
    free(ctx);
    char err[CN_ERRBUF_LEN] = "";
    ds_dataset *test = NULL;
    mlp_ws *ws = NULL;
    float *params = NULL;
    ps_client *pc = NULL;
    const train_spec *sp = &j->spec;

    // The test set fixes the input width; classes cover both files.
    cn_err e = idx_load(sp->test_images, sp->test_labels, sp->test_rows, &test, err, sizeof err);
    int32_t *labels = NULL;
    size_t n_train = 0;
    if (e == CN_OK)
        e = idx_load_labels(sp->train_labels, sp->train_rows, &labels, &n_train, err, sizeof err);
    int n_classes = test ? test->n_classes : 0;
    for (size_t i = 0; labels && i < n_train; i++)
        if (labels[i] + 1 > n_classes)
            n_classes = labels[i] + 1;
    free(labels);
    if (e == CN_OK)
        e = mlp_shape_init(&j->shape, (int)test->n_features, sp->hidden, sp->n_hidden, n_classes,
                           err, sizeof err);
    if (e == CN_OK && j->shape.n_params < sp->shards)
        e = cn_errf(err, sizeof err, CN_EINVAL, "the model has fewer parameters than shards");
    const char **urlp = calloc(sp->shards, sizeof *urlp);
    params = e == CN_OK ? malloc(j->shape.n_params * sizeof *params) : NULL;
    ws = e == CN_OK ? mlp_ws_new(&j->shape, 1000) : NULL;
    if (e == CN_OK && (!urlp || !params || !ws))
        e = cn_errf(err, sizeof err, CN_ENOMEM, "out of memory");
    ps_shard_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    if (e == CN_OK) {
        uint64_t per = n_train / ((uint64_t)sp->workers * sp->batch);
        pthread_mutex_lock(&s->mu);
        j->steps_per_epoch = per > 0 ? per : 1;
        j->steps = j->steps_per_epoch * sp->epochs;
        pthread_mutex_unlock(&s->mu);
        for (uint32_t k = 0; k < sp->shards; k++)
            urlp[k] = j->urls[k];
        mlp_init_params(&j->shape, params, sp->seed);
        snprintf(cfg.job_id, sizeof cfg.job_id, "%s", j->id);
        cfg.shards = sp->shards;
        cfg.n_params = j->shape.n_params;
        cfg.optim = sp->optim;
        if (cfg.optim.schedule == OPTIM_SCHED_COSINE && cfg.optim.total_steps == 0)
            cfg.optim.total_steps = j->steps * (sp->mode == PS_BSP ? 1 : sp->workers);
        cfg.mode = sp->mode;
        cfg.staleness = sp->staleness;
        cfg.workers = sp->workers;
        snprintf(cfg.checkpoint_dir, sizeof cfg.checkpoint_dir, "%.1000s/checkpoints", j->dir);
        cfg.checkpoint_every = sp->checkpoint_every;
        ps_client_opts po = {.urls = urlp,
                             .shards = sp->shards,
                             .n_params = j->shape.n_params,
                             .job_id = j->id,
                             .token = s->token,
                             .tls = s->tls,
                             .worker = 0,
                             .call_timeout_ms = 10000,
                             .outage_ms = 20000};
        e = ps_client_open(&pc, &po, err, sizeof err);
        if (e == CN_OK)
            e = ps_client_configure(pc, &cfg, params, false, NULL, err, sizeof err);
    }
    pthread_mutex_lock(&s->mu);
    if (e != CN_OK) {
        job_fail(j, err);
        goto done;
    }
    j->state = J_RUNNING;
    j->running_ms = cn_now_ms();
    CN_INFO(
        "job %s running: model %d params, %u shards, %u workers, %s, %" PRIu64 " steps per worker",
        j->id, (int)j->shape.n_params, sp->shards, sp->workers, ps_mode_name(sp->mode), j->steps);
    pthread_cond_broadcast(&s->cv);
    uint64_t last_eval = cn_now_ms(), last_stats = cn_now_ms();
    while (!s->stopping && j->state == J_RUNNING) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        uint64_t now = cn_now_ms();
        bool all_done = true;
        for (uint32_t r = 0; r < sp->workers; r++)
            all_done = all_done && j->ranks[r].done;
        if (all_done || s->stopping || j->state != J_RUNNING)
            break;
        bool do_eval = now - last_eval >= (uint64_t)(sp->eval_every_s * 1000);
        bool do_stats = now - last_stats >= 500;
        if (!do_eval && !do_stats)
            continue;
        pthread_mutex_unlock(&s->mu);
        // Shards that lost the job (restarted) are configured again and
        // restore their checkpoints; the latest model stands in for one
        // that has none.
        bool lost = false;
        if (do_stats) {
            for (uint32_t k = 0; k < sp->shards; k++) {
                ps_stats st;
                if (ps_client_stats(pc, k, &st, err, sizeof err) == RPC_NOT_FOUND)
                    lost = true;
            }
            last_stats = now;
        }
        if (lost) {
            bool restored = false;
            cn_err re = ps_client_configure(pc, &cfg, params, true, &restored, err, sizeof err);
            pthread_mutex_lock(&s->mu);
            j->shard_restarts++;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "type", "shard_restart");
            cJSON_AddNumberToObject(o, "t", job_elapsed(j, cn_now_ms()));
            cJSON_AddBoolToObject(o, "restored", restored);
            cJSON_AddBoolToObject(o, "ok", re == CN_OK);
            append_json(j, o);
            pthread_mutex_unlock(&s->mu);
            CN_WARN("job %s: a shard lost the job; configured again (%s)", j->id,
                    re == CN_OK ? (restored ? "checkpoint restored" : "no checkpoint") : err);
        }
        double acc = 0, loss = 0;
        cn_err ee = CN_OK;
        if (do_eval) {
            ee = evaluate(pc, &j->shape, test, ws, params, &acc, &loss, err, sizeof err);
            last_eval = cn_now_ms();
        }
        pthread_mutex_lock(&s->mu);
        if (do_eval && ee == CN_OK && j->n_evals < MAX_EVALS) {
            eval_point *p = &j->evals[j->n_evals++];
            p->t = job_elapsed(j, cn_now_ms());
            p->step = slowest_step(j);
            p->acc = acc;
            p->loss = loss;
            p->sps = samples_per_s(j, cn_now_ms());
            j->acc = acc;
            j->test_loss = loss;
            if (sp->target_accuracy > 0 && acc >= sp->target_accuracy && j->time_to_target < 0)
                j->time_to_target = p->t;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "type", "eval");
            cJSON_AddNumberToObject(o, "t", p->t);
            cJSON_AddNumberToObject(o, "step", (double)p->step);
            cJSON_AddNumberToObject(o, "accuracy", acc);
            cJSON_AddNumberToObject(o, "loss", loss);
            cJSON_AddNumberToObject(o, "samples_per_s", p->sps);
            append_json(j, o);
        }
    }
    if (s->stopping && j->state == J_RUNNING)
        job_fail(j, "scheduler stopped");
    if (j->state != J_RUNNING)
        goto done;
    pthread_mutex_unlock(&s->mu);

    // Final: evaluate, save the model, shard stats, summary.
    double acc = 0, loss = 0;
    e = evaluate(pc, &j->shape, test, ws, params, &acc, &loss, err, sizeof err);
    char model_path[1500];
    snprintf(model_path, sizeof model_path, "%s/model.cnm", j->dir);
    if (e == CN_OK)
        e = mlp_model_save(model_path, &j->shape, params, err, sizeof err);
    uint64_t stale[PS_STALE_BUCKETS] = {0}, ckpts = 0, dups = 0;
    double apply_s = 0, wait_s = 0;
    for (uint32_t k = 0; e == CN_OK && k < sp->shards; k++) {
        ps_stats st;
        char e2[CN_ERRBUF_LEN];
        if (ps_client_stats(pc, k, &st, e2, sizeof e2) == RPC_OK) {
            for (int b = 0; b < PS_STALE_BUCKETS; b++)
                stale[b] += st.staleness[b];
            ckpts += st.checkpoints;
            dups += st.duplicates;
            apply_s += st.apply_seconds;
            wait_s += st.wait_seconds;
        }
    }
    pthread_mutex_lock(&s->mu);
    if (e != CN_OK) {
        job_fail(j, err);
        goto done;
    }
    j->acc = acc;
    j->test_loss = loss;
    j->finished_ms = cn_now_ms();
    memcpy(j->staleness, stale, sizeof stale);
    double el = job_elapsed(j, j->finished_ms);
    if (j->n_evals < MAX_EVALS) {
        eval_point *p = &j->evals[j->n_evals++];
        *p = (eval_point){el, acc, loss, samples_per_s(j, j->finished_ms), j->steps};
    }
    if (sp->target_accuracy > 0 && acc >= sp->target_accuracy && j->time_to_target < 0)
        j->time_to_target = el;
    double comp = 0, comm = 0;
    uint64_t samples = 0, bs = 0, br = 0;
    for (uint32_t r = 0; r < sp->workers; r++) {
        comp += j->ranks[r].compute_s;
        comm += j->ranks[r].comm_s;
        samples += j->ranks[r].samples;
        bs += j->ranks[r].bytes_sent;
        br += j->ranks[r].bytes_recv;
    }
    char model[256];
    mlp_shape_format(&j->shape, model, sizeof model);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "summary");
    cJSON_AddStringToObject(o, "job", j->id);
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddNumberToObject(o, "n_params", (double)j->shape.n_params);
    cJSON_AddStringToObject(o, "consistency", ps_mode_name(sp->mode));
    cJSON_AddNumberToObject(o, "staleness_bound", sp->staleness);
    cJSON_AddNumberToObject(o, "shards", sp->shards);
    cJSON_AddNumberToObject(o, "workers", sp->workers);
    cJSON_AddNumberToObject(o, "batch", sp->batch);
    cJSON_AddNumberToObject(o, "epochs", sp->epochs);
    cJSON_AddNumberToObject(o, "steps_per_worker", (double)j->steps);
    cJSON_AddNumberToObject(o, "seconds", el);
    cJSON_AddNumberToObject(o, "samples", (double)samples);
    cJSON_AddNumberToObject(o, "samples_per_s", samples_per_s(j, j->finished_ms));
    cJSON_AddNumberToObject(o, "test_accuracy", acc);
    cJSON_AddNumberToObject(o, "test_loss", loss);
    cJSON_AddNumberToObject(o, "target_accuracy", sp->target_accuracy);
    cJSON_AddNumberToObject(o, "time_to_target_s", j->time_to_target);
    cJSON_AddNumberToObject(o, "compute_seconds", comp);
    cJSON_AddNumberToObject(o, "comm_seconds", comm);
    cJSON_AddNumberToObject(o, "compute_comm_ratio", comm > 0 ? comp / comm : 0);
    cJSON_AddNumberToObject(o, "bytes_sent", (double)bs);
    cJSON_AddNumberToObject(o, "bytes_received", (double)br);
    cJSON_AddNumberToObject(o, "shard_apply_seconds", apply_s);
    cJSON_AddNumberToObject(o, "shard_wait_seconds", wait_s);
    cJSON_AddNumberToObject(o, "checkpoints", (double)ckpts);
    cJSON_AddNumberToObject(o, "duplicate_pushes", (double)dups);
    cJSON_AddNumberToObject(o, "shard_restarts", j->shard_restarts);
    cJSON *hist = cJSON_AddArrayToObject(o, "staleness_hist");
    for (int b = 0; b < PS_STALE_BUCKETS; b++)
        cJSON_AddItemToArray(hist, cJSON_CreateNumber((double)stale[b]));
    cJSON_AddStringToObject(o, "model_path", model_path);
    char *pretty = cJSON_Print(o);
    if (pretty) {
        char sp_path[1500], e3[CN_ERRBUF_LEN];
        snprintf(sp_path, sizeof sp_path, "%s/summary.json", j->dir);
        cn_file_write_atomic(sp_path, pretty, strlen(pretty), e3, sizeof e3);
        cJSON_free(pretty);
    }
    append_json(j, o);
    j->state = J_DONE;
    CN_INFO("job %s done: test accuracy %.4f, %.0f samples/s, %.1f s", j->id, acc,
            samples_per_s(j, j->finished_ms), el);
done:
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    ps_client_close(pc);
    free(urlp);
    mlp_ws_free(ws);
    free(params);
    ds_dataset_free(test);
    return NULL;
}

// ------------------------------------------------------------ handlers

static void h_submit(rpc_call *call, void *arg)
{
    train_svc *s = arg;
    Canopy__Train__SubmitRequest *req = (Canopy__Train__SubmitRequest *)rpc_call_unpack(
        call, &canopy__train__submit_request__descriptor);
    if (req == NULL)
        return;
    char err[CN_ERRBUF_LEN];
    job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        canopy__train__submit_request__free_unpacked(req, NULL);
        rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "Submit: out of memory");
        return;
    }
    j->log_fd = -1;
    j->time_to_target = -1;
    cn_err e = train_spec_parse(req->spec_json, req->spec_name[0] ? req->spec_name : "job",
                                &j->spec, err, sizeof err);
    if (e != CN_OK) {
        canopy__train__submit_request__free_unpacked(req, NULL);
        job_free(j);
        rpc_call_fail(call, RPC_INVALID_ARGUMENT, "%s", err);
        return;
    }
    const train_spec *sp = &j->spec;
    if (sp->mode == PS_BSP && sp->partition != PART_IID && sp->partition != PART_CONTIGUOUS)
        CN_INFO("job %s: BSP with a skewed partition: workers cycle over their own rows", sp->name);
    // Shards: the live ps nodes with the lowest ranks.
    cluster_node *nodes = NULL;
    size_t n = 0;
    sched_members_snapshot(s->members, &nodes, &n);
    j->urls = calloc(sp->shards, sizeof *j->urls);
    j->ranks = calloc(sp->workers, sizeof *j->ranks);
    j->evals = calloc(MAX_EVALS, sizeof *j->evals);
    uint32_t found = 0;
    for (size_t i = 0; i < n && j->urls && found < sp->shards; i++)
        if (nodes[i].role == CLUSTER_ROLE_PS && nodes[i].state != CLUSTER_NODE_DEAD)
            snprintf(j->urls[found++], sizeof j->urls[0], "%s", nodes[i].address);
    free(nodes);
    if (!j->urls || !j->ranks || !j->evals) {
        canopy__train__submit_request__free_unpacked(req, NULL);
        job_free(j);
        rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "Submit: out of memory");
        return;
    }
    if (found < sp->shards) {
        uint32_t want = sp->shards;
        canopy__train__submit_request__free_unpacked(req, NULL);
        job_free(j);
        rpc_call_fail(call, RPC_FAILED_PRECONDITION,
                      "Submit: the job wants %u shards but %u ps nodes are alive; start more "
                      "(`canopy ps`) or lower \"shards\"",
                      want, found);
        return;
    }
    // A unique, readable id: name-YYYYmmdd-HHMMSS-xxxx.
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    uint16_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd = (uint16_t)cn_now_ns();
    snprintf(j->id, sizeof j->id, "%.60s-%04d%02d%02d-%02d%02d%02d-%04x", sp->name,
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rnd);
    snprintf(j->dir, sizeof j->dir, "%s/train/%s", s->state_dir, j->id);
    e = cn_file_mkdirs(j->dir, err, sizeof err);
    char path[1500];
    if (e == CN_OK) {
        snprintf(path, sizeof path, "%s/spec.json", j->dir);
        e = cn_file_write_atomic(path, req->spec_json, strlen(req->spec_json), err, sizeof err);
    }
    if (e == CN_OK) {
        snprintf(path, sizeof path, "%s/results.jsonl", j->dir);
        j->log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (j->log_fd < 0)
            e = cn_errf(err, sizeof err, CN_EIO, "cannot open %s", path);
    }
    canopy__train__submit_request__free_unpacked(req, NULL);
    if (e != CN_OK) {
        job_free(j);
        rpc_call_fail(call, RPC_INTERNAL, "Submit: %s", err);
        return;
    }
    pthread_mutex_lock(&s->mu);
    job *busy = active_job(s);
    if (busy || s->stopping) {
        char other[PS_JOB_ID_LEN];
        snprintf(other, sizeof other, "%s", busy ? busy->id : "");
        pthread_mutex_unlock(&s->mu);
        job_free(j);
        if (busy)
            rpc_call_fail(call, RPC_FAILED_PRECONDITION,
                          "Submit: job %s is running; shards serve one job at a time", other);
        else
            rpc_call_fail(call, RPC_UNAVAILABLE, "Submit: the scheduler is stopping");
        return;
    }
    j->state = J_CONFIGURING;
    j->started_ms = cn_now_ms();
    job_ctx *ctx = malloc(sizeof *ctx);
    if (ctx)
        *ctx = (job_ctx){s, j};
    if (ctx == NULL || pthread_create(&j->thread, NULL, job_main, ctx) != 0) {
        pthread_mutex_unlock(&s->mu);
        free(ctx);
        job_free(j);
        rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "Submit: cannot start the job thread");
        return;
    }
    j->thread_started = true;
    j->next = s->jobs;
    s->jobs = j;
    Canopy__Train__SubmitReply rep = CANOPY__TRAIN__SUBMIT_REPLY__INIT;
    rep.job_id = j->id;
    rep.results_dir = j->dir;
    CN_INFO("job %s submitted: %u shards, %u workers, %s", j->id, sp->shards, sp->workers,
            ps_mode_name(sp->mode));
    rpc_call_reply(call, &rep.base, NULL, 0);
    pthread_mutex_unlock(&s->mu);
}

static void h_get_assignment(rpc_call *call, void *arg)
{
    train_svc *s = arg;
    Canopy__Train__GetAssignmentRequest *req =
        (Canopy__Train__GetAssignmentRequest *)rpc_call_unpack(
            call, &canopy__train__get_assignment_request__descriptor);
    if (req == NULL)
        return;
    uint64_t node = req->node_id;
    canopy__train__get_assignment_request__free_unpacked(req, NULL);
    Canopy__Train__GetAssignmentReply rep = CANOPY__TRAIN__GET_ASSIGNMENT_REPLY__INIT;
    pthread_mutex_lock(&s->mu);
    rep.shutdown = s->stopping;
    job *j = s->stopping ? NULL : active_job(s);
    int rank = -1;
    if (j && j->state == J_RUNNING && node != 0) {
        for (uint32_t r = 0; r < j->spec.workers && rank < 0; r++)
            if (j->ranks[r].node == node && !j->ranks[r].done)
                rank = (int)r; // the same worker asking again gets its rank back
        for (uint32_t r = 0; r < j->spec.workers && rank < 0; r++)
            if (j->ranks[r].node == 0) {
                rank = (int)r;
                j->ranks[r].node = node;
                j->ranks[r].last_ms = cn_now_ms();
            }
    }
    if (rank < 0) {
        pthread_mutex_unlock(&s->mu);
        rpc_call_reply(call, &rep.base, NULL, 0);
        return;
    }
    const train_spec *sp = &j->spec;
    Canopy__Train__Assignment a = CANOPY__TRAIN__ASSIGNMENT__INIT;
    char *urls[64];
    uint32_t widths[MLP_MAX_LAYERS + 1];
    for (uint32_t k = 0; k < sp->shards; k++)
        urls[k] = j->urls[k];
    for (int l = 0; l <= j->shape.n_layers; l++)
        widths[l] = (uint32_t)j->shape.widths[l];
    a.job_id = j->id;
    a.rank = (uint32_t)rank;
    a.workers = sp->workers;
    a.n_shard_urls = sp->shards;
    a.shard_urls = urls;
    a.n_params = j->shape.n_params;
    a.n_widths = (size_t)j->shape.n_layers + 1;
    a.widths = widths;
    a.train_images = (char *)sp->train_images;
    a.train_labels = (char *)sp->train_labels;
    a.train_rows = sp->train_rows;
    a.partition = (char *)part_kind_name(sp->partition);
    a.alpha = sp->alpha;
    a.k_labels = sp->k_labels;
    a.seed = sp->seed;
    a.batch = sp->batch;
    a.epochs = sp->epochs;
    a.steps_per_epoch = j->steps_per_epoch;
    a.consistency = (char *)ps_mode_name(sp->mode);
    a.threads = sp->threads;
    a.report_every_s = sp->report_every_s;
    a.call_timeout_ms = 30000;
    rep.has_work = true;
    rep.assignment = &a;
    CN_INFO("job %s: rank %d -> worker %016" PRIx64, j->id, rank, node);
    rpc_call_reply(call, &rep.base, NULL, 0);
    pthread_mutex_unlock(&s->mu);
}

static void h_report(rpc_call *call, void *arg)
{
    train_svc *s = arg;
    Canopy__Train__WorkerReport *r = (Canopy__Train__WorkerReport *)rpc_call_unpack(
        call, &canopy__train__worker_report__descriptor);
    if (r == NULL)
        return;
    Canopy__Train__ReportReply rep = CANOPY__TRAIN__REPORT_REPLY__INIT;
    pthread_mutex_lock(&s->mu);
    job *j = find_job(s, r->job_id);
    if (j == NULL || r->rank >= j->spec.workers) {
        pthread_mutex_unlock(&s->mu);
        rpc_call_fail(call, RPC_NOT_FOUND, "Report: no job %s with rank %u", r->job_id, r->rank);
        canopy__train__worker_report__free_unpacked(r, NULL);
        return;
    }
    rank_info *ri = &j->ranks[r->rank];
    rep.stop = j->state != J_RUNNING || (ri->node != 0 && ri->node != r->node_id);
    if (!rep.stop) {
        ri->step = r->step;
        ri->epoch = r->epoch;
        ri->loss = r->loss;
        ri->samples = r->samples;
        ri->seconds = r->seconds;
        ri->compute_s = r->compute_seconds;
        ri->comm_s = r->comm_seconds;
        ri->bytes_sent = r->bytes_sent;
        ri->bytes_recv = r->bytes_received;
        ri->last_ms = cn_now_ms();
        ri->done = r->done;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "worker");
        cJSON_AddNumberToObject(o, "t", job_elapsed(j, cn_now_ms()));
        cJSON_AddNumberToObject(o, "rank", r->rank);
        cJSON_AddNumberToObject(o, "step", (double)r->step);
        cJSON_AddNumberToObject(o, "epoch", r->epoch);
        cJSON_AddNumberToObject(o, "loss", r->loss);
        cJSON_AddNumberToObject(o, "samples", (double)r->samples);
        cJSON_AddNumberToObject(o, "samples_per_s",
                                r->seconds > 0 ? (double)r->samples / r->seconds : 0);
        cJSON_AddNumberToObject(o, "compute_seconds", r->compute_seconds);
        cJSON_AddNumberToObject(o, "comm_seconds", r->comm_seconds);
        cJSON_AddBoolToObject(o, "done", r->done);
        if (r->error[0])
            cJSON_AddStringToObject(o, "error", r->error);
        append_json(j, o);
        if (r->error[0]) {
            char why[600];
            snprintf(why, sizeof why, "worker rank %u: %s", r->rank, r->error);
            job_fail(j, why);
        }
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    canopy__train__worker_report__free_unpacked(r, NULL);
    rpc_call_reply(call, &rep.base, NULL, 0);
}

static void h_status(rpc_call *call, void *arg)
{
    train_svc *s = arg;
    Canopy__Train__StatusRequest *r = (Canopy__Train__StatusRequest *)rpc_call_unpack(
        call, &canopy__train__status_request__descriptor);
    if (r == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    job *j = r->job_id[0] ? find_job(s, r->job_id) : s->jobs;
    if (j == NULL) {
        pthread_mutex_unlock(&s->mu);
        rpc_call_fail(call, RPC_NOT_FOUND, "Status: no training job \"%s\"", r->job_id);
        canopy__train__status_request__free_unpacked(r, NULL);
        return;
    }
    canopy__train__status_request__free_unpacked(r, NULL);
    uint64_t now = cn_now_ms();
    Canopy__Train__StatusReply rep = CANOPY__TRAIN__STATUS_REPLY__INIT;
    rep.job_id = j->id;
    rep.state = (char *)state_name(j->state);
    rep.epochs = j->spec.epochs;
    rep.steps = j->steps;
    rep.step = slowest_step(j);
    rep.epoch = j->steps_per_epoch ? (uint32_t)(rep.step / j->steps_per_epoch) : 0;
    double loss = 0, comp = 0, comm = 0;
    uint32_t active = 0;
    for (uint32_t i = 0; i < j->spec.workers; i++) {
        loss += j->ranks[i].loss;
        comp += j->ranks[i].compute_s;
        comm += j->ranks[i].comm_s;
        active += j->ranks[i].node != 0 && !j->ranks[i].done;
    }
    rep.loss = loss / j->spec.workers;
    rep.accuracy = j->n_evals ? j->acc : -1;
    rep.test_loss = j->test_loss;
    rep.samples_per_s = samples_per_s(j, now);
    rep.elapsed_seconds = j->running_ms ? job_elapsed(j, now) : 0;
    rep.results_dir = j->dir;
    char model_path[1500] = "";
    if (j->state == J_DONE)
        snprintf(model_path, sizeof model_path, "%s/model.cnm", j->dir);
    rep.model_path = model_path;
    rep.error = j->error;
    rep.workers_active = active;
    rep.compute_comm_ratio = comm > 0 ? comp / comm : 0;
    rep.n_params = j->shape.n_params;
    rep.shard_restarts = j->shard_restarts;
    Canopy__Train__EvalPoint *pts = calloc(j->n_evals + 1, sizeof *pts);
    Canopy__Train__EvalPoint **pp = calloc(j->n_evals + 1, sizeof *pp);
    if (pts && pp) {
        for (size_t i = 0; i < j->n_evals; i++) {
            Canopy__Train__EvalPoint init = CANOPY__TRAIN__EVAL_POINT__INIT;
            pts[i] = init;
            pts[i].t = j->evals[i].t;
            pts[i].step = j->evals[i].step;
            pts[i].accuracy = j->evals[i].acc;
            pts[i].loss = j->evals[i].loss;
            pts[i].samples_per_s = j->evals[i].sps;
            pp[i] = &pts[i];
        }
        rep.n_evals = j->n_evals;
        rep.evals = pp;
    }
    if (j->state == J_DONE) {
        rep.n_staleness = PS_STALE_BUCKETS;
        rep.staleness = j->staleness;
    }
    rpc_call_reply(call, &rep.base, NULL, 0);
    pthread_mutex_unlock(&s->mu);
    free(pts);
    free(pp);
}

// on_dead frees the rank of a dead worker so another worker (or the same
// one, restarted) takes it over and continues from the shards' clocks.
static void on_dead(uint64_t node, int role, uint32_t rank, void *arg)
{
    (void)rank;
    train_svc *s = arg;
    if (role != CLUSTER_ROLE_WORKER)
        return;
    pthread_mutex_lock(&s->mu);
    job *j = active_job(s);
    for (uint32_t r = 0; j && r < j->spec.workers; r++)
        if (j->ranks[r].node == node && !j->ranks[r].done) {
            CN_WARN("job %s: worker of rank %u stopped heartbeating; its rank is free", j->id, r);
            j->ranks[r].node = 0;
        }
    pthread_mutex_unlock(&s->mu);
}

// ------------------------------------------------------------ lifecycle

cn_err train_svc_new(train_svc **out, rpc_server *server, sched_members *members,
                     const char *state_dir, const char *token, rpc_tls tls, char *err,
                     size_t errlen)
{
    *out = NULL;
    train_svc *s = calloc(1, sizeof *s);
    if (s == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->members = members;
    s->tls = tls;
    snprintf(s->state_dir, sizeof s->state_dir, "%s", state_dir);
    snprintf(s->token, sizeof s->token, "%s", token ? token : "");
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/train", state_dir);
    cn_err e = cn_file_mkdirs(dir, err, errlen);
    if (e != CN_OK) {
        train_svc_free(s);
        return e;
    }
    struct {
        const char *m;
        rpc_handler_fn fn;
    } hs[] = {{"Submit", h_submit},
              {"GetAssignment", h_get_assignment},
              {"Report", h_report},
              {"Status", h_status}};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if ((e = rpc_server_register(server, "Train", hs[i].m, hs[i].fn, s, 0)) != CN_OK) {
            train_svc_free(s);
            return cn_errf(err, errlen, e, "cannot register Train/%s", hs[i].m);
        }
    sched_members_on_dead(members, on_dead, s);
    *out = s;
    return CN_OK;
}

void train_svc_stop(train_svc *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (job *j = s->jobs; j; j = j->next)
        if (j->thread_started) {
            pthread_join(j->thread, NULL);
            j->thread_started = false;
        }
}

void train_svc_free(train_svc *s)
{
    if (s == NULL)
        return;
    train_svc_stop(s);
    for (job *j = s->jobs, *next; j; j = next) {
        next = j->next;
        job_free(j);
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
