// sched_fed.c: the round driver of a federated training job ("mode":
// "federated"), the scheduler's side of FEDn's reducer and combiner.
//
// The job's thread connects the shards in round mode (their clock is the
// open round) and runs the rounds: select clients with the seeded sampler
// (federated/fed.h), drop some with the dropout probability, add one work
// item per remaining client (pinned to the client's worker when clients
// hold their own data), wait until every selected client is accounted for,
// the quorum of updates is in or the round's deadline passes, cancel the
// items still running (their updates come late and the shards refuse
// them), close the round on every shard (the strategy's server step),
// evaluate the new global model and record a "round" record. A client
// item: pull the global model, train locally, push the delta with its
// sample count to every shard, report (worker/wk_fed.c).
//
// After a scheduler crash the thread reconnects; the round the shards are
// at is the round that runs next, and a round that was open is run again
// from its start (its partial updates discarded).
#include "scheduler/sched_train_impl.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_clock.h"
#include "common/cn_log.h"
#include "common/cn_rand.h"
#include "ml/idx.h"
#include "ml/partition.h"
#include "proto/cluster_client.h"

#define MAX_ROUNDS_KEPT 4096

enum { C_OPEN, C_DONE, C_FAILED, C_LATE };

typedef struct client_item {
    uint64_t round;
    uint32_t client;
    int status;
    double compute_s, upload_s, download_s, samples, loss;
    uint64_t bytes_up, bytes_down;
} client_item;

typedef struct round_point {
    uint64_t round;
    double t, acc, loss, seconds, aggregation_s;
    uint32_t selected, finished, dropped, late, failed;
    double bytes_up, bytes_down, samples;
    double compute_s, comm_s; // summed over the round's finished clients
} round_point;

typedef struct fed_run {
    client_item *items; // by kernel item index
    size_t n_items, cap;
    uint64_t round; // the open round
    uint32_t selected, dropped;
    uint64_t round_start_ms;
    round_point *rounds; // closed rounds (replayed or run)
    size_t n_rounds;
    bool warm; // a round has closed with an update: the clients hold their data
    double bytes_total, bytes_up, bytes_down, samples, compute_s, comm_s;
    double seconds_total, aggregation_total;
    double target_round, target_seconds, target_bytes; // -1 = not reached
    uint32_t clients_seen[PS_MAX_WORKERS / 32 + 1];    // local data: recorded clients
} fed_run;

static fed_run *state(train_job *t)
{
    if (t->fed == NULL) {
        t->fed = calloc(1, sizeof *t->fed);
        CN_ASSERT(t->fed != NULL);
        t->fed->rounds = calloc(MAX_ROUNDS_KEPT, sizeof *t->fed->rounds);
        CN_ASSERT(t->fed->rounds != NULL);
        t->fed->target_round = t->fed->target_seconds = t->fed->target_bytes = -1;
    }
    return t->fed;
}

void sched_fed_free(train_job *t)
{
    if (t->fed == NULL)
        return;
    free(t->fed->items);
    free(t->fed->rounds);
    free(t->fed);
    t->fed = NULL;
}

// note_round keeps a closed round for the status and the summary.
static void note_round(train_job *t, const round_point *p)
{
    fed_run *f = state(t);
    if (f->n_rounds < MAX_ROUNDS_KEPT)
        f->rounds[f->n_rounds++] = *p;
    f->warm = f->warm || p->finished > 0;
    f->bytes_total += p->bytes_up + p->bytes_down;
    f->bytes_up += p->bytes_up;
    f->bytes_down += p->bytes_down;
    f->samples += p->samples;
    f->compute_s += p->compute_s;
    f->comm_s += p->comm_s;
    f->seconds_total += p->seconds;
    f->aggregation_total += p->aggregation_s;
    double target = t->spec.target_accuracy;
    if (target > 0 && p->acc >= target && f->target_round < 0) {
        f->target_round = (double)p->round + 1;
        f->target_seconds = p->t;
        f->target_bytes = f->bytes_total;
    }
}

