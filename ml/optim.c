// optim.c: SGD, momentum (heavy ball and Nesterov) and Adam/AdamW over a
// slice of a flat vector, with constant, step and cosine schedules.
//
// The update loops are the hot path of training (the whole model every
// step), so they are compiled for the best vector unit at load time
// (target_clones) and kept free of branches inside the loop.
#include "ml/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "records are written little-endian");

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define OPTIM_HOT                                                                                  \
    __attribute__((target_clones("avx512f", "avx2", "default"), optimize("O3", "no-math-errno")))
#else
#define OPTIM_HOT
#endif

// OPTIM_IVDEP tells gcc a loop's iterations do not depend on each other
// through memory. clang has no equivalent that it may not refuse (its
// vectorize hint warns when it cannot prove the same), so it gets none.
#if defined(__GNUC__) && !defined(__clang__)
#define OPTIM_IVDEP _Pragma("GCC ivdep")
#else
#define OPTIM_IVDEP
#endif

#define N_KINDS 5 // optim_kind values
#define STATE_MAGIC "CNOS"
#define STATE_VERSION 1u

struct optim_state {
    optim_kind kind;
    size_t n;
    uint64_t steps;
    int nslots;
    float *slot[2]; // (n) each
};

void optim_cfg_default(optim_cfg *cfg, optim_kind kind)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = kind;
    cfg->lr = kind == OPTIM_ADAM ? 1e-3f : 0.01f;
    cfg->momentum = 0.9f;
    cfg->beta1 = 0.9f;
    cfg->beta2 = 0.999f;
    cfg->eps = 1e-8f;
    cfg->schedule = OPTIM_SCHED_CONSTANT;
    cfg->gamma = 0.1f;
    cfg->step_every = 1000;
    cfg->total_steps = 1000;
    cfg->min_lr = 0.0f;
}

cn_err optim_cfg_check(const optim_cfg *cfg, char *err, size_t errlen)
{
    if ((unsigned)cfg->kind >= N_KINDS)
        return cn_errf(err, errlen, CN_EINVAL, "optimizer: unknown kind %d", (int)cfg->kind);
    if (!(cfg->lr > 0.0f) || !isfinite(cfg->lr))
        return cn_errf(err, errlen, CN_EINVAL, "lr: %g is not allowed (must be > 0)",
                       (double)cfg->lr);
    if (!(cfg->weight_decay >= 0.0f) || !isfinite(cfg->weight_decay))
        return cn_errf(err, errlen, CN_EINVAL, "weight_decay: %g is not allowed (must be >= 0)",
                       (double)cfg->weight_decay);
    if (cfg->kind == OPTIM_MOMENTUM && !(cfg->momentum >= 0.0f && cfg->momentum < 1.0f))
        return cn_errf(err, errlen, CN_EINVAL, "momentum: %g is not allowed (must be in [0, 1))",
                       (double)cfg->momentum);
    if (cfg->kind == OPTIM_ADAM || cfg->kind == OPTIM_ADAGRAD || cfg->kind == OPTIM_YOGI) {
        if (!(cfg->beta1 >= 0.0f && cfg->beta1 < 1.0f) ||
            !(cfg->beta2 >= 0.0f && cfg->beta2 < 1.0f))
            return cn_errf(err, errlen, CN_EINVAL,
                           "betas: (%g, %g) are not allowed (each must be in [0, 1))",
                           (double)cfg->beta1, (double)cfg->beta2);
        if (!(cfg->eps > 0.0f))
            return cn_errf(err, errlen, CN_EINVAL, "eps: %g is not allowed (must be > 0)",
                           (double)cfg->eps);
    }
    switch (cfg->schedule) {
    case OPTIM_SCHED_CONSTANT:
        break;
    case OPTIM_SCHED_STEP:
        if (cfg->step_every == 0 || !(cfg->gamma > 0.0f))
            return cn_errf(err, errlen, CN_EINVAL,
                           "step schedule: every=%llu gamma=%g (need every > 0 and gamma > 0)",
                           (unsigned long long)cfg->step_every, (double)cfg->gamma);
        break;
    case OPTIM_SCHED_COSINE:
        if (cfg->total_steps == 0 || !(cfg->min_lr >= 0.0f) || cfg->min_lr > cfg->lr)
            return cn_errf(err, errlen, CN_EINVAL,
                           "cosine schedule: total_steps=%llu min_lr=%g (need total_steps > 0 "
                           "and 0 <= min_lr <= lr)",
                           (unsigned long long)cfg->total_steps, (double)cfg->min_lr);
        break;
    default:
        return cn_errf(err, errlen, CN_EINVAL, "schedule: unknown kind %d", (int)cfg->schedule);
    }
    return CN_OK;
}

