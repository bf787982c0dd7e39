// ps_shard.c: key ranges and the shard: values, optimizer state, clocks,
// parked pulls, staleness counters and checkpoints (see ps.h).
//
// Checkpoint file, version 1, little-endian:
//   "CNPSCK\0\1" (magic, version in the last byte)
//   u32 job_len, job_id bytes, u32 shard, u32 shards, u64 n_params, u64 lo,
//   u64 hi, u32 mode, u32 staleness, u32 workers, u64 clock, u64 version,
//   u64 worker_clocks[workers], f32 values[hi - lo],
//   u32 optim_len, optim state record (optim_state_encode),
//   u32 CRC-32 (zlib) of every preceding byte.
// It is written with cn_file_write_atomic (write, fsync, rename, fsync dir),
// so a reader sees a whole old or a whole new checkpoint.
#include "ps/ps.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/cn_buf.h"
#include "common/cn_clock.h"
#include "common/cn_file.h"

// ---------------------------------------------------------------- ranges

void ps_range(uint64_t n, uint32_t shards, uint32_t k, uint64_t *lo, uint64_t *hi)
{
    CN_ASSERT(shards >= 1 && k < shards);
    uint64_t base = n / shards, extra = n % shards;
    *lo = k * base + (k < extra ? k : extra);
    *hi = *lo + base + (k < extra ? 1 : 0);
}

uint32_t ps_range_owner(uint64_t n, uint32_t shards, uint64_t key)
{
    CN_ASSERT(shards >= 1 && key < n);
    uint64_t base = n / shards, extra = n % shards;
    uint64_t big = extra * (base + 1); // keys held by the larger ranges
    if (key < big)
        return (uint32_t)(key / (base + 1));
    return (uint32_t)(extra + (key - big) / base);
}

cn_err ps_mode_parse(const char *name, ps_mode *out)
{
    if (strcmp(name, "bsp") == 0)
        *out = PS_BSP;
    else if (strcmp(name, "asp") == 0)
        *out = PS_ASP;
    else if (strcmp(name, "ssp") == 0)
        *out = PS_SSP;
    else if (strcmp(name, "round") == 0)
        *out = PS_ROUND;
    else
        return CN_EINVAL;
    return CN_OK;
}

const char *ps_mode_name(ps_mode m)
{
    switch (m) {
    case PS_BSP:
        return "bsp";
    case PS_ASP:
        return "asp";
    case PS_SSP:
        return "ssp";
    case PS_ROUND:
        return "round";
    }
    return "?";
}

cn_err ps_shard_cfg_check(const ps_shard_cfg *c, char *err, size_t errlen)
{
    size_t jl = strnlen(c->job_id, sizeof c->job_id);
    if (jl == 0 || jl == sizeof c->job_id)
        return cn_errf(err, errlen, CN_EINVAL, "job_id must be 1..%d characters",
                       PS_JOB_ID_LEN - 1);
    for (size_t i = 0; i < jl; i++) {
        char ch = c->job_id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return cn_errf(err, errlen, CN_EINVAL,
                           "job_id \"%s\": only letters, digits, '.', '_' and '-' are allowed",
                           c->job_id);
    }
    if (c->shards < 1 || c->shard >= c->shards)
        return cn_errf(err, errlen, CN_EINVAL, "shard %u of %u: need shard < shards", c->shard,
                       c->shards);
    if (c->n_params < c->shards)
        return cn_errf(err, errlen, CN_EINVAL, "n_params %llu: need at least one key per shard",
                       (unsigned long long)c->n_params);
    uint64_t lo, hi;
    ps_range(c->n_params, c->shards, c->shard, &lo, &hi);
    if (c->lo != lo || c->hi != hi)
        return cn_errf(err, errlen, CN_EINVAL,
                       "range [%llu, %llu) is not shard %u's balanced range [%llu, %llu)",
                       (unsigned long long)c->lo, (unsigned long long)c->hi, c->shard,
                       (unsigned long long)lo, (unsigned long long)hi);
    if (c->workers < 1 || c->workers > PS_MAX_WORKERS)
        return cn_errf(err, errlen, CN_EINVAL, "workers %u: allowed 1..%d", c->workers,
                       PS_MAX_WORKERS);
    if (c->mode != PS_BSP && c->mode != PS_ASP && c->mode != PS_SSP && c->mode != PS_ROUND)
        return cn_errf(err, errlen, CN_EINVAL, "consistency %d: allowed bsp, asp, ssp, round",
                       (int)c->mode);
    return optim_cfg_check(&c->optim, err, errlen);
}