void sched_fed_replay(sched_job *j, const cJSON *rec)
{
    train_job *t = sched_job_impl(j);
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "type"));
    if (type == NULL || strcmp(type, "round") != 0)
        return;
    round_point p = {
        .round = (uint64_t)sched_train_num(rec, "round"),
        .t = sched_train_num(rec, "t"),
        .acc = sched_train_num(rec, "accuracy"),
        .loss = sched_train_num(rec, "loss"),
        .seconds = sched_train_num(rec, "seconds"),
        .aggregation_s = sched_train_num(rec, "aggregation_seconds"),
        .selected = (uint32_t)sched_train_num(rec, "selected"),
        .finished = (uint32_t)sched_train_num(rec, "finished"),
        .dropped = (uint32_t)sched_train_num(rec, "dropped"),
        .late = (uint32_t)sched_train_num(rec, "late"),
        .failed = (uint32_t)sched_train_num(rec, "failed"),
        .bytes_up = sched_train_num(rec, "bytes_up"),
        .bytes_down = sched_train_num(rec, "bytes_down"),
        .samples = sched_train_num(rec, "samples"),
    };
    // the record keeps per-client means; the run's totals are sums
    p.compute_s = sched_train_num(rec, "client_compute_seconds") * p.finished;
    p.comm_s = (sched_train_num(rec, "client_upload_seconds") +
                sched_train_num(rec, "client_download_seconds")) *
               p.finished;
    note_round(t, &p);
}

// ------------------------------------------------------------ clients

// log_clients records each client's part of the data: sample count, label
// histogram and how far it is from the whole set's (label skew).
static void log_clients(run *r)
{
    train_job *t = r->t;
    const train_spec *sp = &t->spec;
    char path[1200], err[CN_ERRBUF_LEN];
    sched_jobs_data_path(r->k, t->sha[1], path, sizeof path);
    int32_t *y = NULL;
    size_t n = 0;
    part_set *parts = NULL;
    if (idx_load_labels(path, sp->train_rows, &y, &n, err, sizeof err) != CN_OK)
        return;
    int classes = t->shape.widths[t->shape.n_layers];
    part_cfg pc;
    part_cfg_default(&pc, sp->partition, (int)sp->fed.clients);
    pc.seed = sp->seed;
    pc.alpha = sp->alpha;
    pc.k = (int)sp->k_labels;
    size_t *global = calloc((size_t)classes, sizeof *global);
    size_t *hist = calloc((size_t)classes, sizeof *hist);
    if (global && hist && part_split(&pc, y, n, classes, &parts, err, sizeof err) == CN_OK) {
        for (size_t i = 0; i < n; i++)
            global[y[i]]++;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "clients");
        cJSON_AddStringToObject(o, "partition", part_kind_name(sp->partition));
        cJSON *cl = cJSON_AddArrayToObject(o, "clients");
        for (uint32_t c = 0; c < sp->fed.clients; c++) {
            memset(hist, 0, (size_t)classes * sizeof *hist);
            for (size_t i = 0; i < parts->sizes[c]; i++)
                hist[y[parts->rows[c][i]]]++;
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "client", c);
            cJSON_AddNumberToObject(e, "samples", (double)parts->sizes[c]);
            cJSON *h = cJSON_AddArrayToObject(e, "labels");
            for (int k = 0; k < classes; k++)
                cJSON_AddItemToArray(h, cJSON_CreateNumber((double)hist[k]));
            cJSON_AddNumberToObject(e, "label_skew", fed_label_skew(hist, global, classes));
            cJSON_AddItemToArray(cl, e);
        }
        sched_jobs_lock(r->k);
        sched_train_log(r->j, o);
        sched_jobs_unlock(r->k);
    }
    part_set_free(parts);
    free(global);
    free(hist);
    free(y);
}

// live_clients lists the live workers (their ids and ranks) for clients
// that hold their own data; returns the count.
static uint32_t live_clients(run *r, uint64_t *ids, uint32_t *ranks, uint32_t max)
{
    cluster_node *nodes = NULL;
    size_t n = 0;
    uint32_t m = 0;
    if (sched_members_snapshot(sched_jobs_members(r->k), &nodes, &n) != CN_OK)
        return 0;
    for (size_t i = 0; i < n && m < max; i++)
        if (nodes[i].role == CLUSTER_ROLE_WORKER && nodes[i].state == CLUSTER_NODE_ALIVE &&
            nodes[i].rank < r->t->spec.fed.clients) {
            ids[m] = nodes[i].node_id;
            ranks[m++] = nodes[i].rank;
        }
    free(nodes);
    return m;
}

// ------------------------------------------------------------ a round

