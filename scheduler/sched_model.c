// sched_model.c: a job's model on the shards, from the scheduler's side
// (see sched_model.h).
#include "scheduler/sched_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/cluster_client.h"

struct sched_model {
    ps_client *pc;
    ps_shard_cfg cfg;
    mlp_shape shape;
};

cn_err sched_model_pick_shards(sched_members *members, uint32_t n, char (*urls)[256], char *err,
                               size_t errlen)
{
    cluster_node *nodes = NULL;
    size_t count = 0;
    if (sched_members_snapshot(members, &nodes, &count) != CN_OK)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    uint32_t found = 0;
    for (size_t i = 0; i < count && found < n; i++) // sorted by role, then rank
        if (nodes[i].role == CLUSTER_ROLE_PS && nodes[i].state != CLUSTER_NODE_DEAD)
            snprintf(urls[found++], 256, "%s", nodes[i].address);
    free(nodes);
    if (found < n)
        return cn_errf(err, errlen, CN_EUNAVAIL,
                       "the job wants %u shards but %u ps nodes are alive; start more "
                       "(`canopy ps`) or lower \"shards\"",
                       n, found);
    return CN_OK;
}

cn_err sched_model_open(sched_model **out, const sched_model_opts *o, char *err, size_t errlen)
{
    *out = NULL;
    sched_model *m = calloc(1, sizeof *m);
    if (m == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    m->cfg = *o->cfg;
    m->shape = *o->shape;
    ps_client_opts po = {.urls = o->urls,
                         .shards = o->cfg->shards,
                         .n_params = o->shape->n_params,
                         .job_id = o->cfg->job_id,
                         .token = o->token,
                         .tls = o->tls,
                         .worker = 0,
                         .call_timeout_ms = 10000,
                         .outage_ms = 20000};
    cn_err e = ps_client_open(&m->pc, &po, err, errlen);
    if (e != CN_OK) {
        free(m);
        return e;
    }
    *out = m;
    return CN_OK;
}

cn_err sched_model_configure(sched_model *m, const float *init, bool restore, bool *restored,
                             char *err, size_t errlen)
{
    bool any = false;
    cn_err e = ps_client_configure(m->pc, &m->cfg, init, restore, &any, err, errlen);
    if (restored)
        *restored = any;
    return e;
}

bool sched_model_lost(sched_model *m)
{
    char err[CN_ERRBUF_LEN];
    for (uint32_t k = 0; k < m->cfg.shards; k++) {
        ps_stats st;
        if (ps_client_stats(m->pc, k, &st, err, sizeof err) == RPC_NOT_FOUND)
            return true;
    }
    return false;
}

cn_err sched_model_pull(sched_model *m, float *params, uint64_t *clock, char *err, size_t errlen)
{
    ps_sync sy;
    cn_err e = ps_client_pull(m->pc, 0, false, params, &sy, err, errlen);
    if (clock)
        *clock = sy.clock;
    return e;
}

cn_err sched_model_close_round(sched_model *m, uint64_t round, bool apply, ps_round_close *out,
                               char *err, size_t errlen)
{
    return ps_client_close_round(m->pc, round, apply, out, err, errlen);
}

cn_err sched_model_evaluate(sched_model *m, const ds_dataset *test, mlp_ws *ws, float *params,
                            double *acc, double *loss, char *err, size_t errlen)
{
    cn_err e = sched_model_pull(m, params, NULL, err, errlen);
    if (e != CN_OK)
        return e;
    mlp_eval ev;
    e = mlp_evaluate(&m->shape, params, test, ws, &ev, err, errlen);
    if (e != CN_OK)
        return e;
    *acc = ev.accuracy;
    *loss = ev.loss;
    mlp_eval_fini(&ev);
    return CN_OK;
}

void sched_model_stats_sum(sched_model *m, sched_model_stats *out)
{
    memset(out, 0, sizeof *out);
    char err[CN_ERRBUF_LEN];
    for (uint32_t k = 0; k < m->cfg.shards; k++) {
        ps_stats st;
        if (ps_client_stats(m->pc, k, &st, err, sizeof err) != RPC_OK)
            continue;
        for (int b = 0; b < PS_STALE_BUCKETS; b++)
            out->staleness[b] += st.staleness[b];
        out->checkpoints += st.checkpoints;
        out->duplicates += st.duplicates;
        out->apply_seconds += st.apply_seconds;
        out->wait_seconds += st.wait_seconds;
        out->answered++;
    }
}

void sched_model_close(sched_model *m)
{
    if (m == NULL)
        return;
    ps_client_close(m->pc);
    free(m);
}