float optim_lr(const optim_cfg *cfg, uint64_t t)
{
    switch (cfg->schedule) {
    case OPTIM_SCHED_STEP:
        return (float)((double)cfg->lr * pow((double)cfg->gamma, (double)(t / cfg->step_every)));
    case OPTIM_SCHED_COSINE: {
        uint64_t tt = t < cfg->total_steps ? t : cfg->total_steps;
        double c = 0.5 * (1.0 + cos(M_PI * (double)tt / (double)cfg->total_steps));
        return (float)((double)cfg->min_lr + ((double)cfg->lr - (double)cfg->min_lr) * c);
    }
    case OPTIM_SCHED_CONSTANT:
    default:
        return cfg->lr;
    }
}

static const char *const kind_names[] = {"sgd", "momentum", "adam", "adagrad", "yogi"};
static const char *const sched_names[] = {"constant", "step", "cosine"};

cn_err optim_kind_parse(const char *name, optim_kind *out)
{
    for (int i = 0; i < N_KINDS; i++)
        if (strcmp(name, kind_names[i]) == 0) {
            *out = (optim_kind)i;
            return CN_OK;
        }
    if (strcmp(name, "adamw") == 0) {
        *out = OPTIM_ADAM;
        return CN_OK;
    }
    return CN_EINVAL;
}

cn_err optim_sched_parse(const char *name, optim_sched *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, sched_names[i]) == 0) {
            *out = (optim_sched)i;
            return CN_OK;
        }
    return CN_EINVAL;
}

const char *optim_kind_name(optim_kind kind)
{
    return (unsigned)kind < N_KINDS ? kind_names[kind] : "unknown";
}

const char *optim_sched_name(optim_sched s)
{
    return (unsigned)s < 3 ? sched_names[s] : "unknown";
}

static int kind_slots(optim_kind kind)
{
    return kind == OPTIM_ADAM || kind == OPTIM_ADAGRAD || kind == OPTIM_YOGI ? 2
           : kind == OPTIM_MOMENTUM                                          ? 1
                                                                             : 0;
}

optim_state *optim_state_new(const optim_cfg *cfg, size_t n)
{
    optim_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    st->kind = cfg->kind;
    st->n = n;
    st->nslots = kind_slots(cfg->kind);
    for (int s = 0; s < st->nslots; s++) {
        st->slot[s] = calloc(n ? n : 1, sizeof(float));
        if (st->slot[s] == NULL) {
            optim_state_free(st);
            return NULL;
        }
    }
    return st;
}

void optim_state_free(optim_state *st)
{
    if (st == NULL)
        return;
    free(st->slot[0]);
    free(st->slot[1]);
    free(st);
}

size_t optim_state_n(const optim_state *st)
{
    return st->n;
}
int optim_state_nslots(const optim_state *st)
{
    return st->nslots;
}
uint64_t optim_state_steps(const optim_state *st)
{
    return st->steps;
}
void optim_state_set_steps(optim_state *st, uint64_t steps)
{
    st->steps = steps;
}

float *optim_state_slot(optim_state *st, int slot)
{
    return slot >= 0 && slot < st->nslots ? st->slot[slot] : NULL;
}

// The kernels. wd is the coupled L2 coefficient (0 when unused). out, when
// not NULL, receives a copy of the updated values in the same pass; it may be
// g itself: element i of g is read before element i of out is written, and
// no element is read after it was written (hence ivdep, not restrict).

OPTIM_HOT static void step_sgd(float *restrict w, const float *g, float *out, size_t n, float lr,
                               float wd)
{
    if (out == NULL) {
        for (size_t i = 0; i < n; i++)
            w[i] -= lr * (g[i] + wd * w[i]);
        return;
    }
    OPTIM_IVDEP
    for (size_t i = 0; i < n; i++) {
        float wi = w[i] - lr * (g[i] + wd * w[i]);
        w[i] = wi;
        out[i] = wi;
    }
}