static void add_client(fed_run *f, uint64_t item, uint64_t round, uint32_t client)
{
    if (item >= f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        while (cap <= item)
            cap *= 2;
        client_item *v = realloc(f->items, cap * sizeof *v);
        CN_ASSERT(v != NULL);
        f->items = v;
        f->cap = cap;
    }
    f->items[item] = (client_item){.round = round, .client = client};
    if (item >= f->n_items)
        f->n_items = item + 1;
}

// open_round selects the round's clients and adds their items. Lock held.
static void open_round(run *r, uint64_t round)
{
    train_job *t = r->t;
    const train_fed *fc = &t->spec.fed;
    fed_run *f = state(t);
    uint32_t cand = fc->clients, ranks[PS_MAX_WORKERS];
    uint64_t ids[PS_MAX_WORKERS];
    if (fc->local_data)
        cand = live_clients(r, ids, ranks, PS_MAX_WORKERS);
    uint32_t k = fed_clients_per_round(fc->clients_per_round > 0 ? fc->clients_per_round : cand,
                                       fc->min_clients, cand ? cand : 1);
    uint32_t chosen[PS_MAX_WORKERS];
    k = cand ? fed_select(t->spec.seed, round, cand, k, chosen) : 0;
    cn_rng drop;
    cn_rng_seed(&drop, t->spec.seed ^ (round * 0x2545f4914f6cdd1dull), 0xd40);
    f->round = round;
    f->selected = k;
    f->dropped = 0;
    f->round_start_ms = cn_now_ms();
    for (uint32_t i = 0; i < k; i++) {
        if (fc->dropout > 0 && cn_rng_uniform(&drop) < fc->dropout) {
            f->dropped++; // system heterogeneity: the client never answers
            continue;
        }
        uint32_t client = fc->local_data ? ranks[chosen[i]] : chosen[i];
        uint64_t item;
        if (sched_job_add_item_for(r->j, fc->local_data ? ids[chosen[i]] : 0, &item) == CN_OK)
            add_client(f, item, round, client);
    }
}

typedef struct tally {
    uint32_t finished, failed, late, open;
    double compute_s, upload_s, download_s, bytes_up, bytes_down, samples;
} tally;

// count sums the round's items. Lock held.
static void count(const fed_run *f, tally *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < f->n_items; i++) {
        const client_item *x = &f->items[i];
        if (x->round != f->round)
            continue;
        c->finished += x->status == C_DONE;
        c->failed += x->status == C_FAILED;
        c->late += x->status == C_LATE;
        c->open += x->status == C_OPEN;
        if (x->status == C_DONE) {
            c->compute_s += x->compute_s;
            c->upload_s += x->upload_s;
            c->download_s += x->download_s;
            c->samples += x->samples;
        }
        c->bytes_up += (double)x->bytes_up;
        c->bytes_down += (double)x->bytes_down;
    }
}

enum { ROUND_CLOSE, ROUND_STOP, ROUND_RESTART };

// wait_round waits until the round may close, watching the shards every
// half second (without the lock). Lock held on entry and return. Returns
// ROUND_STOP when the job ended or the scheduler stops, ROUND_RESTART when
// a shard restarted during the round (its part of the round is lost).
static int wait_round(run *r)
{
    const train_fed *fc = &r->t->spec.fed;
    fed_run *f = state(r->t);
    uint64_t last_watch = cn_now_ms();
    for (;;) {
        if (sched_jobs_stopping(r->k) || sched_job_state(r->j) != JOB_RUNNING)
            return ROUND_STOP;
        tally c;
        count(f, &c);
        double el = (double)(cn_now_ms() - f->round_start_ms) / 1000.0;
        // Until a round has closed with an update, the clients are still
        // fetching and decoding their data: a deadline would measure that
        // cold start, not their speed, and close the first rounds empty.
        double deadline = f->warm ? fc->round_deadline_s : 0;
        if (fed_round_closes(f->selected, c.finished, f->dropped, c.failed + c.late,
                             fc->min_updates, el, deadline))
            return ROUND_CLOSE;
        if (cn_now_ms() - last_watch >= 500) {
            sched_jobs_unlock(r->k);
            bool restarted = sched_train_watch_shards(r);
            sched_jobs_lock(r->k);
            last_watch = cn_now_ms();
            if (restarted)
                return ROUND_RESTART;
        }
        sched_jobs_wait_ms(r->k, 50);
    }
}

