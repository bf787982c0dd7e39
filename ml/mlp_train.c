// mlp_train.c: the multi-threaded trainer (mlp_trainer in mlp.h).
//
// A call is one job made of work items in three phases; each phase starts
// once every item of the one before is done. Each item has an owner thread
// (the caller is thread 0), which runs its own items first and then takes
// those other threads have not started yet:
//
//   phase 0, T items: part t of the first layer's inputs, columns [k_t,
//     k_t+1) of about in / T each: gather those columns of the batch's rows
//     (if from a data set; part 0 also the labels), and the partial product
//     X[:, k_t:k_t+1) W_0[k_t:k_t+1, :] over all B rows.
//   phase 1, T items: row blocks of the batch (independent rows)
//     Z_0 = the partial products summed in the order of t, + b_0, and then
//     Z_l = A_{l-1} W_l + b_l, A_l = relu(Z_l),
//     dZ_last = (softmax - onehot) / B, dZ_{l-1} = (dZ_l W_l^T) * [A_{l-1} > 0]
//   phase 2, P items: parameter chunks, runs of rows of one layer
//     dW_l[a:b) = A_{l-1}[:, a:b)^T dZ_l over all B rows, db_l = column sums
//     of dZ_l for the layer's first chunk, then the optimizer on the same
//     ranges while they are in cache.
//
// The first layer holds most of the weights (200,704 of 235,146 for
// 784-256-128-10), so who touches which of them decides the memory traffic
// of a step. Thread t owns rows [k_t, k_t+1) of W_0: it reads only them in
// the forward pass, and its chunks of phase 2 are those rows, so it updates
// the weights and the optimizer state it read, next to the inputs it
// gathered. When every thread read all of W_0 (each a block of rows of the
// batch) and then updated half of it, every weight line went from one
// core to the other and back each step, and the optimizer ran at half the
// speed it has alone (docs/performance.md). The other layers' chunks are
// dealt to the threads so that their shares of phase 2 are about equal.
// A step whose caller wants no gradient writes a chunk's gradient into a
// buffer of the thread's own, reused by every chunk, so that it never
// leaves the core's cache.
//
// Which thread runs an item does not change its result, and the items are
// fixed by the shape and T, so a run is deterministic for a given T (the
// first layer's sums over inputs are split in T parts, so T changes float
// rounding). Claiming items (rather than fixing a share per thread) keeps a
// step going on the threads that are running when the machine is shared: a
// worker that is not scheduled claims nothing and its items are taken by the
// others. Phase 2 reads activations and dZ but never the parameters, so
// stepping them there is safe.
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
#define CHUNK_FLOATS 65536 // weights per parameter chunk, at most about (256 KB)
#define CACHE_LINE 64
#define N_PHASES 3 // input parts, row blocks, parameter chunks

typedef struct pchunk {
    int layer, lo, hi; // rows [lo, hi) of W_layer
    int bias;          // 1: also the layer's bias
    int owner;         // the thread that runs it first
    size_t floats;     // (hi - lo) * widths[layer + 1]
} pchunk;

// qctr is the claim counter of one owner's items in one phase: job << 32 |
// next index, so that a thread still in an old job claims nothing.
typedef struct qctr {
    _Alignas(CACHE_LINE) _Atomic uint64_t next;
} qctr;

// phase_sync counts the finished items of a phase.
typedef struct phase_sync {
    _Alignas(CACHE_LINE) atomic_uint done;
    atomic_uint sleepers; // threads sleeping on done
} phase_sync;

typedef struct worker {
    mlp_trainer *tr;
    pthread_t th;
} worker;