OPTIM_HOT static void step_momentum(float *restrict w, const float *g, float *restrict v,
                                    float *out, size_t n, float lr, float wd, float mu,
                                    int nesterov)
{
    if (nesterov) {
        OPTIM_IVDEP
        for (size_t i = 0; i < n; i++) {
            float gi = g[i] + wd * w[i];
            float vi = mu * v[i] + gi;
            v[i] = vi;
            float wi = w[i] - lr * (gi + mu * vi);
            w[i] = wi;
            if (out)
                out[i] = wi;
        }
    } else {
        OPTIM_IVDEP
        for (size_t i = 0; i < n; i++) {
            float vi = mu * v[i] + (g[i] + wd * w[i]);
            v[i] = vi;
            float wi = w[i] - lr * vi;
            w[i] = wi;
            if (out)
                out[i] = wi;
        }
    }
}

// Adam in PyTorch's arrangement: w -= a * m / (sqrt(v) * c + eps) with
// a = lr / (1 - beta1^t) and c = 1 / sqrt(1 - beta2^t). decay is the
// decoupled factor (1 - lr * wd), 1 when unused; wd the coupled coefficient.
// GCC will not vectorize sqrtf without -fno-math-errno (which a function
// attribute cannot set), so the vector versions use intrinsics. All three
// versions perform the same IEEE operations in the same order (no FMA), so
// results do not depend on the vector unit or on where a slice starts.
typedef struct adam_k {
    float a, c, b1, b2, ob1, ob2, eps, wd, decay;
} adam_k;

static void adam_scalar(float *restrict w, const float *g, float *restrict m, float *restrict v,
                        float *out, size_t i, size_t n, const adam_k *k)
{
    for (; i < n; i++) {
        float wi = w[i] * k->decay;
        float gi = g[i] + k->wd * w[i];
        float mi = k->b1 * m[i] + k->ob1 * gi;
        float vi = k->b2 * v[i] + k->ob2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = wi - k->a * mi / (sqrtf(vi) * k->c + k->eps);
        if (out)
            out[i] = w[i];
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx512f"))) static void adam_avx512(float *restrict w, const float *g,
                                                           float *restrict m, float *restrict v,
                                                           float *out, size_t n, const adam_k *k)
{
    const __m512 a = _mm512_set1_ps(k->a), c = _mm512_set1_ps(k->c);
    const __m512 b1 = _mm512_set1_ps(k->b1), b2 = _mm512_set1_ps(k->b2);
    const __m512 ob1 = _mm512_set1_ps(k->ob1), ob2 = _mm512_set1_ps(k->ob2);
    const __m512 eps = _mm512_set1_ps(k->eps), wd = _mm512_set1_ps(k->wd);
    const __m512 decay = _mm512_set1_ps(k->decay);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 w0 = _mm512_loadu_ps(w + i);
        __m512 wi = _mm512_mul_ps(w0, decay);
        __m512 gi = _mm512_add_ps(_mm512_loadu_ps(g + i), _mm512_mul_ps(wd, w0));
        __m512 mi =
            _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)), _mm512_mul_ps(ob1, gi));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)),
                                  _mm512_mul_ps(_mm512_mul_ps(ob2, gi), gi));
        _mm512_storeu_ps(m + i, mi);
        _mm512_storeu_ps(v + i, vi);
        __m512 den = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vi), c), eps);
        __m512 wn = _mm512_sub_ps(wi, _mm512_div_ps(_mm512_mul_ps(a, mi), den));
        _mm512_storeu_ps(w + i, wn);
        if (out)
            _mm512_storeu_ps(out + i, wn);
    }
    adam_scalar(w, g, m, v, out, i, n, k);
}