// cut_late cancels the round's items still running: their updates would
// come after the close, and the shards refuse them. Lock held.
static void cut_late(run *r)
{
    fed_run *f = state(r->t);
    for (size_t i = 0; i < f->n_items; i++)
        if (f->items[i].round == f->round && f->items[i].status == C_OPEN &&
            sched_job_item_cancel(r->j, i))
            f->items[i].status = C_LATE;
}

// add_round_fields writes what a round's record and its status entry share.
static void add_round_fields(cJSON *o, const round_point *p)
{
    cJSON_AddNumberToObject(o, "round", (double)p->round);
    cJSON_AddNumberToObject(o, "t", p->t);
    cJSON_AddNumberToObject(o, "accuracy", p->acc);
    cJSON_AddNumberToObject(o, "loss", p->loss);
    cJSON_AddNumberToObject(o, "selected", p->selected);
    cJSON_AddNumberToObject(o, "finished", p->finished);
    cJSON_AddNumberToObject(o, "dropped", p->dropped);
    cJSON_AddNumberToObject(o, "late", p->late);
    cJSON_AddNumberToObject(o, "failed", p->failed);
}

static void log_round(run *r, const tally *c, const ps_round_close *rc, double seconds,
                      double agg_s, double acc, double loss)
{
    fed_run *f = state(r->t);
    double n = c->finished ? (double)c->finished : 1;
    round_point p = {.round = f->round,
                     .t = sched_job_elapsed_s(r->j),
                     .acc = acc,
                     .loss = loss,
                     .seconds = seconds,
                     .aggregation_s = agg_s,
                     .selected = f->selected,
                     .finished = c->finished,
                     .dropped = f->dropped,
                     .late = c->late,
                     .failed = c->failed,
                     .bytes_up = c->bytes_up,
                     .bytes_down = c->bytes_down,
                     .samples = c->samples,
                     .compute_s = c->compute_s,
                     .comm_s = c->upload_s + c->download_s};
    note_round(r->t, &p);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "round");
    add_round_fields(o, &p);
    cJSON_AddNumberToObject(o, "updates", rc->updates);
    cJSON_AddNumberToObject(o, "samples", c->samples);
    cJSON_AddNumberToObject(o, "bytes_up", c->bytes_up);
    cJSON_AddNumberToObject(o, "bytes_down", c->bytes_down);
    cJSON_AddNumberToObject(o, "seconds", seconds);
    cJSON_AddNumberToObject(o, "client_compute_seconds", c->compute_s / n);
    cJSON_AddNumberToObject(o, "client_upload_seconds", c->upload_s / n);
    cJSON_AddNumberToObject(o, "client_download_seconds", c->download_s / n);
    cJSON_AddNumberToObject(o, "aggregation_seconds", agg_s);
    cJSON_AddNumberToObject(o, "server_step_seconds", rc->apply_seconds);
    double busy = (c->compute_s + c->upload_s + c->download_s) / n + agg_s;
    cJSON_AddNumberToObject(o, "waiting_seconds", seconds > busy ? seconds - busy : 0);
    sched_train_log(r->j, o);
    sched_train_add_eval(r, acc, loss, f->round + 1);
}

// clients_ready counts what a round needs alive: with their own data,
// the clients' own workers (every one of them, at least min_clients);
// otherwise any worker, since any worker can run any client.
static bool clients_ready(run *r, uint32_t *live, uint32_t *want, uint32_t *least)
{
    const train_fed *fc = &r->t->spec.fed;
    if (fc->local_data) {
        uint64_t ids[PS_MAX_WORKERS];
        uint32_t ranks[PS_MAX_WORKERS];
        *live = live_clients(r, ids, ranks, PS_MAX_WORKERS);
        *want = fc->clients;
        *least = fc->min_clients;
    } else {
        *live = (uint32_t)sched_members_count(sched_jobs_members(r->k), CLUSTER_ROLE_WORKER);
        *want = *least = 1;
    }
    return *live >= *want;
}

