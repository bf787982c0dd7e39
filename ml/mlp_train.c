// mlp_train.c: the multi-threaded trainer (mlp_trainer in mlp.h).
//
// A call is one job made of work items that the T threads (the caller is
// one of them) claim in order from a shared counter:
//
//   items [0, T): row blocks of the batch (phase A, independent rows)
//     gather rows, Z_l = A_{l-1} W_l + b_l, A_l = relu(Z_l),
//     dZ_last = (softmax - onehot) / B, dZ_{l-1} = (dZ_l W_l^T) * [A_{l-1} > 0]
//   items [T, T + P): parameter chunks (phase B; each waits until every row
//     block is done)
//     dW_l[a:b) = A_{l-1}[:, a:b)^T dZ_l over all B rows, db_l = column sums
//     of dZ_l for the layer's first chunk, then the optimizer on the same
//     ranges while they are in cache. The chunks are runs of rows of one
//     layer, all about the same size (at most about 128 KB of weights, a
//     multiple of T of them), claimed largest first so that the threads
//     finish the phase together (plan_chunks).
//
// Which thread runs an item does not change its result, and the items are
// fixed by the shape and T, so a run is deterministic for a given T. Claiming
// items (rather than fixing a share per thread) keeps a step going at full
// speed on the threads that are running when the machine is shared: a worker
// that is not scheduled simply claims nothing. Phase B reads activations and
// dZ but never the parameters, so stepping them there is safe.
//
// Waits spin with PAUSE and then sleep in futex(2). The budget is time, not
// a count of PAUSEs (whose latency differs tenfold between CPUs): SPIN_NS
// inside a call, long enough that no thread sleeps between the phases of a
// step, and the trainer's idle spin between calls (mlp_trainer_set_idle_spin;
// a training loop sets 2 ms: waking a sleeping thread took 0.4 ms on a 2-vCPU
// VM, more than half a step, and a worker that slept at the end of most
// steps made two threads slower than one).
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cn_clock.h"
#include "ml/mlp.h"
#include "ml/mlp_impl.h"

#define SPIN_NS 2000000    // spinning inside a call before sleeping (2 ms)
#define SPIN_CHECK 64      // PAUSEs between looks at the clock
#define CHUNK_FLOATS 32768 // weights per phase-B item, at most about (128 KB)
#define CACHE_LINE 64

typedef struct pchunk {
    int layer, lo, hi; // rows [lo, hi) of W_layer
    int bias;          // 1: also the layer's bias
    size_t floats;     // (hi - lo) * widths[layer + 1]
} pchunk;

typedef struct worker {
    mlp_trainer *tr;
    pthread_t th;
} worker;

struct mlp_trainer {
    mlp_shape s;
    int max_batch, nthreads, started;
    mlp_kernel kernel;
    float *x;                   // (max_batch, widths[0]) gathered rows
    int32_t *y;                 // (max_batch) gathered labels
    float *act[MLP_MAX_LAYERS]; // (max_batch, widths[l+1]) outputs of layer l
    float *dz[MLP_MAX_LAYERS];  // (max_batch, widths[l+1]) dLoss/dZ_l
    float *gbuf;                // (n_params) gradient when the caller wants none
    int n_chunks;               // P
    pchunk *chunks;             // (P)
    double *blk_loss;           // (T) loss sums of the row blocks
    worker *workers;            // (T - 1)
    // The current job, written by the caller before it is published.
    const float *params;
    float *params_w; // NULL for gradient-only jobs
    const mlp_batch *batch;
    const float *bx;
    const int32_t *by;
    float *grad;
    const optim_cfg *cfg;
    optim_state *st;
    uint64_t t;
    // Synchronisation.
    _Alignas(CACHE_LINE) _Atomic uint64_t claim; // job << 32 | next item
    _Alignas(CACHE_LINE) atomic_uint done_a;     // row blocks finished
    atomic_uint sleep_a;                         // threads sleeping on done_a
    _Alignas(CACHE_LINE) atomic_uint done_b;     // parameter chunks finished
    atomic_uint sleep_b;
    _Alignas(CACHE_LINE) atomic_uint job; // futex word idle workers wait on
    atomic_uint sleep_job;
    atomic_int stop;
    _Atomic uint64_t idle_spin_ns; // spin for the next job before sleeping
};

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// spin_until spins until *w == v (eq != 0) or *w != v (eq == 0), for at most
// about ns, and returns the last value it read.
static unsigned spin_until(atomic_uint *w, unsigned v, int eq, uint64_t ns)
{
    uint64_t deadline = 0;
    for (unsigned i = 1;; i++) {
        unsigned cur = atomic_load_explicit(w, memory_order_acquire);
        if ((cur == v) == (eq != 0))
            return cur;
        cpu_relax();
        if (i % SPIN_CHECK == 0) {
            uint64_t now = cn_now_ns();
            if (deadline == 0)
                deadline = now + ns;
            else if (now >= deadline)
                return cur;
        }
    }
}