__attribute__((target("avx"))) static void adam_avx(float *restrict w, const float *g,
                                                    float *restrict m, float *restrict v,
                                                    float *out, size_t n, const adam_k *k)
{
    const __m256 a = _mm256_set1_ps(k->a), c = _mm256_set1_ps(k->c);
    const __m256 b1 = _mm256_set1_ps(k->b1), b2 = _mm256_set1_ps(k->b2);
    const __m256 ob1 = _mm256_set1_ps(k->ob1), ob2 = _mm256_set1_ps(k->ob2);
    const __m256 eps = _mm256_set1_ps(k->eps), wd = _mm256_set1_ps(k->wd);
    const __m256 decay = _mm256_set1_ps(k->decay);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 w0 = _mm256_loadu_ps(w + i);
        __m256 wi = _mm256_mul_ps(w0, decay);
        __m256 gi = _mm256_add_ps(_mm256_loadu_ps(g + i), _mm256_mul_ps(wd, w0));
        __m256 mi =
            _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(ob1, gi));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)),
                                  _mm256_mul_ps(_mm256_mul_ps(ob2, gi), gi));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        __m256 den = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), c), eps);
        __m256 wn = _mm256_sub_ps(wi, _mm256_div_ps(_mm256_mul_ps(a, mi), den));
        _mm256_storeu_ps(w + i, wn);
        if (out)
            _mm256_storeu_ps(out + i, wn);
    }
    adam_scalar(w, g, m, v, out, i, n, k);
}
#endif

static void step_adam(float *restrict w, const float *g, float *restrict m, float *restrict v,
                      float *out, size_t n, const adam_k *k)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f")) {
        adam_avx512(w, g, m, v, out, n, k);
        return;
    }
    if (__builtin_cpu_supports("avx")) {
        adam_avx(w, g, m, v, out, n, k);
        return;
    }
#endif
    adam_scalar(w, g, m, v, out, 0, n, k);
}

// Adagrad and Yogi (Reddi et al. 2021): the server optimizers of FedOpt.
// Scalar: they step a model once per federated round, not per minibatch.
static void step_adaptive(float *restrict w, const float *restrict g, float *restrict m,
                          float *restrict v, size_t n, float lr, const optim_cfg *cfg, int yogi)
{
    float b1 = cfg->beta1, ob1 = 1.0f - cfg->beta1, ob2 = 1.0f - cfg->beta2;
    float wd = cfg->weight_decay;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * w[i];
        float g2 = gi * gi;
        m[i] = b1 * m[i] + ob1 * gi;
        if (yogi) {
            float d = v[i] - g2;
            v[i] -= ob2 * g2 * (float)((d > 0.0f) - (d < 0.0f));
        } else {
            v[i] += g2;
        }
        w[i] -= lr * m[i] / (sqrtf(v[i]) + cfg->eps);
    }
}

// step_range is optim_step_part with an optional copy of the result (out,
// element 0 of the slice like w; may be the gradient when lo is 0).
static void step_range(const optim_cfg *cfg, optim_state *st, float *w, const float *g, float *out,
                       size_t lo, size_t hi, uint64_t t)
{
    CN_ASSERT(st != NULL && lo <= hi && hi <= st->n && cfg->kind == st->kind);
    float lr = optim_lr(cfg, t);
    size_t n = hi - lo;
    w += lo;
    if (out)
        out += lo;
    switch (cfg->kind) {
    case OPTIM_SGD:
        step_sgd(w, g, out, n, lr, cfg->weight_decay);
        break;
    case OPTIM_MOMENTUM:
        step_momentum(w, g, st->slot[0] + lo, out, n, lr, cfg->weight_decay, cfg->momentum,
                      cfg->nesterov);
        break;
    case OPTIM_ADAM: {
        double tk = (double)t + 1.0;
        double bc1 = 1.0 - pow((double)cfg->beta1, tk);
        double bc2 = 1.0 - pow((double)cfg->beta2, tk);
        adam_k k;
        k.a = (float)((double)lr / bc1);
        k.c = (float)(1.0 / sqrt(bc2));
        k.b1 = cfg->beta1;
        k.b2 = cfg->beta2;
        k.ob1 = 1.0f - cfg->beta1;
        k.ob2 = 1.0f - cfg->beta2;
        k.eps = cfg->eps;
        k.wd = cfg->decoupled_wd ? 0.0f : cfg->weight_decay;
        k.decay = cfg->decoupled_wd ? 1.0f - lr * cfg->weight_decay : 1.0f;
        step_adam(w, g, st->slot[0] + lo, st->slot[1] + lo, out, n, &k);
        break;
    }
    case OPTIM_ADAGRAD:
    case OPTIM_YOGI:
        step_adaptive(w, g, st->slot[0] + lo, st->slot[1] + lo, n, lr, cfg,
                      cfg->kind == OPTIM_YOGI);
        if (out)
            memmove(out, w, n * sizeof *w);
        break;
    }
}