// wait_clients waits until the round's clients can run (clients_ready),
// for at most the job's admission timeout; then the round goes on if at
// least the least are alive. A round opened with nobody to run it would
// close empty at its deadline, or never without one. No lock. False when
// there are too few (r->err says so) or the job ends.
static bool wait_clients(run *r)
{
    const train_spec *sp = &r->t->spec;
    uint32_t live, want, least;
    uint64_t start = cn_now_ms();
    bool said = false;
    while (!clients_ready(r, &live, &want, &least) &&
           cn_now_ms() - start < (uint64_t)(sp->admission_timeout_s * 1000)) {
        sched_jobs_lock(r->k);
        bool go_on = !sched_jobs_stopping(r->k) && sched_job_state(r->j) == JOB_RUNNING;
        sched_jobs_unlock(r->k);
        if (!go_on)
            return false;
        if (!said && cn_now_ms() - start >= 2000) {
            CN_WARN("job %s: waiting for clients: %u of %u alive (up to %.0f s, "
                    "admission_timeout_s)",
                    sched_job_id(r->j), live, want, sp->admission_timeout_s);
            said = true;
        }
        cn_sleep_ms(100);
    }
    if (live >= least)
        return true;
    if (sp->fed.local_data)
        cn_errf(r->err, sizeof r->err, CN_EUNAVAIL,
                "%u of the %u clients' workers are alive (with --data), fewer than min_clients "
                "%u, after %.0f s (admission_timeout_s); start them with `canopy worker --data "
                "DIR`",
                live, want, least, sp->admission_timeout_s);
    else
        cn_errf(r->err, sizeof r->err, CN_EUNAVAIL,
                "no worker is alive to run the round's clients after %.0f s "
                "(admission_timeout_s); start one with `canopy worker --scheduler URL`",
                sp->admission_timeout_s);
    return false;
}

// run_round runs one round to its close and records it. No lock on entry
// or return. Returns ROUND_CLOSE when the round closed, ROUND_RESTART when
// it must run again (a shard restarted; its updates were discarded), or
// ROUND_STOP (the job ends; *failed when because of an error in r->err).
static int run_round(run *r, uint64_t round, bool *failed)
{
    fed_run *f = state(r->t);
    *failed = false;
    if (!wait_clients(r)) {
        *failed = r->err[0] != 0;
        return ROUND_STOP;
    }
    sched_jobs_lock(r->k);
    open_round(r, round);
    int how = wait_round(r);
    if (how != ROUND_STOP)
        cut_late(r);
    tally c;
    count(f, &c);
    double seconds = (double)(cn_now_ms() - f->round_start_ms) / 1000.0;
    sched_jobs_unlock(r->k);
    if (how == ROUND_STOP)
        return ROUND_STOP;
    uint64_t t0 = cn_now_ns();
    ps_round_close rc;
    cn_err e =
        sched_model_close_round(r->model, round, how == ROUND_CLOSE, &rc, r->err, sizeof r->err);
    double agg_s = (double)(cn_now_ns() - t0) * 1e-9;
    if (how == ROUND_RESTART || (e != CN_OK && sched_train_watch_shards(r))) {
        CN_WARN("job %s round %" PRIu64 ": a shard restarted; the round runs again",
                sched_job_id(r->j), round);
        if (e != CN_OK) // the shards that kept the round drop its updates
            sched_model_close_round(r->model, round, false, &rc, r->err, sizeof r->err);
        return ROUND_RESTART;
    }
    double acc = 0, loss = 0;
    if (e == CN_OK)
        e = sched_model_evaluate(r->model, r->test, r->ws, r->params, &acc, &loss, r->err,
                                 sizeof r->err);
    if (e != CN_OK) {
        *failed = true;
        return ROUND_STOP;
    }
    sched_jobs_lock(r->k);
    log_round(r, &c, &rc, seconds, agg_s, acc, loss);
    sched_jobs_unlock(r->k);
    CN_INFO("job %s round %" PRIu64 ": %u of %u clients, %u dropped, %u late, accuracy %.4f "
            "(%.2f s)",
            sched_job_id(r->j), round, c.finished, f->selected, f->dropped, c.late, acc, seconds);
    return ROUND_CLOSE;
}

// start_round finds the round to run: the shards' open round; a restored
// job discards what a round open at the crash had received.
static cn_err start_round(run *r, bool resumed, uint64_t *round)
{
    cn_err e = sched_model_pull(r->model, r->params, round, r->err, sizeof r->err);
    if (e != CN_OK || !resumed)
        return e;
    ps_round_close rc;
    return sched_model_close_round(r->model, *round, false, &rc, r->err, sizeof r->err);
}

