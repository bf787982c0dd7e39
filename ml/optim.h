// optim.h: first-order optimizers over a slice of a flat parameter vector.
//
// Every update here is element-wise: the new value of w[i] depends only on
// w[i], g[i] and the optimizer state for element i. So a parameter-server
// shard that owns keys [lo, hi) of the model runs exactly the same update on
// its slice, with state for that slice only, as a single process running it
// on the whole vector: optim_step(cfg, st, w + lo, g + lo, hi - lo, t) is
// bit-identical to the [lo, hi) part of a whole-vector step. The same code
// serves workers (SGD on a local copy), shards (server-side updates) and
// FedOpt (server Adam on a round's pseudo-gradient, step = round).
//
// The configuration (optim_cfg) is plain data shared by all shards; the state
// (optim_state) is per slice and serializable, so a shard can checkpoint it
// and continue bit-identically after a restart.
#ifndef CANOPY_OPTIM_H
#define CANOPY_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "common/cn_buf.h"
#include "common/cn_config.h"
#include "common/cn_err.h"

typedef enum {
    OPTIM_SGD,      // w -= lr * g
    OPTIM_MOMENTUM, // heavy ball (PyTorch convention, no dampening), optionally Nesterov
    OPTIM_ADAM,     // Adam with bias correction; AdamW with decoupled_wd
    OPTIM_ADAGRAD,  // m = b1 m + (1-b1) g; v += g^2; w -= lr m / (sqrt(v) + eps)
    OPTIM_YOGI,     // m as Adagrad; v -= (1-b2) g^2 sign(v - g^2); w -= lr m / (sqrt(v) + eps)
} optim_kind;
// Adagrad and Yogi follow Reddi et al., "Adaptive Federated Optimization"
// (ICLR 2021), Algorithm 2: no bias correction, eps plays tau. They serve as
// the server optimizers of FedAdagrad and FedYogi.

typedef enum {
    OPTIM_SCHED_CONSTANT, // lr
    OPTIM_SCHED_STEP,     // lr * gamma^floor(t / step_every)
    OPTIM_SCHED_COSINE,   // min_lr + (lr - min_lr) * (1 + cos(pi * min(t, T) / T)) / 2
} optim_sched;

// optim_cfg is the full description of an optimizer and its schedule.
// Thread rule: plain data; read-only while steps run.
typedef struct optim_cfg {
    optim_kind kind;
    float lr;           // base learning rate (> 0)
    float weight_decay; // >= 0. L2: g += weight_decay * w before the update,
                        // or with decoupled_wd (Adam only): w -= lr_t * weight_decay * w
    int decoupled_wd;   // 1 = AdamW-style decoupled decay (ignored for SGD/momentum)
    float momentum;     // MOMENTUM: mu in [0, 1)
    int nesterov;       // MOMENTUM: 1 = Nesterov's update w -= lr * (g + mu * v)
    float beta1, beta2; // ADAM: decay of the first and second moments, in [0, 1)
    float eps;          // ADAM: added to sqrt(v_hat) (> 0)
    optim_sched schedule;
    float gamma;          // STEP: multiplier per period (0 < gamma <= 1 typically)
    uint64_t step_every;  // STEP: period in steps (> 0)
    uint64_t total_steps; // COSINE: T, steps over which lr decays to min_lr (> 0)
    float min_lr;         // COSINE: final learning rate (>= 0)
} optim_cfg;

// optim_cfg_default fills cfg with the usual defaults for kind: lr 0.01
// (SGD), 0.01 with momentum 0.9 (MOMENTUM), 1e-3 with betas 0.9/0.999 and eps
// 1e-8 (ADAM); no weight decay; constant schedule (gamma 0.1 every 1000
// steps and cosine over 1000 steps to 0 are preset for when a schedule is
// chosen).
void optim_cfg_default(optim_cfg *cfg, optim_kind kind);

// optim_cfg_check validates cfg. Returns CN_OK or CN_EINVAL with err naming
// the field, its value and what is allowed.
cn_err optim_cfg_check(const optim_cfg *cfg, char *err, size_t errlen);

// optim_lr returns the scheduled learning rate for 0-based step t.
float optim_lr(const optim_cfg *cfg, uint64_t t);

// optim_kind_parse maps "sgd" | "momentum" | "adam" | "adamw" (ADAM with
// decoupled_wd = 1 is set by the caller) | "adagrad" | "yogi" to a kind;
// CN_EINVAL otherwise.
cn_err optim_kind_parse(const char *name, optim_kind *out);
// OPTIM_NAMES lists the names optim_cfg_named takes.
#define OPTIM_NAMES "sgd|momentum|adam|adamw|adagrad|yogi"

// optim_cfg_named fills cfg with the defaults of the optimizer called name
// ("adamw" is Adam with decoupled weight decay). CN_EINVAL for other names.
cn_err optim_cfg_named(optim_cfg *cfg, const char *name);

// optim_cfg_name returns the name optim_cfg_named takes for cfg.
const char *optim_cfg_name(const optim_cfg *cfg);