void optim_step_range(const optim_cfg *cfg, optim_state *st, float *w, const float *g, size_t lo,
                      size_t hi, uint64_t t)
{
    CN_ASSERT(lo <= hi);
    step_range(cfg, st, w, g + lo, NULL, lo, hi, t);
}

void optim_step_part(const optim_cfg *cfg, optim_state *st, float *w, const float *g, size_t lo,
                     size_t hi, uint64_t t)
{
    step_range(cfg, st, w, g, NULL, lo, hi, t);
}

void optim_step(const optim_cfg *cfg, optim_state *st, float *w, const float *g, size_t n,
                uint64_t t)
{
    optim_step_out(cfg, st, w, g, NULL, n, t);
}

void optim_step_out(const optim_cfg *cfg, optim_state *st, float *w, const float *g, float *out,
                    size_t n, uint64_t t)
{
    CN_ASSERT(st != NULL && n == st->n && cfg->kind == st->kind);
    step_range(cfg, st, w, g, out, 0, n, t);
    st->steps++;
}

// Record layout (little-endian): "CNOS", u32 version, u32 kind, u32 nslots,
// u64 n, u64 steps, then nslots * n floats.
#define STATE_HDR 32

cn_err optim_state_encode(const optim_state *st, cn_buf *out)
{
    uint8_t hdr[STATE_HDR];
    uint32_t ver = STATE_VERSION, kind = (uint32_t)st->kind, ns = (uint32_t)st->nslots;
    uint64_t n = st->n, steps = st->steps;
    memcpy(hdr, STATE_MAGIC, 4);
    memcpy(hdr + 4, &ver, 4);
    memcpy(hdr + 8, &kind, 4);
    memcpy(hdr + 12, &ns, 4);
    memcpy(hdr + 16, &n, 8);
    memcpy(hdr + 24, &steps, 8);
    cn_err rc = cn_buf_append(out, hdr, sizeof hdr);
    for (int s = 0; s < st->nslots && rc == CN_OK; s++)
        rc = cn_buf_append(out, st->slot[s], st->n * sizeof(float));
    return rc;
}

cn_err optim_state_decode(optim_state *st, const void *data, size_t len, char *err, size_t errlen)
{
    const uint8_t *p = data;
    uint32_t ver, kind, ns;
    uint64_t n, steps;
    if (len < STATE_HDR || memcmp(p, STATE_MAGIC, 4) != 0)
        return cn_errf(err, errlen, CN_EFORMAT,
                       "optimizer state: bad magic or short record (%zu bytes)", len);
    memcpy(&ver, p + 4, 4);
    memcpy(&kind, p + 8, 4);
    memcpy(&ns, p + 12, 4);
    memcpy(&n, p + 16, 8);
    memcpy(&steps, p + 24, 8);
    if (ver != STATE_VERSION)
        return cn_errf(err, errlen, CN_EVERSION,
                       "optimizer state: version %u is not supported (this build reads %u)", ver,
                       STATE_VERSION);
    if (kind != (uint32_t)st->kind || ns != (uint32_t)st->nslots)
        return cn_errf(err, errlen, CN_EINVAL,
                       "optimizer state: record is for %s, this state is %s",
                       optim_kind_name((optim_kind)kind), optim_kind_name(st->kind));
    if (n != st->n)
        return cn_errf(err, errlen, CN_EINVAL,
                       "optimizer state: record holds %llu parameters, this slice has %zu",
                       (unsigned long long)n, st->n);
    if (len != STATE_HDR + (size_t)ns * n * sizeof(float))
        return cn_errf(err, errlen, CN_EFORMAT,
                       "optimizer state: record is %zu bytes, header implies %zu", len,
                       STATE_HDR + (size_t)ns * n * sizeof(float));
    for (int s = 0; s < st->nslots; s++)
        memcpy(st->slot[s], p + STATE_HDR + (size_t)s * n * sizeof(float), n * sizeof(float));
    st->steps = steps;
    return CN_OK;
}

