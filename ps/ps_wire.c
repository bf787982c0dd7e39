// ps_wire.c: protobuf forms of shard configurations and stats (ps_impl.h).
#include "ps/ps_impl.h"

#include <stdio.h>
#include <string.h>

void ps_wire_optim_to_pb(const optim_cfg *c, Canopy__Ps__OptimizerConfig *o)
{
    o->kind = (char *)optim_cfg_name(c);
    o->lr = c->lr;
    o->weight_decay = c->weight_decay;
    o->momentum = c->momentum;
    o->nesterov = c->nesterov != 0;
    o->beta1 = c->beta1;
    o->beta2 = c->beta2;
    o->eps = c->eps;
    o->schedule = (char *)optim_sched_name(c->schedule);
    o->gamma = c->gamma;
    o->step_every = c->step_every;
    o->total_steps = c->total_steps;
    o->min_lr = c->min_lr;
}

cn_err ps_wire_cfg_from_pb(const Canopy__Ps__ConfigureRequest *r, ps_shard_cfg *cfg, char *err,
                           size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    if (strlen(r->job_id) >= sizeof cfg->job_id)
        return cn_errf(err, errlen, CN_EINVAL, "job_id is longer than %d characters",
                       PS_JOB_ID_LEN - 1);
    snprintf(cfg->job_id, sizeof cfg->job_id, "%s", r->job_id);
    cfg->shard = r->shard;
    cfg->shards = r->shards;
    cfg->n_params = r->n_params;
    cfg->lo = r->lo;
    cfg->hi = r->hi;
    cfg->staleness = r->staleness;
    cfg->workers = r->workers;
    cfg->checkpoint_every = r->checkpoint_every;
    snprintf(cfg->checkpoint_dir, sizeof cfg->checkpoint_dir, "%s",
             r->checkpoint_dir ? r->checkpoint_dir : "");
    switch (r->consistency) {
    case CANOPY__PS__CONSISTENCY__BSP:
        cfg->mode = PS_BSP;
        break;
    case CANOPY__PS__CONSISTENCY__ASP:
        cfg->mode = PS_ASP;
        break;
    case CANOPY__PS__CONSISTENCY__SSP:
        cfg->mode = PS_SSP;
        break;
    case CANOPY__PS__CONSISTENCY__ROUND:
        cfg->mode = PS_ROUND;
        break;
    default:
        return cn_errf(err, errlen, CN_EINVAL, "consistency %d: allowed BSP, ASP, SSP, ROUND",
                       (int)r->consistency);
    }
    const Canopy__Ps__OptimizerConfig *o = r->optimizer;
    if (o == NULL)
        return cn_errf(err, errlen, CN_EINVAL, "optimizer: missing");
    if (optim_cfg_named(&cfg->optim, o->kind) != CN_OK)
        return cn_errf(err, errlen, CN_EINVAL, "optimizer \"%s\": allowed %s", o->kind,
                       OPTIM_NAMES);
    cfg->optim.lr = o->lr;
    cfg->optim.weight_decay = o->weight_decay;
    cfg->optim.momentum = o->momentum;
    cfg->optim.nesterov = o->nesterov;
    cfg->optim.beta1 = o->beta1;
    cfg->optim.beta2 = o->beta2;
    cfg->optim.eps = o->eps;
    if (optim_sched_parse(o->schedule, &cfg->optim.schedule) != CN_OK)
        return cn_errf(err, errlen, CN_EINVAL, "schedule \"%s\": allowed constant, step, cosine",
                       o->schedule);
    cfg->optim.gamma = o->gamma;
    cfg->optim.step_every = o->step_every;
    cfg->optim.total_steps = o->total_steps;
    cfg->optim.min_lr = o->min_lr;
    return CN_OK;
}

void ps_wire_stats_from_pb(const Canopy__Ps__StatsReply *r, ps_stats *st)
{
    memset(st, 0, sizeof *st);
    st->lo = r->lo;
    st->hi = r->hi;
    st->clock = r->clock;
    st->version = r->version;
    st->workers = r->workers;
    ps_mode_parse(r->consistency, &st->mode);
    for (size_t i = 0; i < r->n_worker_clocks && i < 64; i++)
        st->worker_clocks[i] = r->worker_clocks[i];
    for (size_t i = 0; i < r->n_staleness && i < PS_STALE_BUCKETS; i++)
        st->staleness[i] = r->staleness[i];
    st->pushes = r->pushes;
    st->duplicates = r->duplicates;
    st->pulls = r->pulls;
    st->bytes_in = r->bytes_in;
    st->bytes_out = r->bytes_out;
    st->checkpoints = r->checkpoints;
    st->checkpoint_version = r->checkpoint_version;
    st->restored = r->restored;
    st->apply_seconds = r->apply_seconds;
    st->wait_seconds = r->wait_seconds;
    st->late_updates = r->late_updates;
}
