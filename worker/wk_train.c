// wk_train.c: the worker's training loop (see wk_train.h).
//
// One step at clock t: gather a batch from this rank's rows (a per-epoch
// shuffle seeded by (seed, rank, epoch), cycling when the part is smaller
// than steps_per_epoch * batch), compute the gradient with an mlp_trainer
// on the worker's threads, using the values pulled for t, and push it with
// ps_client_push_pull, which returns the values for t + 1 in the same round
// trip.
#include "worker/wk_train.h"

#include "worker/wk_loop.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cn_clock.h"
#include "common/cn_log.h"
#include "common/cn_rand.h"
#include "ml/idx.h"
#include "ml/mlp.h"
#include "ml/partition.h"
#include "ps/ps.h"
#include "train.pb-c.h"

struct wk_train {
    wk_train_opts o;
    char name[128];
    wk_loop loop; // client to the scheduler, thread, stop flag
    // the training data in memory, kept across jobs with the same files
    char ds_key[2200];
    ds_dataset *ds;
};

// job_run holds one assignment's progress.
typedef struct job_run {
    const Canopy__Train__Assignment *a;
    uint64_t t0_ns;
    uint64_t samples;
    double compute_s, comm_s;
    double loss_sum;
    uint64_t loss_n;
    ps_client *pc;
} job_run;

// report sends metrics; returns true if the scheduler says stop.
static bool report(wk_train *w, job_run *jr, uint64_t step, uint32_t epoch, bool done,
                   const char *error)
{
    const Canopy__Train__Assignment *a = jr->a;
    Canopy__Train__WorkerReport r = CANOPY__TRAIN__WORKER_REPORT__INIT;
    r.job_id = a->job_id;
    r.rank = a->rank;
    r.node_id = w->o.node_id;
    r.step = step;
    r.epoch = epoch;
    r.loss = jr->loss_n ? jr->loss_sum / (double)jr->loss_n : 0;
    r.samples = jr->samples;
    r.seconds = (double)(cn_now_ns() - jr->t0_ns) * 1e-9;
    r.compute_seconds = jr->compute_s;
    r.comm_seconds = jr->comm_s;
    uint64_t sent = 0, recv = 0;
    if (jr->pc)
        ps_client_bytes(jr->pc, &sent, &recv);
    r.bytes_sent = sent;
    r.bytes_received = recv;
    r.done = done;
    r.error = (char *)(error ? error : "");
    Canopy__Train__ReportReply *rep = NULL;
    rpc_code code =
        cluster_call(w->loop.client, "Train", "Report", &r.base, RPC_IDEMPOTENT, 10000,
                     &canopy__train__report_reply__descriptor, (ProtobufCMessage **)&rep, NULL, 0);
    bool stop = code == RPC_NOT_FOUND || (code == RPC_OK && rep && rep->stop);
    if (rep)
        protobuf_c_message_free_unpacked(&rep->base, NULL);
    jr->loss_sum = 0;
    jr->loss_n = 0;
    return stop;
}

static cn_err load_data(wk_train *w, const Canopy__Train__Assignment *a, char *err, size_t errlen)
{
    char key[sizeof w->ds_key];
    snprintf(key, sizeof key, "%s|%s|%" PRIu64, a->train_images, a->train_labels, a->train_rows);
    if (w->ds && strcmp(key, w->ds_key) == 0)
        return CN_OK;
    ds_dataset_free(w->ds);
    w->ds = NULL;
    cn_err e = idx_load(a->train_images, a->train_labels, a->train_rows, &w->ds, err, errlen);
    if (e == CN_OK)
        snprintf(w->ds_key, sizeof w->ds_key, "%s", key);
    return e;
}