cn_err optim_cfg_named(optim_cfg *cfg, const char *name)
{
    optim_kind kind;
    if (optim_kind_parse(name, &kind) != CN_OK)
        return CN_EINVAL;
    optim_cfg_default(cfg, kind);
    cfg->decoupled_wd = strcmp(name, "adamw") == 0;
    return CN_OK;
}

const char *optim_cfg_name(const optim_cfg *cfg)
{
    return cfg->kind == OPTIM_ADAM && cfg->decoupled_wd ? "adamw" : optim_kind_name(cfg->kind);
}

void optim_keys_init(optim_keys *k)
{
    memset(k, 0, sizeof *k);
    k->lr = k->momentum = k->weight_decay = k->beta1 = k->beta2 = k->gamma = k->min_lr = NAN;
}

void optim_keys_opts(optim_keys *k, cn_opt *o)
{
    const cn_opt v[OPTIM_KEYS_N] = {
        {"optimizer", CN_OPT_CHOICE, k->optimizer, "update rule", 0, 0, OPTIM_NAMES},
        {"lr", CN_OPT_DOUBLE, &k->lr, "learning rate", 1e-9, 100, NULL},
        {"momentum", CN_OPT_DOUBLE, &k->momentum, "momentum", 0, 0.999999, NULL},
        {"nesterov", CN_OPT_BOOL, &k->nesterov, "Nesterov momentum", 0, 0, NULL},
        {"weight_decay", CN_OPT_DOUBLE, &k->weight_decay, "weight decay", 0, 10, NULL},
        {"beta1", CN_OPT_DOUBLE, &k->beta1, "Adam beta1", 0, 0.999999, NULL},
        {"beta2", CN_OPT_DOUBLE, &k->beta2, "Adam beta2", 0, 0.999999, NULL},
        {"schedule", CN_OPT_CHOICE, k->schedule, "learning-rate schedule", 0, 0,
         "constant|step|cosine"},
        {"step_every", CN_OPT_INT, &k->step_every, "step schedule period", 1, 1e12, NULL},
        {"gamma", CN_OPT_DOUBLE, &k->gamma, "step schedule factor", 1e-6, 1, NULL},
        {"min_lr", CN_OPT_DOUBLE, &k->min_lr, "cosine schedule floor", 0, 100, NULL},
    };
    memcpy(o, v, sizeof v);
}

cn_err optim_keys_apply(const optim_keys *k, optim_cfg *cfg, const char *origin, char *err,
                        size_t errlen)
{
    if (k->optimizer[0] && optim_cfg_named(cfg, k->optimizer) != CN_OK)
        return cn_errf(err, errlen, CN_EINVAL, "%s: key \"optimizer\": \"%s\" is not one of %s",
                       origin, k->optimizer, OPTIM_NAMES);
    if (!isnan(k->lr))
        cfg->lr = (float)k->lr;
    if (!isnan(k->momentum))
        cfg->momentum = (float)k->momentum;
    if (!isnan(k->weight_decay))
        cfg->weight_decay = (float)k->weight_decay;
    if (!isnan(k->beta1))
        cfg->beta1 = (float)k->beta1;
    if (!isnan(k->beta2))
        cfg->beta2 = (float)k->beta2;
    if (!isnan(k->gamma))
        cfg->gamma = (float)k->gamma;
    if (!isnan(k->min_lr))
        cfg->min_lr = (float)k->min_lr;
    if (k->step_every)
        cfg->step_every = (uint64_t)k->step_every;
    if (k->nesterov)
        cfg->nesterov = 1;
    if (k->schedule[0] && optim_sched_parse(k->schedule, &cfg->schedule) != CN_OK)
        return cn_errf(err, errlen, CN_EINVAL,
                       "%s: key \"schedule\": \"%s\" is not one of "
                       "constant|step|cosine",
                       origin, k->schedule);
    char inner[CN_ERRBUF_LEN];
    // A cosine schedule's length is known once the job's step count is.
    optim_cfg check = *cfg;
    if (check.schedule == OPTIM_SCHED_COSINE && check.total_steps == 0)
        check.total_steps = 1;
    if (optim_cfg_check(&check, inner, sizeof inner) != CN_OK)
        return cn_errf(err, errlen, CN_EINVAL, "%s: %s", origin, inner);
    return CN_OK;
}
