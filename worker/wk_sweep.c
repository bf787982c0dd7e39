// wk_sweep.c: the worker's sweep loop (see wk_sweep.h).
#include "worker/wk_sweep.h"

#include "worker/wk_loop.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cn_buf.h"
#include "common/cn_clock.h"
#include "common/cn_file.h"
#include "common/cn_log.h"
#include "ml/csv.h"
#include "ml/cv.h"
#include "ml/rf.h"
#include "sweep.pb-c.h"

#define FETCH_CHUNK (16u << 20)

struct wk_sweep {
    wk_sweep_opts o;
    char name[128], cache_dir[1024];
    wk_loop loop; // client to the scheduler, thread, stop flag
    // the data set in memory, keyed by hash + how it was parsed
    char ds_key[512];
    ds_dataset *ds;
};

// fetch_data downloads data set sha into path in chunks and checks its hash.
static cn_err fetch_data(wk_sweep *w, const char *sha, const char *path, char *err, size_t errlen)
{
    cn_buf buf;
    cn_buf_init(&buf);
    uint64_t total = UINT64_MAX;
    while ((uint64_t)buf.len < total) {
        Canopy__Sweep__FetchDataRequest req = CANOPY__SWEEP__FETCH_DATA_REQUEST__INIT;
        req.sha256 = (char *)sha;
        req.offset = buf.len;
        req.length = FETCH_CHUNK;
        rpc_request r = {.service = "Sweep",
                         .method = "FetchData",
                         .body = &req.base,
                         .deadline_ms = 60000,
                         .flags = RPC_IDEMPOTENT};
        rpc_reply rep;
        memset(&rep, 0, sizeof rep);
        rpc_code code = rpc_client_call(w->loop.client, &r, &rep);
        if (code != RPC_OK) {
            cn_errf(err, errlen, CN_EUNAVAIL, "fetching data set %.12s: %s: %s", sha,
                    rpc_code_name(code), rep.detail);
            rpc_reply_fini(&rep);
            cn_buf_fini(&buf);
            return CN_EUNAVAIL;
        }
        Canopy__Sweep__FetchDataReply *fr = (Canopy__Sweep__FetchDataReply *)rpc_reply_unpack(
            &rep, &canopy__sweep__fetch_data_reply__descriptor);
        if (fr == NULL || (rep.payload_len == 0 && buf.len < fr->total)) {
            if (fr)
                protobuf_c_message_free_unpacked(&fr->base, NULL);
            rpc_reply_fini(&rep);
            cn_buf_fini(&buf);
            return cn_errf(err, errlen, CN_EPROTO, "fetching data set %.12s: bad reply", sha);
        }
        total = fr->total;
        protobuf_c_message_free_unpacked(&fr->base, NULL);
        cn_buf_append(&buf, rep.payload, rep.payload_len);
        rpc_reply_fini(&rep);
        if (buf.oom) {
            cn_buf_fini(&buf);
            return cn_errf(err, errlen, CN_ENOMEM, "out of memory fetching data set");
        }
    }
    char got[65];
    cn_file_sha256_hex(buf.data ? buf.data : "", buf.len, got);
    cn_err e = CN_OK;
    if (strcmp(got, sha) != 0)
        e = cn_errf(err, errlen, CN_EFORMAT, "data set %.12s arrived corrupted (hash %.12s)", sha,
                    got);
    else
        e = cn_file_write_atomic(path, buf.data ? buf.data : "", buf.len, err, errlen);
    cn_buf_fini(&buf);
    return e;
}

// ensure_data makes the unit's data set available in memory; returns the
// seconds spent loading (0 when it was cached).
static cn_err ensure_data(wk_sweep *w, const Canopy__Sweep__Unit *u, double *load_s, char *err,
                          size_t errlen)
{
    *load_s = 0;
    char key[512];
    snprintf(key, sizeof key, "%s|%s|%s", u->data_sha256, u->label, u->drop);
    if (w->ds && strcmp(key, w->ds_key) == 0)
        return CN_OK;
    uint64_t t0 = cn_now_ns();
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", w->cache_dir, u->data_sha256);
    if (access(path, R_OK) != 0) {
        CN_INFO("fetching data set %.12s (%" PRIu64 " bytes) from the scheduler", u->data_sha256,
                u->data_size);
        cn_err e = fetch_data(w, u->data_sha256, path, err, errlen);
        if (e != CN_OK)
            return e;
    }
    ds_dataset_free(w->ds);
    w->ds = NULL;
    csv_options o = csv_options_default();
    o.label_mode = CSV_LABEL_NAME;
    o.label_name = u->label;
    o.drop_columns = u->drop;
    cn_err e = ds_load_csv(path, &o, &w->ds, err, errlen);
    if (e != CN_OK)
        return e;
    snprintf(w->ds_key, sizeof w->ds_key, "%s", key);
    *load_s = (double)(cn_now_ns() - t0) / 1e9;
    CN_INFO("data set %.12s loaded: %zu rows x %zu features, %d classes (%.2f s)", u->data_sha256,
            w->ds->n_rows, w->ds->n_features, w->ds->n_classes, *load_s);
    return CN_OK;
}