void ps_shard_checkpoint_path(const ps_shard_cfg *cfg, char *out, size_t n)
{
    snprintf(out, n, "%s/%s.shard%u.ckpt", cfg->checkpoint_dir, cfg->job_id, cfg->shard);
}

// ---------------------------------------------------------------- shard

typedef struct waiter {
    uint32_t worker;
    uint64_t clock;
    uint64_t lo, hi;
    uint64_t deadline_ms;
    uint64_t parked_ns;
    ps_wait_fn fn;
    void *arg;
} waiter;

struct ps_shard {
    pthread_mutex_t mu;
    pthread_mutex_t ckpt_mu; // serializes checkpoint writes
    ps_shard_cfg cfg;
    size_t n;          // hi - lo
    float *w;          // (n) values of [lo, hi)
    float *acc;        // (n) BSP: sum of the gradients received for `clock`
    uint8_t *acc_from; // (workers) BSP: who contributed to acc
    uint32_t acc_count;
    optim_state *opt;
    uint64_t clock;   // BSP: steps applied; ASP/SSP: min of wclock
    uint64_t version; // updates applied
    uint64_t *wclock; // (workers) next clock expected from each worker
    bool stepped;     // BSP: closed a step with every worker since created or restored
    waiter *waiters;
    size_t nw, wcap;
    // counters
    uint64_t stale[PS_STALE_BUCKETS];
    uint64_t pushes, dups, pulls, bytes_in, bytes_out, checkpoints;
    uint64_t ckpt_version; // last version written (or restored)
    bool restored;
    double apply_s, wait_s;
    // PS_ROUND: acc holds the round's weighted sum, acc_from who is in it
    double round_weight;
    uint64_t late;
};

const ps_shard_cfg *ps_shard_cfg_of(const ps_shard *s)
{
    return &s->cfg;
}

// acc_add adds w * delta to acc (n floats): a federated update or a BSP
// gradient folded into the round's sum, the whole model per call. Compiled
// for the best vector unit at load time, as ml/optim.c's loops are (gcc at
// -O2 leaves it scalar); ISO C mode contracts no multiply-add, so the sum
// is the same bit for bit.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PS_HOT __attribute__((target_clones("avx512f", "avx2", "default"), optimize("O3")))
#else
#define PS_HOT
#endif

PS_HOT static void acc_add(float *restrict acc, const float *restrict delta, float w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        acc[i] += w * delta[i];
}

// acc_scale multiplies acc (n floats) by c: the round's sum made its mean.
PS_HOT static void acc_scale(float *acc, float c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        acc[i] *= c;
}

static ps_shard *shard_alloc(const ps_shard_cfg *cfg)
{
    ps_shard *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->ckpt_mu, NULL);
    s->cfg = *cfg;
    s->n = (size_t)(cfg->hi - cfg->lo);
    s->w = malloc(s->n * sizeof *s->w);
    s->acc = calloc(s->n, sizeof *s->acc);
    s->acc_from = calloc(cfg->workers, 1);
    s->wclock = calloc(cfg->workers, sizeof *s->wclock);
    s->opt = optim_state_new(&cfg->optim, s->n);
    if (!s->w || !s->acc || !s->acc_from || !s->wclock || !s->opt) {
        ps_shard_free(s);
        return NULL;
    }
    return s;
}

cn_err ps_shard_new(ps_shard **out, const ps_shard_cfg *cfg, const float *init, char *err,
                    size_t errlen)
{
    *out = NULL;
    cn_err e = ps_shard_cfg_check(cfg, err, errlen);
    if (e != CN_OK)
        return e;
    ps_shard *s = shard_alloc(cfg);
    if (s == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory for %llu keys",
                       (unsigned long long)(cfg->hi - cfg->lo));
    memcpy(s->w, init, s->n * sizeof *s->w);
    *out = s;
    return CN_OK;
}