void *sched_fed_main(void *arg)
{
    run *r = arg;
    const train_spec *sp = &r->t->spec;
    bool resumed = false;
    uint64_t round = 0;
    cn_err e = sched_train_connect(r, &resumed);
    if (e == CN_OK && !resumed && !sp->fed.local_data)
        log_clients(r);
    if (e == CN_OK)
        e = start_round(r, resumed, &round);
    if (e == CN_OK) {
        sched_jobs_lock(r->k);
        // A client's round is one lease; a lost client is not retried
        // within its round: the next round selects again.
        sched_job_set_policy(r->j, 120000 + (uint32_t)(sp->fed.round_deadline_s * 1000), 0, 0);
        CN_INFO("job %s %s: federated, %s, %u clients, round %" PRIu64 " of %u", sched_job_id(r->j),
                resumed ? "resumed" : "running", fed_strategy_name(sp->fed.server.strategy),
                sp->fed.clients, round, sp->fed.rounds);
        sched_jobs_unlock(r->k);
        bool failed = false;
        while (round < sp->fed.rounds) {
            int how = run_round(r, round, &failed);
            if (how == ROUND_STOP)
                break;
            if (how == ROUND_CLOSE)
                round++;
        }
        if (failed)
            e = CN_EUNAVAIL; // r->err says why
    }
    sched_jobs_lock(r->k);
    bool finish = e == CN_OK && round >= sp->fed.rounds && sched_job_state(r->j) == JOB_RUNNING &&
                  !sched_jobs_stopping(r->k);
    if (e != CN_OK)
        sched_job_finish(r->j, JOB_FAILED, r->err);
    sched_jobs_unlock(r->k);
    if (finish) {
        sched_train_finish(r); // returns with the lock held
        sched_jobs_unlock(r->k);
    }
    sched_train_run_free(r);
    return NULL;
}

// ------------------------------------------------------------ kind callbacks

static bool is_slow(const train_fed *fc, uint32_t client)
{
    for (uint32_t i = 0; i < fc->n_slow; i++)
        if (fc->slow[i] == client)
            return true;
    return false;
}

char *sched_fed_task(sched_job *j, uint64_t item, uint32_t attempt)
{
    train_job *t = sched_job_impl(j);
    const train_spec *sp = &t->spec;
    const train_fed *fc = &sp->fed;
    fed_run *f = state(t);
    const client_item *x = &f->items[item];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "mode", "federated");
    cJSON_AddStringToObject(o, "job_id", sched_job_id(j));
    cJSON_AddNumberToObject(o, "client", x->client);
    cJSON_AddNumberToObject(o, "clients", fc->clients);
    cJSON_AddNumberToObject(o, "round", (double)x->round);
    sched_train_task_common(t, attempt, o);
    cJSON_AddStringToObject(o, "client_data", fc->local_data ? "local" : "partition");
    cJSON_AddNumberToObject(o, "local_epochs", fc->local_epochs);
    cJSON_AddNumberToObject(o, "local_batch", fc->local_batch);
    cJSON_AddStringToObject(o, "local_optimizer", optim_cfg_name(&fc->local));
    cJSON_AddNumberToObject(o, "local_lr", fc->local.lr);
    cJSON_AddNumberToObject(o, "mu", fc->mu);
    cJSON_AddNumberToObject(o, "slowdown", is_slow(fc, x->client) ? fc->slowdown : 1);
    cJSON_AddNumberToObject(o, "delay_s", is_slow(fc, x->client) ? fc->delay_s : 0);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

void sched_fed_item_done(sched_job *j, uint64_t item, bool ok, const char *error,
                         const cJSON *result)
{
    train_job *t = sched_job_impl(j);
    fed_run *f = state(t);
    if (item >= f->n_items)
        return;
    client_item *x = &f->items[item];
    x->bytes_up = (uint64_t)sched_train_num(result, "bytes_sent");
    x->bytes_down = (uint64_t)sched_train_num(result, "bytes_received");
    if (!ok) {
        bool late = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "late"));
        x->status = late ? C_LATE : C_FAILED;
        CN_WARN("job %s round %" PRIu64 " client %u: %s", sched_job_id(j), x->round, x->client,
                error ? error : "failed");
        return;
    }
    x->status = C_DONE;
    x->compute_s = sched_train_num(result, "compute_seconds");
    x->upload_s = sched_train_num(result, "upload_seconds");
    x->download_s = sched_train_num(result, "download_seconds");
    x->samples = sched_train_num(result, "samples");
    x->loss = sched_train_num(result, "loss");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(result, "labels");
    uint32_t c = x->client;
    if (t->spec.fed.local_data && labels &&
        !(f->clients_seen[c / 32] & (1u << (c % 32)))) { // a local client's data, once
        f->clients_seen[c / 32] |= 1u << (c % 32);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "client");
        cJSON_AddNumberToObject(o, "client", c);
        cJSON_AddNumberToObject(o, "samples", x->samples);
        cJSON_AddItemToObject(o, "labels", cJSON_Duplicate(labels, 1));
        sched_train_log(j, o);
    }
}