struct mlp_trainer {
    mlp_shape s;
    int max_batch, nthreads, started;
    mlp_kernel kernel;
    float *x;                   // gathered inputs: part t's (max_batch, kb[t+1] - kb[t]) at
                                // max_batch * kb[t]
    int32_t *y;                 // (max_batch) gathered labels
    float *act[MLP_MAX_LAYERS]; // (max_batch, widths[l+1]) outputs of layer l
    float *part;                // (T - 1, max_batch, widths[1]) partial Z_0 of parts 1..T-1
    int *kb;                    // (T + 1) first-layer input parts: [kb[t], kb[t + 1])
    float *dz[MLP_MAX_LAYERS];  // (max_batch, widths[l+1]) dLoss/dZ_l
    float *gpart;               // (T, gpart_n) per-thread chunk gradients
    size_t gpart_n;             // floats per thread: the largest chunk and a bias
    int n_chunks;               // P
    pchunk *chunks;             // (P) by owner, then largest first
    int *cstart;                // (T + 1) owner o's chunks: [cstart[o], cstart[o + 1])
    double *blk_loss;           // (T) loss sums of the row blocks
    worker *workers;            // (T - 1)
    // The current job, written by the caller before it is published.
    const float *params;
    float *params_w; // NULL for gradient-only jobs
    const mlp_batch *batch;
    const int32_t *by;
    float *grad; // NULL: into gpart
    const optim_cfg *cfg;
    optim_state *st;
    uint64_t t;
    // Synchronisation.
    qctr *q; // (N_PHASES * T) q[phase * T + owner]
    phase_sync ph[N_PHASES];
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

// add_into adds b to a, element by element (n).
MLP_HOT static void add_into(float *restrict a, const float *restrict b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] += b[i];
}

// part_x returns part t's inputs (columns [kb[t], kb[t + 1]) of the batch's
// rows) and sets *ld to their row stride: the caller's rows, or the part's
// own block of the gather buffer, so that no cache line of it is written by
// two threads.
static const float *part_x(const mlp_trainer *tr, int t, int *ld)
{
    if (tr->batch->x != NULL) {
        *ld = tr->s.widths[0];
        return tr->batch->x + tr->kb[t];
    }
    *ld = tr->kb[t + 1] - tr->kb[t];
    return tr->x + (size_t)tr->max_batch * (size_t)tr->kb[t];
}

// do_input runs phase 0 for input part t: gathers columns [kb[t], kb[t + 1])
// of the batch's rows and multiplies them by the same rows of W_0.
static void do_input(mlp_trainer *tr, int t)
{
    const mlp_shape *s = &tr->s;
    const mlp_batch *b = tr->batch;
    const mlp_layer *L = &s->layer[0];
    int B = b->n, k0 = tr->kb[t], kn = tr->kb[t + 1] - k0, ld;
    size_t f = (size_t)s->widths[0];
    const float *x = part_x(tr, t, &ld);
    float *z =
        t == 0 ? tr->act[0] : tr->part + (size_t)(t - 1) * (size_t)tr->max_batch * (size_t)L->out;
    if (b->x == NULL) {
        const ds_dataset *d = b->d;
        CN_ASSERT(d->n_features == f && d->y != NULL);
        float *xw = tr->x + (size_t)tr->max_batch * (size_t)k0;
        for (int i = 0; i < B; i++) {
            size_t row = b->idx[i];
            CN_ASSERT(row < d->n_rows);
            memcpy(xw + (size_t)i * (size_t)kn, d->x + row * f + k0, (size_t)kn * sizeof(float));
            if (t == 0)
                tr->y[i] = d->y[row];
        }
    }
    if (kn == 0) { // fewer inputs than threads
        memset(z, 0, (size_t)B * (size_t)L->out * sizeof(float));
        return;
    }
    mlp_gemm(tr->kernel, 0, 0, B, L->out, kn, x, ld,
             tr->params + L->w_off + (size_t)k0 * (size_t)L->out, L->out, z, L->out);
}