static void report(wk_sweep *w, Canopy__Sweep__UnitResult *r)
{
    rpc_request req = {.service = "Sweep",
                       .method = "Report",
                       .body = &r->base,
                       .deadline_ms = 60000,
                       .flags = RPC_IDEMPOTENT | RPC_MUTATING};
    rpc_reply rep;
    memset(&rep, 0, sizeof rep);
    rpc_code code = rpc_client_call(w->loop.client, &req, &rep);
    if (code != RPC_OK)
        CN_WARN("report of trial %u fold %u failed: %s: %s (the scheduler will re-queue it)",
                r->trial, r->fold, rpc_code_name(code), rep.detail);
    rpc_reply_fini(&rep);
}

static void run_unit(wk_sweep *w, const Canopy__Sweep__Unit *u)
{
    char status[128], err[CN_ERRBUF_LEN] = "";
    snprintf(status, sizeof status, "sweep trial %u fold %u", u->trial, u->fold);
    if (w->o.agent)
        cluster_agent_set_status(w->o.agent, status);
    Canopy__Sweep__UnitResult r = CANOPY__SWEEP__UNIT_RESULT__INIT;
    r.sweep_id = u->sweep_id;
    r.trial = u->trial;
    r.fold = u->fold;
    r.attempt = u->attempt;
    r.node_id = w->o.node_id;
    r.worker_name = w->name;
    cv_fold_result fr;
    memset(&fr, 0, sizeof fr);
    double load_s = 0;
    rf_params p = rf_params_default();
    cn_err e = ensure_data(w, u, &load_s, err, sizeof err);
    if (e == CN_OK)
        e = rf_params_from_json_text(&p, u->params_json, "params", err, sizeof err);
    if (e == CN_OK) {
        p.threads = w->o.threads; // the worker's cores, whatever the trial says
        e = cv_eval_fold(&p, w->ds, (int)u->folds, (int)u->fold, u->shuffle, u->cv_seed, &fr, err,
                         sizeof err);
    }
    r.data_load_seconds = load_s;
    if (e == CN_OK) {
        r.ok = 1;
        r.accuracy = fr.accuracy;
        r.balanced_accuracy = fr.balanced_accuracy;
        r.macro_f1 = fr.macro_f1;
        r.fit_seconds = fr.fit_seconds;
        r.predict_seconds = fr.predict_seconds;
        r.n_train = (uint32_t)fr.n_train;
        r.n_test = (uint32_t)fr.n_test;
        r.n_classes = (uint32_t)w->ds->n_classes;
        r.n_confusion = (size_t)w->ds->n_classes * (size_t)w->ds->n_classes;
        r.confusion = fr.confusion;
    } else {
        r.ok = 0;
        r.error = err;
        CN_WARN("trial %u fold %u failed: %s", u->trial, u->fold, err);
    }
    report(w, &r);
    free(fr.confusion);
    if (w->o.agent)
        cluster_agent_set_status(w->o.agent, "idle");
}

static void *loop_main(void *arg)
{
    wk_sweep *w = arg;
    int backoff_ms = 50;
    while (!w->loop.stopping) {
        Canopy__Sweep__GetWorkRequest req = CANOPY__SWEEP__GET_WORK_REQUEST__INIT;
        req.node_id = w->o.node_id;
        req.wait_ms = 1000;
        rpc_request r = {.service = "Sweep",
                         .method = "GetWork",
                         .body = &req.base,
                         .deadline_ms = 5000,
                         .flags = 0};
        rpc_reply rep;
        memset(&rep, 0, sizeof rep);
        rpc_code code = rpc_client_call(w->loop.client, &r, &rep);
        if (code != RPC_OK) {
            rpc_reply_fini(&rep);
            // Not registered yet, or the scheduler is away: wait and retry.
            struct timespec ts = {0, (long)backoff_ms * 1000000};
            nanosleep(&ts, NULL);
            backoff_ms = backoff_ms * 2 > 1000 ? 1000 : backoff_ms * 2;
            continue;
        }
        backoff_ms = 50;
        Canopy__Sweep__GetWorkReply *gw = (Canopy__Sweep__GetWorkReply *)rpc_reply_unpack(
            &rep, &canopy__sweep__get_work_reply__descriptor);
        rpc_reply_fini(&rep);
        if (gw == NULL)
            continue;
        if (gw->has_work && gw->unit)
            run_unit(w, gw->unit);
        protobuf_c_message_free_unpacked(&gw->base, NULL);
    }
    return NULL;
}

cn_err wk_sweep_start(wk_sweep **out, const wk_sweep_opts *opts, char *err, size_t errlen)
{
    *out = NULL;
    wk_sweep *w = calloc(1, sizeof *w);
    if (w == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    w->o = *opts;
    snprintf(w->name, sizeof w->name, "%s", opts->name ? opts->name : "");
    snprintf(w->cache_dir, sizeof w->cache_dir, "%s", opts->cache_dir);
    cn_err e = cn_file_mkdirs(w->cache_dir, err, errlen);
    if (e != CN_OK) {
        free(w);
        return e;
    }
    if ((e = wk_loop_start(&w->loop, opts->scheduler_url, opts->token, opts->tls, opts->node_id,
                           loop_main, w, "sweep", err, errlen)) != CN_OK) {
        free(w);
        return e;
    }
    *out = w;
    return CN_OK;
}

void wk_sweep_stop(wk_sweep *w)
{
    if (w == NULL)
        return;
    wk_loop_stop(&w->loop);
    ds_dataset_free(w->ds);
    free(w);
}