void sched_fed_item_failed(sched_job *j, uint64_t item, const char *why)
{
    fed_run *f = state(sched_job_impl(j));
    if (item < f->n_items && f->items[item].status == C_OPEN)
        f->items[item].status = C_FAILED;
    CN_WARN("job %s: client item %" PRIu64 " failed: %s", sched_job_id(j), item, why);
}

void sched_fed_status(sched_job *j, cJSON *o)
{
    train_job *t = sched_job_impl(j);
    fed_run *f = state(t);
    const train_fed *fc = &t->spec.fed;
    cJSON_AddStringToObject(o, "mode", "federated");
    cJSON_AddStringToObject(o, "strategy", fed_strategy_name(fc->server.strategy));
    cJSON_AddNumberToObject(o, "rounds", fc->rounds);
    cJSON_AddNumberToObject(o, "round", (double)f->n_rounds);
    cJSON_AddNumberToObject(o, "clients", fc->clients);
    cJSON *rs = cJSON_AddArrayToObject(o, "round_history");
    for (size_t i = 0; i < f->n_rounds; i++) {
        const round_point *p = &f->rounds[i];
        cJSON *e = cJSON_CreateObject();
        add_round_fields(e, p);
        cJSON_AddNumberToObject(e, "bytes", p->bytes_up + p->bytes_down);
        cJSON_AddNumberToObject(e, "seconds", p->seconds);
        cJSON_AddItemToArray(rs, e);
    }
}

double sched_fed_progress(sched_job *j)
{
    train_job *t = sched_job_impl(j);
    return t->spec.fed.rounds ? (double)state(t)->n_rounds / t->spec.fed.rounds : 0;
}

void sched_fed_summary(sched_job *j, const train_job *t, cJSON *o)
{
    const fed_run *f = t->fed;
    const train_fed *fc = &t->spec.fed;
    cJSON_AddStringToObject(o, "mode", "federated");
    cJSON_AddStringToObject(o, "strategy", fed_strategy_name(fc->server.strategy));
    cJSON_AddNumberToObject(o, "rounds", fc->rounds);
    cJSON_AddNumberToObject(o, "clients", fc->clients);
    cJSON_AddNumberToObject(o, "local_epochs", fc->local_epochs);
    cJSON_AddNumberToObject(o, "dropout", fc->dropout);
    cJSON_AddNumberToObject(o, "round_deadline_s", fc->round_deadline_s);
    double secs = sched_job_elapsed_s(j);
    cJSON_AddNumberToObject(o, "samples", f ? f->samples : 0);
    cJSON_AddNumberToObject(o, "samples_per_s", f && secs > 0 ? f->samples / secs : 0);
    cJSON_AddNumberToObject(o, "compute_seconds", f ? f->compute_s : 0);
    cJSON_AddNumberToObject(o, "comm_seconds", f ? f->comm_s : 0);
    cJSON_AddNumberToObject(o, "compute_comm_ratio",
                            f && f->comm_s > 0 ? f->compute_s / f->comm_s : 0);
    cJSON_AddNumberToObject(o, "bytes_sent", f ? f->bytes_up : 0);
    cJSON_AddNumberToObject(o, "bytes_received", f ? f->bytes_down : 0);
    cJSON_AddNumberToObject(o, "bytes_total", f ? f->bytes_total : 0);
    cJSON_AddNumberToObject(o, "aggregation_share",
                            f && f->seconds_total > 0 ? f->aggregation_total / f->seconds_total
                                                      : 0);
    cJSON_AddNumberToObject(o, "rounds_to_target", f ? f->target_round : -1);
    cJSON_AddNumberToObject(o, "seconds_to_target", f ? f->target_seconds : -1);
    cJSON_AddNumberToObject(o, "bytes_to_target", f ? f->target_bytes : -1);
}

double sched_fed_bytes(const train_job *t)
{
    return t->fed ? t->fed->bytes_total : 0;
}