static void futex_wait(atomic_uint *w, unsigned v)
{
    syscall(SYS_futex, (unsigned *)w, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}

static void futex_wake_all(atomic_uint *w)
{
    syscall(SYS_futex, (unsigned *)w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

// wait_eq returns once *w == target.
static void wait_eq(atomic_uint *w, unsigned target, atomic_uint *sleepers)
{
    if (spin_until(w, target, 1, SPIN_NS) == target)
        return;
    atomic_fetch_add(sleepers, 1); // seq_cst: ordered against post's check
    for (;;) {
        unsigned v = atomic_load(w);
        if (v == target)
            break;
        futex_wait(w, v);
    }
    atomic_fetch_sub(sleepers, 1);
}

// post counts one finished item and wakes the sleepers when *w reaches target.
static void post(atomic_uint *w, unsigned target, atomic_uint *sleepers)
{
    if (atomic_fetch_add(w, 1) + 1 == target && atomic_load(sleepers) != 0)
        futex_wake_all(w);
}

// --- the job ---

MLP_HOT static void relu_mask(float *restrict d, const float *restrict a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = a[i] > 0.0f ? d[i] : 0.0f;
}

// colsum_range writes the sums over rows of columns [lo, hi) of d (rows, n)
// into out[lo..hi), adding rows in order.
MLP_HOT static void colsum_range(const float *restrict d, float *restrict out, int rows, int n,
                                 int lo, int hi)
{
    for (int j = lo; j < hi; j++)
        out[j] = 0.0f;
    for (int i = 0; i < rows; i++) {
        const float *di = d + (size_t)i * (size_t)n;
        for (int j = lo; j < hi; j++)
            out[j] += di[j];
    }
}

// softmax_grad writes (softmax(z) - onehot(y)) * inv_b into d for rows rows
// of k logits and returns the sum of the rows' cross-entropies.
static double softmax_grad(const float *restrict z, const int32_t *restrict y, float *restrict d,
                           int rows, int k, float inv_b)
{
    double sum = 0.0;
    for (int i = 0; i < rows; i++) {
        const float *zi = z + (size_t)i * (size_t)k;
        float *di = d + (size_t)i * (size_t)k;
        CN_ASSERT(y[i] >= 0 && y[i] < k);
        float mx = zi[0];
        for (int j = 1; j < k; j++)
            mx = zi[j] > mx ? zi[j] : mx;
        float se = 0.0f;
        for (int j = 0; j < k; j++) {
            di[j] = expf(zi[j] - mx);
            se += di[j];
        }
        sum += log((double)se) - (double)(zi[y[i]] - mx);
        float r = inv_b / se;
        for (int j = 0; j < k; j++)
            di[j] *= r;
        di[y[i]] -= inv_b;
    }
    return sum;
}

// do_rows runs phase A for row block blk.
static void do_rows(mlp_trainer *tr, int blk)
{
    const mlp_shape *s = &tr->s;
    const mlp_batch *b = tr->batch;
    int B = b->n, T = tr->nthreads;
    int r0 = (int)((int64_t)B * blk / T), r1 = (int)((int64_t)B * (blk + 1) / T), nr = r1 - r0;
    tr->blk_loss[blk] = 0.0;
    if (nr == 0)
        return;
    int nl = s->n_layers;
    size_t f = (size_t)s->widths[0];
    if (b->x == NULL) {
        const ds_dataset *d = b->d;
        CN_ASSERT(d->n_features == f && d->y != NULL);
        for (int i = r0; i < r1; i++) {
            size_t row = b->idx[i];
            CN_ASSERT(row < d->n_rows);
            memcpy(tr->x + (size_t)i * f, d->x + row * f, f * sizeof(float));
            tr->y[i] = d->y[row];
        }
    }
    const float *in = tr->bx + (size_t)r0 * f;
    const float *params = tr->params;
    for (int l = 0; l < nl; l++) {
        const mlp_layer *L = &s->layer[l];
        float *z = tr->act[l] + (size_t)r0 * (size_t)L->out;
        mlp_gemm(tr->kernel, 0, 0, nr, L->out, L->in, in, L->in, params + L->w_off, L->out, z,
                 L->out);
        mlp_bias_act(z, params + L->b_off, nr, L->out, l + 1 < nl);
        in = z;
    }
    int k = s->widths[nl];
    tr->blk_loss[blk] = softmax_grad(in, tr->by + r0, tr->dz[nl - 1] + (size_t)r0 * (size_t)k, nr,
                                     k, 1.0f / (float)B);
    for (int l = nl - 1; l >= 1; l--) {
        const mlp_layer *L = &s->layer[l];
        float *da = tr->dz[l - 1] + (size_t)r0 * (size_t)L->in;
        mlp_gemm(tr->kernel, 0, 1, nr, L->in, L->out, tr->dz[l] + (size_t)r0 * (size_t)L->out,
                 L->out, params + L->w_off, L->out, da, L->in);
        relu_mask(da, tr->act[l - 1] + (size_t)r0 * (size_t)L->in, (size_t)nr * (size_t)L->in);
    }
}

// do_params runs phase B for parameter chunk c.
static void do_params(mlp_trainer *tr, int c)
{
    const pchunk *ch = &tr->chunks[c];
    const mlp_layer *L = &tr->s.layer[ch->layer];
    int B = tr->batch->n, m = ch->hi - ch->lo;
    const float *a_in = ch->layer > 0 ? tr->act[ch->layer - 1] : tr->bx;
    size_t w0 = L->w_off + (size_t)ch->lo * (size_t)L->out;
    float *g = tr->grad;
    mlp_gemm(tr->kernel, 1, 0, m, L->out, B, a_in + ch->lo, L->in, tr->dz[ch->layer], L->out,
             g + w0, L->out);
    if (ch->bias)
        colsum_range(tr->dz[ch->layer], g + L->b_off, B, L->out, 0, L->out);
    if (tr->params_w != NULL) {
        optim_step_range(tr->cfg, tr->st, tr->params_w, g, w0, w0 + (size_t)m * (size_t)L->out,
                         tr->t);
        if (ch->bias)
            optim_step_range(tr->cfg, tr->st, tr->params_w, g, L->b_off, L->b_off + (size_t)L->out,
                             tr->t);
    }
}

// work claims and runs items of job `job` until none is left.
static void work(mlp_trainer *tr, unsigned job)
{
    unsigned na = (unsigned)tr->nthreads, np = (unsigned)tr->n_chunks;
    for (;;) {
        uint64_t c = atomic_load_explicit(&tr->claim, memory_order_acquire);
        unsigned item;
        do {
            item = (unsigned)c;
            if ((unsigned)(c >> 32) != job || item >= na + np)
                return;
        } while (!atomic_compare_exchange_weak_explicit(&tr->claim, &c, c + 1, memory_order_acq_rel,
                                                        memory_order_acquire));
        if (item < na) {
            do_rows(tr, (int)item);
            post(&tr->done_a, na, &tr->sleep_a);
        } else {
            wait_eq(&tr->done_a, na, &tr->sleep_a);
            do_params(tr, (int)(item - na));
            post(&tr->done_b, np, &tr->sleep_b);
        }
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    mlp_trainer *tr = w->tr;
    unsigned seen = 0;
    for (;;) {
        unsigned j = spin_until(&tr->job, seen, 0,
                                atomic_load_explicit(&tr->idle_spin_ns, memory_order_relaxed));
        if (j == seen) {
            atomic_fetch_add(&tr->sleep_job, 1);
            while ((j = atomic_load(&tr->job)) == seen)
                futex_wait(&tr->job, seen);
            atomic_fetch_sub(&tr->sleep_job, 1);
        }
        seen = j;
        if (atomic_load(&tr->stop))
            return NULL;
        work(tr, j);
    }
}

// publish starts job number j on the workers.
static void publish(mlp_trainer *tr, unsigned j)
{
    atomic_store(&tr->job, j);
    if (atomic_load(&tr->sleep_job) != 0)
        futex_wake_all(&tr->job);
}

// run executes the current job on all threads.
static void run(mlp_trainer *tr, float *loss)
{
    const mlp_batch *b = tr->batch;
    CN_ASSERT(b->n >= 1 && b->n <= tr->max_batch);
    CN_ASSERT(b->x != NULL ? b->y != NULL : (b->d != NULL && b->idx != NULL));
    tr->bx = b->x != NULL ? b->x : tr->x;
    tr->by = b->x != NULL ? b->y : tr->y;
    unsigned j = atomic_load_explicit(&tr->job, memory_order_relaxed) + 1;
    atomic_store_explicit(&tr->done_a, 0, memory_order_relaxed);
    atomic_store_explicit(&tr->done_b, 0, memory_order_relaxed);
    atomic_store_explicit(&tr->claim, (uint64_t)j << 32, memory_order_release);
    if (tr->nthreads > 1)
        publish(tr, j);
    else
        atomic_store_explicit(&tr->job, j, memory_order_relaxed);
    work(tr, j);
    wait_eq(&tr->done_b, (unsigned)tr->n_chunks, &tr->sleep_b);
    if (loss != NULL) {
        double sum = 0.0;
        for (int i = 0; i < tr->nthreads; i++)
            sum += tr->blk_loss[i];
        *loss = (float)(sum / b->n);
    }
}

// --- the parameter chunks ---

// plan_chunks sets per_layer[l] to the number of chunks layer l's weights are
// split into (equal runs of rows) and returns their total. The chunks are
// all about the same size, total / n for n a multiple of T with chunks of at
// most about CHUNK_FLOATS, so that T threads claiming them in turn finish
// together; a layer much smaller than that is one chunk.
static int plan_chunks(const mlp_shape *s, int threads, int *per_layer)
{
    size_t total = 0;
    for (int l = 0; l < s->n_layers; l++)
        total += (size_t)s->widths[l] * (size_t)s->widths[l + 1];
    size_t per_round = (size_t)threads * CHUNK_FLOATS;
    size_t n_target = (size_t)threads * ((total + per_round - 1) / per_round);
    double target = (double)total / (double)n_target;
    int n = 0;
    for (int l = 0; l < s->n_layers; l++) {
        double k = floor((double)s->widths[l] * (double)s->widths[l + 1] / target + 0.5);
        per_layer[l] = k < 1.0 ? 1 : k > (double)s->widths[l] ? s->widths[l] : (int)k;
        n += per_layer[l];
    }
    return n;
}

// chunk_cmp orders chunks by size, largest first, then by layer and rows.
static int chunk_cmp(const void *pa, const void *pb)
{
    const pchunk *a = pa, *b = pb;
    if (a->floats != b->floats)
        return a->floats > b->floats ? -1 : 1;
    if (a->layer != b->layer)
        return a->layer < b->layer ? -1 : 1;
    return (a->lo > b->lo) - (a->lo < b->lo);
}

// --- public ---

mlp_trainer *mlp_trainer_new(const mlp_shape *s, int max_batch, int threads)
{
    if (max_batch < 1 || threads < 1 || threads > 1024)
        return NULL;
    mlp_trainer *tr = aligned_alloc(CACHE_LINE, sizeof *tr);
    if (tr == NULL)
        return NULL;
    memset(tr, 0, sizeof *tr);
    tr->s = *s;
    tr->max_batch = max_batch;
    tr->nthreads = threads;
    tr->kernel = MLP_KERNEL_BLAS;
    size_t b = (size_t)max_batch;
    int per_layer[MLP_MAX_LAYERS];
    int n_chunks = plan_chunks(s, threads, per_layer);
    int ok = (tr->x = malloc(b * (size_t)s->widths[0] * sizeof(float))) != NULL;
    ok &= (tr->y = malloc(b * sizeof(int32_t))) != NULL;
    for (int l = 0; l < s->n_layers; l++) {
        ok &= (tr->act[l] = malloc(b * (size_t)s->widths[l + 1] * sizeof(float))) != NULL;
        ok &= (tr->dz[l] = malloc(b * (size_t)s->widths[l + 1] * sizeof(float))) != NULL;
    }
    ok &= (tr->gbuf = malloc(s->n_params * sizeof(float))) != NULL;
    ok &= (tr->chunks = calloc((size_t)n_chunks, sizeof(pchunk))) != NULL;
    ok &= (tr->blk_loss = calloc((size_t)threads, sizeof(double))) != NULL;
    ok &= (tr->workers = calloc((size_t)threads, sizeof(worker))) != NULL;
    if (!ok) {
        mlp_trainer_free(tr);
        return NULL;
    }
    tr->n_chunks = n_chunks;
    int c = 0;
    for (int l = 0; l < s->n_layers; l++) {
        int in = s->widths[l], k = per_layer[l];
        for (int i = 0; i < k; i++) {
            pchunk *ch = &tr->chunks[c++];
            ch->layer = l;
            ch->lo = (int)((int64_t)in * i / k);
            ch->hi = (int)((int64_t)in * (i + 1) / k);
            ch->bias = i == 0;
            ch->floats = (size_t)(ch->hi - ch->lo) * (size_t)s->widths[l + 1];
        }
    }
    // Largest first, so that the small chunks fill in at the end.
    qsort(tr->chunks, (size_t)n_chunks, sizeof(pchunk), chunk_cmp);
    atomic_init(&tr->claim, 0);
    atomic_init(&tr->done_a, 0);
    atomic_init(&tr->sleep_a, 0);
    atomic_init(&tr->done_b, 0);
    atomic_init(&tr->sleep_b, 0);
    atomic_init(&tr->job, 0);
    atomic_init(&tr->sleep_job, 0);
    atomic_init(&tr->stop, 0);
    atomic_init(&tr->idle_spin_ns, MLP_IDLE_SPIN_NS);
    for (int t = 1; t < threads; t++) {
        tr->workers[t].tr = tr;
        if (pthread_create(&tr->workers[t].th, NULL, worker_main, &tr->workers[t]) != 0) {
            mlp_trainer_free(tr);
            return NULL;
        }
        tr->started = t;
    }
    return tr;
}

void mlp_trainer_free(mlp_trainer *tr)
{
    if (tr == NULL)
        return;
    if (tr->started > 0) {
        atomic_store(&tr->stop, 1);
        publish(tr, atomic_load(&tr->job) + 1);
        for (int t = 1; t <= tr->started; t++)
            pthread_join(tr->workers[t].th, NULL);
    }
    free(tr->x);
    free(tr->y);
    for (int l = 0; l < MLP_MAX_LAYERS; l++) {
        free(tr->act[l]);
        free(tr->dz[l]);
    }
    free(tr->gbuf);
    free(tr->chunks);
    free(tr->blk_loss);
    free(tr->workers);
    free(tr);
}

int mlp_trainer_threads(const mlp_trainer *tr)
{
    return tr->nthreads;
}

int mlp_trainer_max_batch(const mlp_trainer *tr)
{
    return tr->max_batch;
}

void mlp_trainer_set_kernel(mlp_trainer *tr, mlp_kernel k)
{
    tr->kernel = k;
}

void mlp_trainer_set_idle_spin(mlp_trainer *tr, uint64_t ns)
{
    atomic_store_explicit(&tr->idle_spin_ns, ns, memory_order_relaxed);
}

void mlp_trainer_grad(mlp_trainer *tr, const float *params, const mlp_batch *b, float *grad,
                      float *loss)
{
    CN_ASSERT(grad != params);
    tr->params = params;
    tr->params_w = NULL;
    tr->batch = b;
    tr->grad = grad;
    tr->cfg = NULL;
    tr->st = NULL;
    run(tr, loss);
}

void mlp_trainer_step(mlp_trainer *tr, float *params, const mlp_batch *b, const optim_cfg *cfg,
                      optim_state *st, uint64_t t, float *grad, float *loss)
{
    CN_ASSERT(grad != params && optim_state_n(st) == tr->s.n_params);
    tr->params = params;
    tr->params_w = params;
    tr->batch = b;
    tr->grad = grad != NULL ? grad : tr->gbuf;
    tr->cfg = cfg;
    tr->st = st;
    tr->t = t;
    run(tr, loss);
    optim_state_set_steps(st, optim_state_steps(st) + 1);
}