// optim_keys holds the optimizer keys of a job file as an option table
// reads them (optimizer, lr, momentum, nesterov, weight_decay, beta1, beta2,
// schedule, step_every, gamma, min_lr): one reader for every spec that
// configures an optimizer. Plain data.
#define OPTIM_KEYS_N 11
typedef struct optim_keys {
    char optimizer[CN_OPT_STRLEN];                                  // "" = not given
    char schedule[CN_OPT_STRLEN];                                   // "" = not given
    double lr, momentum, weight_decay, beta1, beta2, gamma, min_lr; // NAN = not given
    int64_t step_every;                                             // 0 = not given
    bool nesterov;
} optim_keys;

// optim_keys_init marks every key as not given.
void optim_keys_init(optim_keys *k);

// optim_keys_opts writes the OPTIM_KEYS_N option-table entries that fill k
// into opts (with each key's bounds and help).
void optim_keys_opts(optim_keys *k, cn_opt *opts);

// optim_keys_apply applies the given keys to cfg: a named optimizer first
// resets cfg to that optimizer's defaults, then every other given key
// overrides its field. Errors: CN_EINVAL from optim_cfg_check with origin
// prefixed.
cn_err optim_keys_apply(const optim_keys *k, optim_cfg *cfg, const char *origin, char *err,
                        size_t errlen);

// optim_sched_parse maps "constant" | "step" | "cosine"; CN_EINVAL otherwise.
cn_err optim_sched_parse(const char *name, optim_sched *out);
const char *optim_kind_name(optim_kind kind);
const char *optim_sched_name(optim_sched s);

// optim_state holds the per-element state of one slice of n parameters
// (nothing for SGD, velocity for MOMENTUM, first and second moments for
// ADAM, ADAGRAD and YOGI) and the count of steps applied. Opaque.
// Thread rule: one owner at a time; slices of one model may be stepped
// concurrently with separate states.
typedef struct optim_state optim_state;

// optim_state_new allocates zeroed state for n parameters of cfg's kind.
// Returns NULL on OOM.
optim_state *optim_state_new(const optim_cfg *cfg, size_t n);
// optim_state_free frees st. Accepts NULL.
void optim_state_free(optim_state *st);

// optim_step applies one update to w[0..n) with gradient g[0..n); n must be
// the n the state was created with (CN_ASSERT). t is the 0-based global step
// index: it selects the scheduled learning rate and Adam's bias correction
// (which uses t + 1). Normally t == optim_state_steps(st), the number of
// steps this state has taken, which the call then increments; a shard that
// follows a global clock may pass its own t. w and g are borrowed and may
// not alias. Allocates nothing.
void optim_step(const optim_cfg *cfg, optim_state *st, float *w, const float *g, size_t n,
                uint64_t t);

// optim_step_out is optim_step that also writes the updated values to out
// (n floats) in the same pass over memory, so a caller that must hand the
// values on (a parameter-server shard answering a push) reads them once.
// out may be g itself (each gradient element is read before the value at
// the same index is written) but must not overlap w or the state. The
// result in w is bit-identical to optim_step's.
void optim_step_out(const optim_cfg *cfg, optim_state *st, float *w, const float *g, float *out,
                    size_t n, uint64_t t);

// optim_step_range applies the update of step t to elements [lo, hi) only
// (lo <= hi <= n, CN_ASSERT). w and g point at element 0 of the slice, as for
// optim_step. It does not count the step, so several threads may step
// disjoint ranges of one state at once; a caller that covers [0, n) this way
// then calls optim_state_set_steps(st, t + 1). The result is bit-identical to
// optim_step on the whole slice. Allocates nothing.
void optim_step_range(const optim_cfg *cfg, optim_state *st, float *w, const float *g, size_t lo,
                      size_t hi, uint64_t t);

// optim_step_part is optim_step_range with the gradient of the range alone:
// g[0..hi - lo) is the gradient of elements [lo, hi). For a caller that
// makes the gradient one part at a time in a small buffer (which stays in
// cache). The result is bit-identical to optim_step_range's.
void optim_step_part(const optim_cfg *cfg, optim_state *st, float *w, const float *g, size_t lo,
                     size_t hi, uint64_t t);

// optim_state_n returns n; optim_state_nslots returns the number of float
// arrays of n elements the state holds (0 SGD, 1 MOMENTUM, 2 ADAM).
size_t optim_state_n(const optim_state *st);
int optim_state_nslots(const optim_state *st);
// optim_state_slot returns the slot-th array (n floats), which a caller may
// read to save it and write to restore it: 0 = velocity (MOMENTUM) or first
// moment m (ADAM), 1 = second moment v (ADAM). NULL if slot is out of range.
float *optim_state_slot(optim_state *st, int slot);
// optim_state_steps returns the number of steps applied; optim_state_set_steps
// overrides it on restore.
uint64_t optim_state_steps(const optim_state *st);
void optim_state_set_steps(optim_state *st, uint64_t steps);

// optim_state_encode appends a self-describing little-endian record of st
// (magic "CNOS", version, kind, n, steps, slots) to out. CN_OK or CN_ENOMEM.
cn_err optim_state_encode(const optim_state *st, cn_buf *out);
// optim_state_decode restores st from a record made by optim_state_encode.
// Errors: CN_EFORMAT (bad magic or length), CN_EVERSION, CN_EINVAL (kind or n
// differ from st's); err says which. st is unchanged on error.
cn_err optim_state_decode(optim_state *st, const void *data, size_t len, char *err, size_t errlen);

#endif