// do_rows runs phase 1 for row block blk.
static void do_rows(mlp_trainer *tr, int blk)
{
    const mlp_shape *s = &tr->s;
    int B = tr->batch->n, T = tr->nthreads;
    int r0 = (int)((int64_t)B * blk / T), r1 = (int)((int64_t)B * (blk + 1) / T), nr = r1 - r0;
    tr->blk_loss[blk] = 0.0;
    if (nr == 0)
        return;
    int nl = s->n_layers;
    const float *params = tr->params;
    const mlp_layer *L0 = &s->layer[0];
    size_t w1 = (size_t)L0->out;
    float *z0 = tr->act[0] + (size_t)r0 * w1;
    for (int t = 1; t < T; t++)
        add_into(z0, tr->part + ((size_t)(t - 1) * (size_t)tr->max_batch + (size_t)r0) * w1,
                 (size_t)nr * w1);
    mlp_bias_act(z0, params + L0->b_off, nr, L0->out, nl > 1);
    const float *in = z0;
    for (int l = 1; l < nl; l++) {
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

// do_params runs phase 2 for parameter chunk c on thread tid.
static void do_params(mlp_trainer *tr, int c, int tid)
{
    const pchunk *ch = &tr->chunks[c];
    const mlp_layer *L = &tr->s.layer[ch->layer];
    int B = tr->batch->n, m = ch->hi - ch->lo, lda = L->in;
    const float *a_in; // column lo of the layer's inputs
    if (ch->layer > 0)
        a_in = tr->act[ch->layer - 1] + ch->lo;
    else // a chunk of W_0 lies in its owner's input part
        a_in = part_x(tr, ch->owner, &lda) + (ch->lo - tr->kb[ch->owner]);
    size_t w0 = L->w_off + (size_t)ch->lo * (size_t)L->out, nw = (size_t)m * (size_t)L->out;
    float *gw, *gb; // the chunk's weight and bias gradients
    if (tr->grad != NULL) {
        gw = tr->grad + w0;
        gb = tr->grad + L->b_off;
    } else {
        gw = tr->gpart + (size_t)tid * tr->gpart_n;
        gb = gw + nw;
    }
    mlp_gemm(tr->kernel, 1, 0, m, L->out, B, a_in, lda, tr->dz[ch->layer], L->out, gw, L->out);
    if (ch->bias)
        colsum_range(tr->dz[ch->layer], gb, B, L->out, 0, L->out);
    if (tr->params_w != NULL) {
        optim_step_part(tr->cfg, tr->st, tr->params_w, gw, w0, w0 + nw, tr->t);
        if (ch->bias)
            optim_step_part(tr->cfg, tr->st, tr->params_w, gb, L->b_off, L->b_off + (size_t)L->out,
                            tr->t);
    }
}

// phase_items gives the items of owner o in phase p: [*first, *first + n).
static unsigned phase_items(const mlp_trainer *tr, int p, int o, unsigned *first)
{
    if (p < 2) {
        *first = (unsigned)o;
        return 1;
    }
    *first = (unsigned)tr->cstart[o];
    return (unsigned)(tr->cstart[o + 1] - tr->cstart[o]);
}

// claim takes the next of n items from q for job job into *item: 1, or 0
// when none is left, or -1 when job is no longer the current job.
static int claim(qctr *q, unsigned job, unsigned n, unsigned *item)
{
    uint64_t c = atomic_load_explicit(&q->next, memory_order_acquire);
    do {
        if ((unsigned)(c >> 32) != job)
            return -1;
        if ((unsigned)c >= n)
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(&q->next, &c, c + 1, memory_order_acq_rel,
                                                    memory_order_acquire));
    *item = (unsigned)c;
    return 1;
}

// work runs items of job `job` on thread tid, phase by phase (its own items
// first, then the other threads'), until none is left.
static void work(mlp_trainer *tr, unsigned job, int tid)
{
    int T = tr->nthreads;
    const unsigned total[N_PHASES] = {(unsigned)T, (unsigned)T, (unsigned)tr->n_chunks};
    for (int p = 0; p < N_PHASES; p++) {
        if (p > 0)
            wait_eq(&tr->ph[p - 1].done, total[p - 1], &tr->ph[p - 1].sleepers);
        for (int k = 0; k < T; k++) {
            int o = (tid + k) % T;
            unsigned first, i, n = phase_items(tr, p, o, &first);
            int r;
            while ((r = claim(&tr->q[p * T + o], job, n, &i)) > 0) {
                if (p == 0)
                    do_input(tr, (int)(first + i));
                else if (p == 1)
                    do_rows(tr, (int)(first + i));
                else
                    do_params(tr, (int)(first + i), tid);
                post(&tr->ph[p].done, total[p], &tr->ph[p].sleepers);
            }
            if (r < 0)
                return;
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
        work(tr, j, (int)(w - tr->workers));
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
    tr->by = b->x != NULL ? b->y : tr->y;
    unsigned j = atomic_load_explicit(&tr->job, memory_order_relaxed) + 1;
    for (int p = 0; p < N_PHASES; p++)
        atomic_store_explicit(&tr->ph[p].done, 0, memory_order_relaxed);
    for (int i = 0; i < N_PHASES * tr->nthreads; i++)
        atomic_store_explicit(&tr->q[i].next, (uint64_t)j << 32, memory_order_release);
    if (tr->nthreads > 1)
        publish(tr, j);
    else
        atomic_store_explicit(&tr->job, j, memory_order_relaxed);
    work(tr, j, 0);
    wait_eq(&tr->ph[2].done, (unsigned)tr->n_chunks, &tr->ph[2].sleepers);
    if (loss != NULL) {
        double sum = 0.0;
        for (int i = 0; i < tr->nthreads; i++)
            sum += tr->blk_loss[i];
        *loss = (float)(sum / b->n);
    }
}

// --- the plan ---

// chunk_cmp orders chunks by owner, then by size (largest first, so that
// the small ones fill in at the end), then by layer and rows.
static int chunk_cmp(const void *pa, const void *pb)
{
    const pchunk *a = pa, *b = pb;
    if (a->owner != b->owner)
        return a->owner < b->owner ? -1 : 1;
    if (a->floats != b->floats)
        return a->floats > b->floats ? -1 : 1;
    if (a->layer != b->layer)
        return a->layer < b->layer ? -1 : 1;
    return (a->lo > b->lo) - (a->lo < b->lo);
}

// layer_chunks returns the number of chunks layer l >= 1 is split into: its
// weights in runs of at most about CHUNK_FLOATS, a multiple of T of them so
// that they can be dealt evenly, at most one per row; a layer of fewer than
// CHUNK_FLOATS / 8 weights is one chunk.
static int layer_chunks(const mlp_shape *s, int l, int T)
{
    size_t floats = (size_t)s->widths[l] * (size_t)s->widths[l + 1];
    if (floats < CHUNK_FLOATS / 8)
        return 1;
    size_t n = (floats + CHUNK_FLOATS - 1) / CHUNK_FLOATS;
    n = (n + (size_t)T - 1) / (size_t)T * (size_t)T;
    return n > (size_t)s->widths[l] ? s->widths[l] : (int)n;
}

// part_chunks returns the number of chunks of `rows` rows of `out` weights:
// runs of at most about CHUNK_FLOATS.
static int part_chunks(int rows, int out)
{
    size_t n = ((size_t)rows * (size_t)out + CHUNK_FLOATS - 1) / CHUNK_FLOATS;
    return n > (size_t)rows ? rows : (int)n;
}

// plan sets the first layer's input parts (kb) and the parameter chunks
// (chunks, cstart, n_chunks) of tr for its shape and thread count: thread t
// owns the chunks of rows [kb[t], kb[t + 1]) of W_0, and the other layers'
// chunks go, largest first, to the thread with the fewest weights so far.
// Returns 0 on OOM.
static int plan(mlp_trainer *tr)
{
    const mlp_shape *s = &tr->s;
    int T = tr->nthreads, n0 = 0; // n0: chunks of the first layer
    for (int t = 0; t <= T; t++)
        tr->kb[t] = (int)((int64_t)s->widths[0] * t / T);
    for (int t = 0; t < T; t++)
        n0 += part_chunks(tr->kb[t + 1] - tr->kb[t], s->widths[1]);
    int n = n0;
    for (int l = 1; l < s->n_layers; l++)
        n += layer_chunks(s, l, T);
    tr->chunks = calloc((size_t)n, sizeof(pchunk));
    size_t *load = calloc((size_t)T, sizeof(size_t));
    if (tr->chunks == NULL || load == NULL) {
        free(load);
        return 0;
    }
    tr->n_chunks = n;
    int c = 0;
    for (int l = 0; l < s->n_layers; l++) {
        int nparts = l == 0 ? T : 1;
        for (int t = 0; t < nparts; t++) {
            int lo = l == 0 ? tr->kb[t] : 0, hi = l == 0 ? tr->kb[t + 1] : s->widths[l];
            int k = l == 0 ? part_chunks(hi - lo, s->widths[1]) : layer_chunks(s, l, T);
            for (int i = 0; i < k; i++) {
                pchunk *ch = &tr->chunks[c++];
                ch->layer = l;
                ch->lo = lo + (int)((int64_t)(hi - lo) * i / k);
                ch->hi = lo + (int)((int64_t)(hi - lo) * (i + 1) / k);
                ch->bias = ch->lo == 0;
                ch->floats = (size_t)(ch->hi - ch->lo) * (size_t)s->widths[l + 1];
                ch->owner = t;
                if (l == 0)
                    load[t] += ch->floats;
            }
        }
    }
    // Deal the other layers' chunks, largest first.
    qsort(tr->chunks + n0, (size_t)(n - n0), sizeof(pchunk), chunk_cmp);
    for (int i = n0; i < n; i++) {
        int best = 0;
        for (int t = 1; t < T; t++)
            if (load[t] < load[best])
                best = t;
        tr->chunks[i].owner = best;
        load[best] += tr->chunks[i].floats;
    }
    free(load);
    qsort(tr->chunks, (size_t)n, sizeof(pchunk), chunk_cmp);
    for (int t = 0, i = 0; t <= T; t++) {
        while (i < n && tr->chunks[i].owner < t)
            i++;
        tr->cstart[t] = i;
    }
    return 1;
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
    size_t b = (size_t)max_batch, T = (size_t)threads;
    size_t xbytes =
        (b * (size_t)s->widths[0] * sizeof(float) + CACHE_LINE - 1) & ~(size_t)(CACHE_LINE - 1);
    int ok = (tr->x = aligned_alloc(CACHE_LINE, xbytes)) != NULL;
    ok &= (tr->y = malloc(b * sizeof(int32_t))) != NULL;
    for (int l = 0; l < s->n_layers; l++) {
        ok &= (tr->act[l] = malloc(b * (size_t)s->widths[l + 1] * sizeof(float))) != NULL;
        ok &= (tr->dz[l] = malloc(b * (size_t)s->widths[l + 1] * sizeof(float))) != NULL;
    }
    if (threads > 1)
        ok &= (tr->part = malloc((T - 1) * b * (size_t)s->widths[1] * sizeof(float))) != NULL;
    ok &= (tr->kb = calloc(T + 1, sizeof(int))) != NULL;
    ok &= (tr->cstart = calloc(T + 1, sizeof(int))) != NULL;
    ok &= (tr->q = aligned_alloc(CACHE_LINE, N_PHASES * T * sizeof(qctr))) != NULL;
    ok &= (tr->blk_loss = calloc((size_t)threads, sizeof(double))) != NULL;
    ok &= (tr->workers = calloc((size_t)threads, sizeof(worker))) != NULL;
    if (!ok || !plan(tr)) {
        mlp_trainer_free(tr);
        return NULL;
    }
    int max_out = 0;
    for (int i = 0; i < tr->n_chunks; i++)
        if (tr->chunks[i].floats > tr->gpart_n)
            tr->gpart_n = tr->chunks[i].floats;
    for (int l = 1; l <= s->n_layers; l++)
        if (s->widths[l] > max_out)
            max_out = s->widths[l];
    // Each thread's part starts on a cache line of its own.
    size_t line = CACHE_LINE / sizeof(float);
    tr->gpart_n = (tr->gpart_n + (size_t)max_out + line - 1) / line * line;
    tr->gpart = aligned_alloc(CACHE_LINE, T * tr->gpart_n * sizeof(float));
    if (tr->gpart == NULL) {
        mlp_trainer_free(tr);
        return NULL;
    }
    for (size_t i = 0; i < N_PHASES * T; i++)
        atomic_init(&tr->q[i].next, 0);
    for (int p = 0; p < N_PHASES; p++) {
        atomic_init(&tr->ph[p].done, 0);
        atomic_init(&tr->ph[p].sleepers, 0);
    }
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
    free(tr->gpart);
    free(tr->part);
    free(tr->kb);
    free(tr->cstart);
    free(tr->q);
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
    tr->grad = grad;
    tr->cfg = cfg;
    tr->st = st;
    tr->t = t;
    run(tr, loss);
    optim_state_set_steps(st, optim_state_steps(st) + 1);
}