static void shuffle(size_t *v, size_t n, uint64_t seed, uint64_t rank, uint64_t epoch)
{
    cn_rng r;
    cn_rng_seed(&r, seed ^ (epoch * 0x9e3779b97f4a7c15ull), rank + 1);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)cn_rng_below(&r, i);
        size_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static void run_job(wk_train *w, const Canopy__Train__Assignment *a)
{
    char err[CN_ERRBUF_LEN] = "";
    job_run jr = {.a = a, .t0_ns = cn_now_ns()};
    part_set *parts = NULL;
    mlp_trainer *tr = NULL;
    float *params = NULL, *grad = NULL;
    size_t *order = NULL, *idx = NULL;
    uint64_t step = 0;
    uint32_t epoch = 0;
    mlp_shape sh;
    int hidden[MLP_MAX_LAYERS];
    char status[160];
    snprintf(status, sizeof status, "training %s rank %u", a->job_id, a->rank);
    if (w->o.agent)
        cluster_agent_set_status(w->o.agent, status);
    CN_INFO("job %s: rank %u of %u, %zu shards", a->job_id, a->rank, a->workers, a->n_shard_urls);

    cn_err e = CN_OK;
    if (a->n_widths < 2 || a->n_widths > MLP_MAX_LAYERS + 1 || a->batch == 0 ||
        a->n_shard_urls == 0 || a->rank >= a->workers)
        e = cn_errf(err, sizeof err, CN_EINVAL, "malformed assignment");
    for (size_t l = 1; e == CN_OK && l + 1 < a->n_widths; l++)
        hidden[l - 1] = (int)a->widths[l];
    if (e == CN_OK)
        e = mlp_shape_init(&sh, (int)a->widths[0], hidden, (int)a->n_widths - 2,
                           (int)a->widths[a->n_widths - 1], err, sizeof err);
    if (e == CN_OK && sh.n_params != a->n_params)
        e = cn_errf(err, sizeof err, CN_EINVAL, "layout has %zu parameters, the job says %" PRIu64,
                    sh.n_params, a->n_params);
    if (e == CN_OK)
        e = load_data(w, a, err, sizeof err);
    if (e == CN_OK && (w->ds->n_features != (size_t)a->widths[0]))
        e = cn_errf(err, sizeof err, CN_EINVAL, "%s has %zu features, the model takes %u",
                    a->train_images, w->ds->n_features, a->widths[0]);
    if (e == CN_OK) {
        part_cfg pc;
        part_kind kind;
        if (part_kind_parse(a->partition, &kind) != CN_OK)
            kind = PART_IID;
        part_cfg_default(&pc, kind, (int)a->workers);
        pc.seed = a->seed;
        pc.alpha = a->alpha;
        pc.k = (int)a->k_labels;
        e = part_split(&pc, w->ds->y, w->ds->n_rows, w->ds->n_classes, &parts, err, sizeof err);
    }
    size_t mine = 0;
    if (e == CN_OK) {
        mine = parts->sizes[a->rank];
        if (mine == 0)
            e = cn_errf(err, sizeof err, CN_EINVAL, "rank %u got no training rows", a->rank);
    }
    if (e == CN_OK) {
        tr = mlp_trainer_new(&sh, (int)a->batch, w->o.threads > 0 ? w->o.threads : 1);
        params = malloc(sh.n_params * sizeof *params);
        grad = malloc(sh.n_params * sizeof *grad);
        order = malloc(mine * sizeof *order);
        idx = malloc(a->batch * sizeof *idx);
        if (!tr || !params || !grad || !order || !idx)
            e = cn_errf(err, sizeof err, CN_ENOMEM, "out of memory");
    }
    if (e == CN_OK) {
        ps_client_opts po = {.urls = (const char *const *)a->shard_urls,
                             .shards = (uint32_t)a->n_shard_urls,
                             .n_params = sh.n_params,
                             .job_id = a->job_id,
                             .token = w->o.token,
                             .tls = w->o.tls,
                             .worker = a->rank,
                             .call_timeout_ms = a->call_timeout_ms};
        e = ps_client_open(&jr.pc, &po, err, sizeof err);
    }
    ps_sync sy;
    bool bsp = strcmp(a->consistency, "bsp") == 0;
    uint64_t total = a->steps_per_epoch * a->epochs;
    // Start where the shards expect this rank (0 for a new job).
    if (e == CN_OK) {
        uint64_t t0 = cn_now_ns();
        e = ps_client_pull(jr.pc, 0, false, params, &sy, err, sizeof err);
        if (e == CN_OK) {
            step = sy.worker_clock;
            if (bsp && sy.clock > step)
                step = sy.clock;
            e = ps_client_pull(jr.pc, step, true, params, &sy, err, sizeof err);
        }
        jr.comm_s += (double)(cn_now_ns() - t0) * 1e-9;
    }
    jr.t0_ns = cn_now_ns(); // throughput counts training, not data loading
    jr.comm_s = 0;
    uint64_t last_report = cn_now_ms();
    uint64_t report_ms = (uint64_t)(a->report_every_s > 0 ? a->report_every_s * 1000 : 500);
    uint64_t cur_epoch = UINT64_MAX;
    bool stop = false;
    while (e == CN_OK && step < total && !w->loop.stopping && !stop) {
        uint64_t ep = step / a->steps_per_epoch;
        if (ep != cur_epoch) {
            memcpy(order, parts->rows[a->rank], mine * sizeof *order);
            shuffle(order, mine, a->seed, a->rank, ep);
            cur_epoch = ep;
        }
        epoch = (uint32_t)ep;
        uint64_t pos = (step % a->steps_per_epoch) * a->batch;
        for (uint32_t i = 0; i < a->batch; i++)
            idx[i] = order[(pos + i) % mine];
        uint64_t t0 = cn_now_ns();
        // The trainer's threads gather the rows and compute the gradient.
        mlp_batch b = {.d = w->ds, .idx = idx, .n = (int)a->batch};
        float loss;
        mlp_trainer_grad(tr, params, &b, grad, &loss);
        uint64_t t1 = cn_now_ns();
        jr.compute_s += (double)(t1 - t0) * 1e-9;
        e = ps_client_push_pull(jr.pc, step, sy.version, grad, params, &sy, err, sizeof err);
        jr.comm_s += (double)(cn_now_ns() - t1) * 1e-9;
        if (e != CN_OK)
            break;
        jr.samples += a->batch;
        jr.loss_sum += loss;
        jr.loss_n++;
        step = bsp && sy.clock > step + 1 ? sy.clock : step + 1;
        // The first step is always reported: it is the loss the run starts from.
        if (jr.samples == a->batch || cn_now_ms() - last_report >= report_ms) {
            stop = report(w, &jr, step, epoch, false, NULL);
            last_report = cn_now_ms();
        }
    }
    if (e != CN_OK) {
        CN_ERROR("job %s rank %u: %s", a->job_id, a->rank, err);
        report(w, &jr, step, epoch, false, err);
    } else if (!w->loop.stopping && !stop) {
        report(w, &jr, step, epoch, true, NULL);
        char last[320];
        uint64_t retries = ps_client_retries(jr.pc, last, sizeof last);
        CN_INFO("job %s rank %u done: %" PRIu64 " steps, %.0f samples/s, %" PRIu64
                " shard calls retried%s%s",
                a->job_id, a->rank, step,
                (double)jr.samples / ((double)(cn_now_ns() - jr.t0_ns) * 1e-9), retries,
                retries ? "; last: " : "", retries ? last : "");
    }
    ps_client_close(jr.pc);
    part_set_free(parts);
    mlp_trainer_free(tr);
    free(params);
    free(grad);
    free(order);
    free(idx);
    if (w->o.agent)
        cluster_agent_set_status(w->o.agent, "idle");
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *loop_main(void *arg)
{
    wk_train *w = arg;
    int poll = w->o.poll_ms > 0 ? w->o.poll_ms : 200;
    while (!w->loop.stopping) {
        Canopy__Train__GetAssignmentRequest req = CANOPY__TRAIN__GET_ASSIGNMENT_REQUEST__INIT;
        req.node_id = w->o.node_id;
        req.name = w->name;
        Canopy__Train__GetAssignmentReply *rep = NULL;
        rpc_code code = cluster_call(w->loop.client, "Train", "GetAssignment", &req.base, 0, 5000,
                                     &canopy__train__get_assignment_reply__descriptor,
                                     (ProtobufCMessage **)&rep, NULL, 0);
        if (code == RPC_OK && rep && rep->has_work && rep->assignment)
            run_job(w, rep->assignment);
        else
            sleep_ms(poll);
        if (rep)
            protobuf_c_message_free_unpacked(&rep->base, NULL);
    }
    return NULL;
}

cn_err wk_train_start(wk_train **out, const wk_train_opts *opts, char *err, size_t errlen)
{
    *out = NULL;
    wk_train *w = calloc(1, sizeof *w);
    if (w == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    w->o = *opts;
    snprintf(w->name, sizeof w->name, "%s", opts->name ? opts->name : "");
    // The gradient runs on an mlp_trainer with the worker's threads, each
    // calling single-threaded BLAS.
    mlp_set_threads(1);
    cn_err e;
    if ((e = wk_loop_start(&w->loop, opts->scheduler_url, opts->token, opts->tls, opts->node_id,
                           loop_main, w, "training", err, errlen)) != CN_OK) {
        free(w);
        return e;
    }
    *out = w;
    return CN_OK;
}

void wk_train_stop(wk_train *w)
{
    if (w == NULL)
        return;
    wk_loop_stop(&w->loop);
    ds_dataset_free(w->ds);
    free(w);
}