void ps_shard_free(ps_shard *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nw; i++)
        s->waiters[i].fn(s->waiters[i].arg, CN_ECLOSED, NULL, NULL);
    s->nw = 0;
    pthread_mutex_unlock(&s->mu);
    free(s->waiters);
    free(s->w);
    free(s->acc);
    free(s->acc_from);
    free(s->wclock);
    optim_state_free(s->opt);
    pthread_mutex_destroy(&s->ckpt_mu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static uint64_t min_wclock(const ps_shard *s)
{
    uint64_t m = UINT64_MAX;
    for (uint32_t i = 0; i < s->cfg.workers; i++)
        if (s->wclock[i] < m)
            m = s->wclock[i];
    return m;
}

static void fill_sync(const ps_shard *s, uint32_t worker, ps_sync *sync)
{
    sync->clock = s->clock;
    sync->version = s->version;
    sync->worker_clock = worker < s->cfg.workers ? s->wclock[worker] : 0;
    sync->duplicate = false;
}

// ready reports whether a worker about to compute clock may read now.
static bool ready(const ps_shard *s, uint64_t clock)
{
    switch (s->cfg.mode) {
    case PS_BSP:
        return s->clock >= clock;
    case PS_SSP:
        return clock <= s->clock + s->cfg.staleness;
    case PS_ASP:
    case PS_ROUND:
        break;
    }
    return true;
}

static void release(ps_shard *s, const waiter *wt)
{
    ps_sync sync;
    fill_sync(s, wt->worker, &sync);
    s->pulls++;
    s->bytes_out += (wt->hi - wt->lo) * sizeof(float);
    if (wt->parked_ns)
        s->wait_s += (double)(cn_now_ns() - wt->parked_ns) * 1e-9;
    wt->fn(wt->arg, CN_OK, s->w + (wt->lo - s->cfg.lo), &sync);
}

// release_ready calls every parked waiter that may now read.
static void release_ready(ps_shard *s)
{
    for (size_t i = 0; i < s->nw;) {
        if (ready(s, s->waiters[i].clock)) {
            waiter wt = s->waiters[i];
            s->waiters[i] = s->waiters[--s->nw];
            release(s, &wt);
        } else {
            i++;
        }
    }
}

// apply_step applies gradient g; out (may be NULL, may be g) receives the
// new values in the same pass.
static void apply_step(ps_shard *s, const float *g, float *out)
{
    uint64_t t0 = cn_now_ns();
    optim_step_out(&s->cfg.optim, s->opt, s->w, g, out, s->n, s->version);
    s->version++;
    s->apply_s += (double)(cn_now_ns() - t0) * 1e-9;
}

// bsp_close applies the mean of the accumulated gradients as one step; out
// as for apply_step (but never aliasing acc).
static void bsp_close(ps_shard *s, float *out)
{
    if (s->acc_count > 0) {
        acc_scale(s->acc, 1.0f / (float)s->acc_count, s->n);
        apply_step(s, s->acc, out);
        memset(s->acc, 0, s->n * sizeof *s->acc);
        memset(s->acc_from, 0, s->cfg.workers);
        s->acc_count = 0;
    } else if (out) {
        memcpy(out, s->w, s->n * sizeof *out);
    }
}

static bool ckpt_due(const ps_shard *s)
{
    return s->cfg.checkpoint_dir[0] && s->cfg.checkpoint_every > 0 &&
           s->version >= s->ckpt_version + s->cfg.checkpoint_every;
}

// push_locked is ps_shard_push with the lock held. When out is not NULL
// and the worker may read the values for clock + 1 as soon as this push is
// done, they are written to out (hi - lo floats; may be g) and *answered
// is set; the update that produced them writes them in the same pass.
// Returns CN_ERANGE (nothing changed; sync filled) for a clock above
// PS_MAX_CLOCK or a BSP clock ahead of a shard that has stepped.
static cn_err push_locked(ps_shard *s, uint32_t worker, uint64_t clock, uint64_t base_version,
                          const float *g, float *out, bool *answered, ps_sync *sync)
{
    *answered = false;
    if (clock > PS_MAX_CLOCK || (s->cfg.mode == PS_BSP && clock > s->clock && s->stepped)) {
        fill_sync(s, worker, sync);
        return CN_ERANGE;
    }
    s->bytes_in += s->n * sizeof(float);
    bool dup = false;
    if (s->cfg.mode == PS_BSP) {
        if (clock < s->clock || (clock == s->clock && s->acc_from[worker])) {
            dup = true;
        } else {
            if (clock > s->clock) {
                // Only after a restart from an older checkpoint: the workers
                // are ahead. Close what was received and join them.
                bsp_close(s, NULL);
                s->clock = clock;
            }
            acc_add(s->acc, g, 1.0f, s->n); // 1 * g[i] is g[i] exactly
            s->acc_from[worker] = 1;
            s->acc_count++;
            s->wclock[worker] = clock + 1;
            s->stale[0]++;
            if (s->acc_count == s->cfg.workers) {
                // g has been read: out may now be written even if it is g.
                bsp_close(s, out);
                *answered = out != NULL;
                s->clock++;
                s->stepped = true;
                release_ready(s);
            }
        }
    } else {
        if (clock < s->wclock[worker]) {
            dup = true;
        } else {
            uint64_t st = s->version > base_version ? s->version - base_version : 0;
            s->stale[st < PS_STALE_BUCKETS - 1 ? st : PS_STALE_BUCKETS - 1]++;
            s->wclock[worker] = clock + 1;
            s->clock = min_wclock(s);
            // The clocks move first so that whether this worker may read on
            // is known before the values are written.
            *answered = out != NULL && ready(s, clock + 1);
            apply_step(s, g, *answered ? out : NULL);
            release_ready(s);
        }
    }
    if (dup) {
        s->dups++;
        if (out && ready(s, clock + 1)) {
            memcpy(out, s->w, s->n * sizeof *out);
            *answered = true;
        }
    } else {
        s->pushes++;
    }
    if (*answered) {
        s->pulls++;
        s->bytes_out += s->n * sizeof(float);
    }
    fill_sync(s, worker, sync);
    sync->duplicate = dup;
    return CN_OK;
}

cn_err ps_shard_push(ps_shard *s, uint32_t worker, uint64_t clock, uint64_t base_version,
                     const float *g, ps_sync *sync, bool *due)
{
    *due = false;
    if (worker >= s->cfg.workers || s->cfg.mode == PS_ROUND)
        return CN_EINVAL; // a federated shard takes updates (ps_shard_push_update)
    bool answered;
    pthread_mutex_lock(&s->mu);
    cn_err e = push_locked(s, worker, clock, base_version, g, NULL, &answered, sync);
    *due = ckpt_due(s);
    pthread_mutex_unlock(&s->mu);
    return e;
}

cn_err ps_shard_push_pull(ps_shard *s, uint32_t worker, uint64_t clock, uint64_t base_version,
                          float *io, ps_sync *sync, bool *due, bool *answered)
{
    *due = false;
    *answered = false;
    if (worker >= s->cfg.workers || s->cfg.mode == PS_ROUND)
        return CN_EINVAL;
    pthread_mutex_lock(&s->mu);
    cn_err e = push_locked(s, worker, clock, base_version, io, io, answered, sync);
    *due = ckpt_due(s);
    pthread_mutex_unlock(&s->mu);
    return e;
}

static bool range_ok(const ps_shard *s, uint64_t lo, uint64_t hi)
{
    return lo < hi && lo >= s->cfg.lo && hi <= s->cfg.hi;
}

cn_err ps_shard_wait(ps_shard *s, uint32_t worker, uint64_t clock, bool consistent, uint64_t lo,
                     uint64_t hi, uint64_t deadline_ms, ps_wait_fn fn, void *arg)
{
    if (!range_ok(s, lo, hi))
        return CN_ERANGE;
    if (consistent && worker >= s->cfg.workers)
        return CN_EINVAL;
    waiter wt = {.worker = worker,
                 .clock = clock,
                 .lo = lo,
                 .hi = hi,
                 .deadline_ms = deadline_ms,
                 .fn = fn,
                 .arg = arg};
    pthread_mutex_lock(&s->mu);
    if (!consistent || ready(s, clock)) {
        release(s, &wt);
        pthread_mutex_unlock(&s->mu);
        return CN_OK;
    }
    if (s->nw == s->wcap) {
        size_t cap = s->wcap ? 2 * s->wcap : 16;
        waiter *nwv = realloc(s->waiters, cap * sizeof *nwv);
        if (nwv == NULL) {
            pthread_mutex_unlock(&s->mu);
            return CN_ENOMEM;
        }
        s->waiters = nwv;
        s->wcap = cap;
    }
    wt.parked_ns = cn_now_ns();
    s->waiters[s->nw++] = wt;
    pthread_mutex_unlock(&s->mu);
    return CN_OK;
}

cn_err ps_shard_pull(ps_shard *s, uint64_t lo, uint64_t hi, float *out, ps_sync *sync)
{
    if (!range_ok(s, lo, hi))
        return CN_ERANGE;
    pthread_mutex_lock(&s->mu);
    memcpy(out, s->w + (lo - s->cfg.lo), (size_t)(hi - lo) * sizeof *out);
    s->pulls++;
    s->bytes_out += (hi - lo) * sizeof(float);
    if (sync)
        fill_sync(s, UINT32_MAX, sync);
    pthread_mutex_unlock(&s->mu);
    return CN_OK;
}

size_t ps_shard_expire(ps_shard *s, uint64_t now_ms)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nw;) {
        if (s->waiters[i].deadline_ms <= now_ms) {
            waiter wt = s->waiters[i];
            s->waiters[i] = s->waiters[--s->nw];
            wt.fn(wt.arg, CN_ETIMEDOUT, NULL, NULL);
            n++;
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

void ps_shard_stats(ps_shard *s, ps_stats *o)
{
    memset(o, 0, sizeof *o);
    pthread_mutex_lock(&s->mu);
    o->lo = s->cfg.lo;
    o->hi = s->cfg.hi;
    o->clock = s->clock;
    o->version = s->version;
    o->workers = s->cfg.workers;
    o->mode = s->cfg.mode;
    for (uint32_t i = 0; i < s->cfg.workers && i < 64; i++)
        o->worker_clocks[i] = s->wclock[i];
    memcpy(o->staleness, s->stale, sizeof o->staleness);
    o->pushes = s->pushes;
    o->duplicates = s->dups;
    o->pulls = s->pulls;
    o->bytes_in = s->bytes_in;
    o->bytes_out = s->bytes_out;
    o->checkpoints = s->checkpoints;
    o->checkpoint_version = s->ckpt_version;
    o->restored = s->restored;
    o->apply_seconds = s->apply_s;
    o->wait_seconds = s->wait_s;
    o->late_updates = s->late;
    pthread_mutex_unlock(&s->mu);
}

// ---------------------------------------------------------------- rounds

cn_err ps_shard_push_update(ps_shard *s, uint32_t client, uint64_t round, double weight,
                            const float *delta, ps_sync *sync, uint32_t *updates)
{
    if (s->cfg.mode != PS_ROUND || client >= s->cfg.workers || !isfinite(weight) ||
        !(weight > 0))
        return CN_EINVAL;
    pthread_mutex_lock(&s->mu);
    fill_sync(s, client, sync);
    if (round != s->clock) {
        s->late++;
        pthread_mutex_unlock(&s->mu);
        return CN_ESTATE;
    }
    s->bytes_in += s->n * sizeof(float);
    if (s->acc_from[client]) {
        s->dups++;
        sync->duplicate = true;
    } else {
        // One streaming weighted sum: the mean is taken when the round closes.
        acc_add(s->acc, delta, (float)weight, s->n);
        s->acc_from[client] = 1;
        s->acc_count++;
        s->round_weight += weight;
        s->wclock[client] = round + 1;
        s->pushes++;
    }
    if (updates)
        *updates = s->acc_count;
    pthread_mutex_unlock(&s->mu);
    return CN_OK;
}

cn_err ps_shard_close_round(ps_shard *s, uint64_t round, bool apply, ps_round_close *out,
                            bool *due)
{
    memset(out, 0, sizeof *out);
    *due = false;
    if (s->cfg.mode != PS_ROUND)
        return CN_EINVAL;
    pthread_mutex_lock(&s->mu);
    cn_err e = CN_OK;
    if (round > s->clock) {
        e = CN_ESTATE;
    } else if (round < s->clock) {
        out->already_closed = true;
    } else {
        out->updates = s->acc_count;
        out->weight = s->round_weight;
        if (apply) {
            uint64_t t0 = cn_now_ns();
            if (s->acc_count > 0) {
                // The pseudo-gradient: the negated weighted mean delta.
                acc_scale(s->acc, (float)(-1.0 / s->round_weight), s->n);
                apply_step(s, s->acc, NULL);
            } else {
                s->version++; // an empty round still moves the clock
            }
            s->clock++;
            s->stale[0] += s->acc_count;
            out->apply_seconds = (double)(cn_now_ns() - t0) * 1e-9;
            *due = ckpt_due(s);
        }
        memset(s->acc, 0, s->n * sizeof *s->acc);
        memset(s->acc_from, 0, s->cfg.workers);
        s->acc_count = 0;
        s->round_weight = 0;
    }
    out->round = s->clock;
    out->version = s->version;
    pthread_mutex_unlock(&s->mu);
    return e;
}

// ---------------------------------------------------------------- checkpoints

static const uint8_t CKPT_MAGIC[8] = {'C', 'N', 'P', 'S', 'C', 'K', 0, 1};

static void put_u32(cn_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    cn_buf_append(b, x, 4);
}

static void put_u64(cn_buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

cn_err ps_shard_checkpoint(ps_shard *s, uint64_t *version, char *err, size_t errlen)
{
    if (!s->cfg.checkpoint_dir[0])
        return cn_errf(err, errlen, CN_ESTATE, "no checkpoint directory configured");
    pthread_mutex_lock(&s->ckpt_mu);
    cn_buf b;
    cn_buf_init(&b);
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->version;
    if (v == s->ckpt_version && s->checkpoints + (s->restored ? 1 : 0) > 0) {
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_unlock(&s->ckpt_mu);
        *version = v;
        return CN_OK;
    }
    const ps_shard_cfg *c = &s->cfg;
    size_t jl = strlen(c->job_id);
    cn_buf_append(&b, CKPT_MAGIC, sizeof CKPT_MAGIC);
    put_u32(&b, (uint32_t)jl);
    cn_buf_append(&b, c->job_id, jl);
    put_u32(&b, c->shard);
    put_u32(&b, c->shards);
    put_u64(&b, c->n_params);
    put_u64(&b, c->lo);
    put_u64(&b, c->hi);
    put_u32(&b, (uint32_t)c->mode);
    put_u32(&b, c->staleness);
    put_u32(&b, c->workers);
    put_u64(&b, s->clock);
    put_u64(&b, s->version);
    for (uint32_t i = 0; i < c->workers; i++)
        put_u64(&b, s->wclock[i]);
    cn_buf_append(&b, s->w, s->n * sizeof(float)); // little-endian hosts only (docs/ps.md)
    size_t olen_at = b.len;
    put_u32(&b, 0);
    optim_state_encode(s->opt, &b);
    pthread_mutex_unlock(&s->mu);
    cn_err e = CN_OK;
    if (b.oom) {
        e = cn_errf(err, errlen, CN_ENOMEM, "out of memory encoding the checkpoint");
        goto out;
    }
    uint32_t olen = (uint32_t)(b.len - olen_at - 4);
    for (int i = 0; i < 4; i++)
        b.data[olen_at + i] = (char)(olen >> (8 * i));
    put_u32(&b, (uint32_t)crc32(0L, (const Bytef *)b.data, (uInt)b.len));
    if (b.oom) {
        e = cn_errf(err, errlen, CN_ENOMEM, "out of memory encoding the checkpoint");
        goto out;
    }
    char path[1400];
    ps_shard_checkpoint_path(c, path, sizeof path);
    if ((e = cn_file_mkdirs(c->checkpoint_dir, err, errlen)) != CN_OK)
        goto out;
    if ((e = cn_file_write_atomic(path, b.data, b.len, err, errlen)) != CN_OK)
        goto out;
    pthread_mutex_lock(&s->mu);
    if (v > s->ckpt_version || s->checkpoints == 0)
        s->ckpt_version = v;
    s->checkpoints++;
    pthread_mutex_unlock(&s->mu);
    *version = v;
out:
    cn_buf_fini(&b);
    pthread_mutex_unlock(&s->ckpt_mu);
    return e;
}

typedef struct rd {
    const uint8_t *p;
    size_t left;
    bool bad;
} rd;

static uint32_t get_u32(rd *r)
{
    if (r->left < 4) {
        r->bad = true;
        return 0;
    }
    uint32_t v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
                 (uint32_t)r->p[3] << 24;
    r->p += 4;
    r->left -= 4;
    return v;
}

static uint64_t get_u64(rd *r)
{
    uint64_t lo = get_u32(r);
    return lo | (uint64_t)get_u32(r) << 32;
}

static const uint8_t *get_bytes(rd *r, size_t n)
{
    if (r->left < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

cn_err ps_shard_restore(ps_shard **out, const ps_shard_cfg *cfg, const char *path, char *err,
                        size_t errlen)
{
    *out = NULL;
    cn_err e = ps_shard_cfg_check(cfg, err, errlen);
    if (e != CN_OK)
        return e;
    uint8_t *data = NULL;
    size_t len = 0;
    if ((e = cn_file_read_all(path, 0, &data, &len, err, errlen)) != CN_OK)
        return e;
    ps_shard *s = NULL;
    if (len < sizeof CKPT_MAGIC + 4 || memcmp(data, CKPT_MAGIC, 7) != 0) {
        e = cn_errf(err, errlen, CN_EFORMAT, "%s: not a canopy shard checkpoint", path);
        goto out;
    }
    if (data[7] != CKPT_MAGIC[7]) {
        e = cn_errf(err, errlen, CN_EVERSION, "%s: checkpoint version %u, this build reads %u",
                    path, data[7], CKPT_MAGIC[7]);
        goto out;
    }
    uint32_t want = (uint32_t)data[len - 4] | (uint32_t)data[len - 3] << 8 |
                    (uint32_t)data[len - 2] << 16 | (uint32_t)data[len - 1] << 24;
    if ((uint32_t)crc32(0L, data, (uInt)(len - 4)) != want) {
        e = cn_errf(err, errlen, CN_EIO, "%s: checksum mismatch (file is corrupted)", path);
        goto out;
    }
    rd r = {data + 8, len - 12, false};
    uint32_t jl = get_u32(&r);
    const uint8_t *job = get_bytes(&r, jl);
    uint32_t shard = get_u32(&r), shards = get_u32(&r);
    uint64_t n_params = get_u64(&r), lo = get_u64(&r), hi = get_u64(&r);
    uint32_t mode = get_u32(&r), staleness = get_u32(&r), workers = get_u32(&r);
    uint64_t clock = get_u64(&r), version = get_u64(&r);
    if (r.bad) {
        e = cn_errf(err, errlen, CN_EFORMAT, "%s: truncated header", path);
        goto out;
    }
    if (jl != strlen(cfg->job_id) || memcmp(job, cfg->job_id, jl) != 0 || shard != cfg->shard ||
        shards != cfg->shards || n_params != cfg->n_params || lo != cfg->lo || hi != cfg->hi ||
        mode != (uint32_t)cfg->mode || workers != cfg->workers) {
        e = cn_errf(err, errlen, CN_EINVAL,
                    "%s: checkpoint is for another job or layout (shard %u of %u, keys [%llu, "
                    "%llu), %u workers)",
                    path, shard, shards, (unsigned long long)lo, (unsigned long long)hi, workers);
        goto out;
    }
    (void)staleness;
    s = shard_alloc(cfg);
    if (s == NULL) {
        e = cn_errf(err, errlen, CN_ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < workers; i++)
        s->wclock[i] = get_u64(&r);
    const uint8_t *vals = get_bytes(&r, s->n * sizeof(float));
    uint32_t olen = get_u32(&r);
    const uint8_t *ost = get_bytes(&r, olen);
    if (r.bad || r.left != 0) {
        e = cn_errf(err, errlen, CN_EFORMAT, "%s: length does not match the layout", path);
        goto out;
    }
    memcpy(s->w, vals, s->n * sizeof(float));
    if ((e = optim_state_decode(s->opt, ost, olen, err, errlen)) != CN_OK)
        goto out;
    s->clock = clock;
    s->version = version;
    s->ckpt_version = version;
    s->restored = true;
    *out = s;
    s = NULL;
out:
    ps_shard_free(s);
    free(data);
    return e;
}
