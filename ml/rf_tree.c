// rf_tree.c: growing and pruning one CART classification tree.
//
// The training rows are first turned into an rf_prep: each feature maps to
// the ranks ("codes") of its distinct values, stored column-major in 1, 2 or
// 4 bytes. A tree keeps the in-bag rows as one index array that is
// partitioned in place (stably, so each node's rows stay in ascending order
// and column reads stay sequential). At a node, each candidate feature is
// scanned either with a class histogram over the feature's distinct values
// (when the node is large compared to the number of distinct values, as
// ranger's "LargeQ" path) or by sorting the node's codes (small nodes).
// Both are exact: every threshold between adjacent distinct values present
// in the node is evaluated, and the threshold is the midpoint of the two
// values, as scikit-learn does. Bootstrap samples are integer weights.
#include "ml/rf_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// sklearn's EPSILON (np.finfo(np.double).eps) for purity and decrease tests.
#define RF_EPS 2.220446049250313e-16

// A feature is scanned with a class histogram when distinct values x
// classes <= HIST_FACTOR x node size; otherwise its codes are sorted.
#define HIST_FACTOR 2

// Features with at most this many distinct values use the 4-way histogram.
#define HIST_SMALL 16

// How a node's codes of one feature are ordered: nodes of at most RANK_MAX
// rows place each key at its rank (scan_sorted); larger ones use a counting
// sort over the codes' range (scan_counted), which costs that range, unless
// it is wide: above 65535, or at least SMALL_RANGE for a node of at most
// SORT_MAX rows, the keys are sorted (scan_sorted).
#define RANK_MAX 24
#define SORT_MAX 32
#define SMALL_RANGE 4096

// ---------------------------------------------------------------------------
// Preparing the data: codes and distinct values.

// float_key maps a float to a uint32 with the same order.
static inline uint32_t float_key(float v)
{
    if (v == 0.0f)
        v = 0.0f; // -0 and +0 are one value
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static inline float key_float(uint32_t k)
{
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

// radix_sort sorts a[0..n) by their high 32 bits (LSD, 8-bit digits),
// skipping digits that are equal everywhere. tmp holds n entries.
static void radix_sort(uint64_t *a, uint64_t *tmp, size_t n)
{
    size_t count[4][256];
    memset(count, 0, sizeof count);
    for (size_t i = 0; i < n; i++) {
        uint32_t k = (uint32_t)(a[i] >> 32);
        count[0][k & 255]++;
        count[1][(k >> 8) & 255]++;
        count[2][(k >> 16) & 255]++;
        count[3][k >> 24]++;
    }
    for (int d = 0; d < 4; d++) {
        int shift = 32 + 8 * d;
        int trivial = 0;
        for (int b = 0; b < 256; b++)
            if (count[d][b] == n)
                trivial = 1;
        if (trivial)
            continue;
        size_t pos = 0;
        for (int b = 0; b < 256; b++) {
            size_t c = count[d][b];
            count[d][b] = pos;
            pos += c;
        }
        for (size_t i = 0; i < n; i++)
            tmp[count[d][(a[i] >> shift) & 255]++] = a[i];
        memcpy(a, tmp, n * sizeof *a);
    }
}

// build_rows1 copies the 1-byte codes into a row-major matrix as well. A
// small node's rows lie far apart, so reading a feature column by column
// costs a cache line per row, and its subtree reads other columns of the same
// rows again; row by row, a subtree's rows span few enough lines to stay in
// cache across its nodes.
#define ROWS1_TILE 64

static cn_err build_rows1(rf_prep *p)
{
    size_t n = p->n_rows, nf = p->n_features, w = 0;
    p->row1_pos = malloc((nf ? nf : 1) * sizeof *p->row1_pos);
    if (p->row1_pos == NULL)
        return CN_ENOMEM;
    for (size_t j = 0; j < nf; j++)
        p->row1_pos[j] = p->code_w[j] == 1 ? (int32_t)w++ : -1;
    p->row1_w = w;
    p->rows1 = malloc(n * w > 0 ? n * w : 1);
    if (p->rows1 == NULL)
        return CN_ENOMEM;
    // Tiles of ROWS1_TILE rows: the tile's rows stay in cache while every
    // column writes into them, instead of one pass over all rows per column.
    for (size_t i0 = 0; i0 < n; i0 += ROWS1_TILE) {
        size_t i1 = i0 + ROWS1_TILE < n ? i0 + ROWS1_TILE : n;
        for (size_t j = 0; j < nf; j++) {
            if (p->row1_pos[j] < 0)
                continue;
            const uint8_t *col = p->codes + p->code_off[j];
            uint8_t *dst = p->rows1 + p->row1_pos[j];
            for (size_t i = i0; i < i1; i++)
                dst[i * w] = col[i];
        }
    }
    return CN_OK;
}

// Columns copied out of the row-major matrix at a time: as many as fit in
// PREP_BLOCK_BYTES, at most PREP_BLOCK. Each pass over the rows touches a
// page per row, so fewer, wider passes are cheaper.
#define PREP_BLOCK 128
#define PREP_BLOCK_BYTES ((size_t)32 << 20)

cn_err rf_prep_build(const ds_dataset *d, const size_t *rows, size_t n, rf_prep *p)
{
    memset(p, 0, sizeof *p);
    p->n_rows = n;
    p->n_features = d->n_features;
    p->n_classes = d->n_classes;
    size_t nf = d->n_features;
    uint64_t *a = malloc((n ? n : 1) * sizeof *a);
    uint64_t *tmp = malloc((n ? n : 1) * sizeof *tmp);
    size_t bw = PREP_BLOCK_BYTES / ((n ? n : 1) * sizeof(float));
    bw = bw < 1 ? 1 : bw > PREP_BLOCK ? PREP_BLOCK : bw;
    float *block = malloc((n ? n : 1) * bw * sizeof *block);
    uint32_t *rank = malloc(65536 * sizeof *rank);
    p->y = malloc((n ? n : 1) * sizeof *p->y);
    p->n_unique = calloc(nf ? nf : 1, sizeof *p->n_unique);
    p->uniq_off = calloc(nf + 1, sizeof *p->uniq_off);
    size_t ucap = n > 16 ? n : 16;
    p->uniq = malloc(ucap * sizeof *p->uniq);
    size_t ccap = n * nf > 0 ? n * nf : 1, clen = 0;
    p->codes = malloc(ccap);
    p->code_off = calloc(nf ? nf : 1, sizeof *p->code_off);
    p->code_w = calloc(nf ? nf : 1, 1);
    p->dense_bin = calloc(nf ? nf : 1, 1);
    p->bit_words = (n + 63) / 64;
    p->bits = calloc((nf ? nf : 1) * (p->bit_words ? p->bit_words : 1), sizeof *p->bits);
    uint32_t *cc = malloc((n ? n : 1) * sizeof *cc);
    if (!a || !tmp || !block || !rank || !p->y || !p->n_unique || !p->uniq_off || !p->uniq ||
        !p->codes || !p->code_off || !p->code_w || !p->dense_bin || !p->bits || !cc)
        goto oom;
    for (size_t i = 0; i < n; i++)
        p->y[i] = d->y[rows ? rows[i] : i];
    size_t nu_total = 0;
    for (size_t j = 0; j < nf; j++) {
        if (j % bw == 0) {
            // Copy the next block of columns out of the row-major matrix in
            // one pass over the rows, instead of one strided pass per column.
            size_t w = nf - j < bw ? nf - j : bw;
            for (size_t i = 0; i < n; i++) {
                const float *row = d->x + (rows ? rows[i] : i) * nf + j;
                for (size_t q = 0; q < w; q++)
                    block[q * n + i] = row[q];
            }
        }
        const float *col = block + (j % bw) * n;
        float lo = INFINITY, hi = -INFINITY;
        int integral = 1;
        for (size_t i = 0; i < n; i++) {
            float v = col[i];
            integral &= v == floorf(v);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        uint32_t nu = 0;
        int counted = integral && (double)hi - (double)lo < 65536.0;
        if (counted) {
            // Small-range integers (pixels, counts): rank by counting, no sort.
            uint32_t range = (uint32_t)((double)hi - (double)lo) + 1;
            memset(rank, 0, range * sizeof *rank);
            for (size_t i = 0; i < n; i++)
                rank[(uint32_t)(col[i] - lo)] = 1;
            for (uint32_t v = 0; v < range; v++)
                if (rank[v])
                    rank[v] = ++nu; // rank + 1
        } else {
            for (size_t i = 0; i < n; i++)
                a[i] = ((uint64_t)float_key(col[i]) << 32) | (uint64_t)i;
            radix_sort(a, tmp, n);
            // Count distinct values first so the code width is known.
            for (size_t i = 0; i < n; i++)
                if (i == 0 || (a[i] >> 32) != (a[i - 1] >> 32))
                    nu++;
        }
        if (nu_total + nu > ucap) {
            while (nu_total + nu > ucap)
                ucap *= 2;
            float *u2 = realloc(p->uniq, ucap * sizeof *p->uniq);
            if (u2 == NULL)
                goto oom;
            p->uniq = u2;
        }
        if (counted) {
            uint32_t range = (uint32_t)((double)hi - (double)lo) + 1;
            for (uint32_t v = 0; v < range; v++)
                if (rank[v])
                    p->uniq[nu_total + rank[v] - 1] = lo + (float)v;
            for (size_t i = 0; i < n; i++)
                cc[i] = rank[(uint32_t)(col[i] - lo)] - 1;
        } else {
            uint32_t c = 0;
            for (size_t i = 0; i < n; i++) {
                uint32_t k = (uint32_t)(a[i] >> 32);
                if (i > 0 && k != (uint32_t)(a[i - 1] >> 32))
                    c++;
                if (i == 0 || k != (uint32_t)(a[i - 1] >> 32))
                    p->uniq[nu_total + c] = key_float(k);
                cc[(size_t)(a[i] & 0xffffffffu)] = c;
            }
        }
        // Store the column in the narrowest width that holds its codes.
        uint8_t w = nu <= 256 ? 1 : nu <= 65536 ? 2 : 4;
        if (clen + (size_t)w * n > ccap) {
            while (clen + (size_t)w * n > ccap)
                ccap *= 2;
            uint8_t *c2 = realloc(p->codes, ccap);
            if (c2 == NULL)
                goto oom;
            p->codes = c2;
        }
        p->code_off[j] = clen;
        p->code_w[j] = w;
        if (w == 1)
            for (size_t i = 0; i < n; i++)
                p->codes[clen + i] = (uint8_t)cc[i];
        else if (w == 2)
            for (size_t i = 0; i < n; i++)
                ((uint16_t *)(p->codes + clen))[i] = (uint16_t)cc[i];
        else
            memcpy(p->codes + clen, cc, n * sizeof *cc);
        clen += (size_t)w * n;
        // Keep the next column aligned for 4-byte codes.
        clen = (clen + 3) & ~(size_t)3;
        p->n_unique[j] = nu;
        if (nu == 2) {
            size_t ones = 0;
            uint64_t *bits = p->bits + j * p->bit_words;
            for (size_t i = 0; i < n; i++) {
                ones += cc[i];
                bits[i >> 6] |= (uint64_t)cc[i] << (i & 63);
            }
            p->dense_bin[j] = ones >= n / 8 && n - ones >= n / 8;
        }
        if (nu > p->max_unique)
            p->max_unique = nu;
        p->uniq_off[j] = nu_total;
        nu_total += nu;
        p->uniq_off[j + 1] = nu_total;
    }
    if (build_rows1(p) != CN_OK)
        goto oom;
    free(a);
    free(tmp);
    free(block);
    free(rank);
    free(cc);
    return CN_OK;
oom:
    free(a);
    free(tmp);
    free(block);
    free(rank);
    free(cc);
    rf_prep_fini(p);
    return CN_ENOMEM;
}

void rf_prep_fini(rf_prep *p)
{
    free(p->codes);
    free(p->code_off);
    free(p->code_w);
    free(p->dense_bin);
    free(p->bits);
    free(p->rows1);
    free(p->row1_pos);
    free(p->n_unique);
    free(p->uniq_off);
    free(p->uniq);
    free(p->y);
    memset(p, 0, sizeof *p);
}

// ---------------------------------------------------------------------------
// Scratch memory.

typedef struct stack_ent {
    uint32_t start, end;
    int32_t depth;
    int32_t parent;
    int32_t is_left;
} stack_ent;

cn_err rf_scratch_init(rf_scratch *s, const rf_prep *prep)
{
    memset(s, 0, sizeof *s);
    size_t n = prep->n_rows ? prep->n_rows : 1;
    size_t k = (size_t)prep->n_classes;
    s->n_rows = prep->n_rows;
    s->n_features = prep->n_features;
    s->n_classes = prep->n_classes;
    s->idx = malloc(n * sizeof *s->idx);
    s->tmp = malloc(n * sizeof *s->tmp);
    s->vals = malloc(n * sizeof *s->vals);
    s->keys = malloc(n * sizeof *s->keys);
    s->hist = calloc((size_t)(prep->max_unique + 1) * k, sizeof *s->hist);
    s->cnt = calloc(prep->max_unique + 1, sizeof *s->cnt);
    s->mark = calloc(prep->max_unique + 1, 1);
    s->features = malloc((prep->n_features + 1) * sizeof *s->features);
    s->w = malloc(n * sizeof *s->w);
    s->boot = malloc(n * sizeof *s->boot);
    s->cls = malloc(4 * k * sizeof *s->cls);
    s->hist4 = calloc(4 * HIST_SMALL * k, sizeof *s->hist4);
    s->cnt4 = calloc(4 * HIST_SMALL, sizeof *s->cnt4);
    s->ny = malloc(n * sizeof *s->ny);
    s->nw = malloc(n * sizeof *s->nw);
    s->tmpy = malloc(n * sizeof *s->tmpy);
    s->tmpw = malloc(n * sizeof *s->tmpw);
    s->stack_cap = 64;
    s->stack = malloc(s->stack_cap * sizeof(stack_ent));
    s->mask_words = (prep->n_features + 63) / 64;
    s->cur_mask = malloc(s->mask_words * sizeof *s->cur_mask);
    s->masks = malloc(s->stack_cap * s->mask_words * sizeof *s->masks);
    s->stk_ct = malloc(s->stack_cap * k * sizeof *s->stk_ct);
    s->node_bits = calloc(prep->bit_words ? prep->bit_words : 1, sizeof *s->node_bits);
    if (!s->idx || !s->tmp || !s->vals || !s->keys || !s->hist || !s->cnt || !s->features ||
        !s->w || !s->boot || !s->cls || !s->stack || !s->ny || !s->nw || !s->tmpy || !s->tmpw ||
        !s->cur_mask || !s->masks || !s->hist4 || !s->cnt4 || !s->stk_ct || !s->mark ||
        !s->node_bits) {
        rf_scratch_fini(s);
        return CN_ENOMEM;
    }
    return CN_OK;
}

void rf_scratch_fini(rf_scratch *s)
{
    free(s->idx);
    free(s->tmp);
    free(s->vals);
    free(s->keys);
    free(s->hist);
    free(s->cnt);
    free(s->mark);
    free(s->features);
    free(s->w);
    free(s->boot);
    free(s->cls);
    free(s->stack);
    free(s->ny);
    free(s->nw);
    free(s->tmpy);
    free(s->tmpw);
    free(s->cur_mask);
    free(s->hist4);
    free(s->stk_ct);
    free(s->node_bits);
    rf_tree_fini(&s->tree);
    free(s->cnt4);
    free(s->masks);
    memset(s, 0, sizeof *s);
}

// ---------------------------------------------------------------------------
// Impurities.

static double impurity(rf_criterion crit, const double *c, int k, double w)
{
    if (w <= 0)
        return 0;
    double r = 0;
    if (crit == RF_GINI) {
        double sq = 0;
        for (int i = 0; i < k; i++)
            sq += c[i] * c[i];
        r = 1.0 - sq / (w * w);
    } else {
        for (int i = 0; i < k; i++)
            if (c[i] > 0) {
                double q = c[i] / w;
                r -= q * log2(q);
            }
    }
    return r;
}

// proxy returns a value that orders splits like the weighted child
// impurity, negated (larger is better), from the left counts cl and the
// node counts ct. It avoids the divisions and logs that cancel out.
static inline double proxy(rf_criterion crit, const double *cl, const double *ct, int k, double wl,
                           double wt)
{
    double wr = wt - wl;
    if (crit == RF_GINI) {
        double sl = 0, sr = 0;
        for (int i = 0; i < k; i++) {
            double r = ct[i] - cl[i];
            sl += cl[i] * cl[i];
            sr += r * r;
        }
        return sl / wl + sr / wr;
    }
    double v = 0;
    for (int i = 0; i < k; i++) {
        double r = ct[i] - cl[i];
        if (cl[i] > 0)
            v += cl[i] * log(cl[i]);
        if (r > 0)
            v += r * log(r);
    }
    return v - wl * log(wl) - wr * log(wr);
}

// ---------------------------------------------------------------------------
// Growing.

typedef struct split {
    int feature;
    uint32_t cut;  // codes <= cut go left
    uint32_t next; // best splitter: the next code present; the threshold is their midpoint
    double threshold;
    double proxy;
    double wl;
} split;

// A node's rows are read from rows1 rather than the columns when they lie
// further apart, on average, than SPARSE_GAP rows (then a column read costs
// about a cache line per row anyway).
#define SPARSE_GAP 16

// sparse_rows tells whether the node's rows idx[0..n) (ascending, n > 0) lie
// far enough apart to be read row by row.
static inline int sparse_rows(const uint32_t *idx, size_t n)
{
    return (size_t)(idx[n - 1] - idx[0]) > SPARSE_GAP * n;
}

// gather writes the codes of feature j for idx[0..n) into out and returns
// their min and max.
static void gather(const rf_prep *p, size_t j, const uint32_t *idx, size_t n, uint32_t *out,
                   uint32_t *mn, uint32_t *mx)
{
    uint32_t lo = UINT32_MAX, hi = 0;
    if (p->code_w[j] == 1 && n > 0 && sparse_rows(idx, n)) {
        const uint8_t *base = p->rows1 + p->row1_pos[j];
        size_t w = p->row1_w;
        for (size_t i = 0; i < n; i++) {
            uint32_t c = base[(size_t)idx[i] * w];
            out[i] = c;
            lo = c < lo ? c : lo;
            hi = c > hi ? c : hi;
        }
    } else if (p->code_w[j] == 1) {
        const uint8_t *col = p->codes + p->code_off[j];
        for (size_t i = 0; i < n; i++) {
            uint32_t c = col[idx[i]];
            out[i] = c;
            lo = c < lo ? c : lo;
            hi = c > hi ? c : hi;
        }
    } else if (p->code_w[j] == 2) {
        const uint16_t *col = (const uint16_t *)(p->codes + p->code_off[j]);
        for (size_t i = 0; i < n; i++) {
            uint32_t c = col[idx[i]];
            out[i] = c;
            lo = c < lo ? c : lo;
            hi = c > hi ? c : hi;
        }
    } else {
        const uint32_t *col = (const uint32_t *)(p->codes + p->code_off[j]);
        for (size_t i = 0; i < n; i++) {
            uint32_t c = col[idx[i]];
            out[i] = c;
            lo = c < lo ? c : lo;
            hi = c > hi ? c : hi;
        }
    }
    *mn = lo;
    *mx = hi;
}

static void sort_u64(uint64_t *a, size_t n)
{
    while (n > 24) {
        uint64_t x = a[0], y = a[n / 2], z = a[n - 1];
        uint64_t piv = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        size_t i = 0, j = n - 1;
        for (;;) {
            while (a[i] < piv)
                i++;
            while (a[j] > piv)
                j--;
            if (i >= j)
                break;
            uint64_t t = a[i];
            a[i] = a[j];
            a[j] = t;
            i++;
            j--;
        }
        size_t left = j + 1;
        if (left < n - left) {
            sort_u64(a, left);
            a += left;
            n -= left;
        } else {
            sort_u64(a + left, n - left);
            n = left;
        }
    }
    for (size_t i = 1; i < n; i++) {
        uint64_t v = a[i];
        size_t j = i;
        while (j > 0 && a[j - 1] > v) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
}

typedef struct node_ctx {
    const rf_params *p;
    const rf_prep *prep;
    rf_scratch *s;
    int k;
    uint32_t start, end;
    const double *ct;  // node class weights
    double wt;         // node weight
    double *cl;        // work: left class weights
    double *best_cl;   // left class weights of the best split
    size_t w_lo, w_hi; // s->node_bits holds the node's rows in words [w_lo, w_hi) once w_hi > 0
} node_ctx;

// A two-valued feature is scanned through bit sets (scan_bits) when the
// node has more rows than BITS_FACTOR times the 64-bit words its rows span.
#define BITS_FACTOR 2

// scan_bits sums the class weights of the node's rows with code 1 in
// feature f by intersecting the node's row set with the feature's, so the
// cost is one AND per 64 rows plus one step per row with code 1, rather than
// a load and a branch per row. The rows come in ascending order, as the
// node's index list has them, so the sums equal the row-by-row ones.
static size_t scan_bits(node_ctx *c, int f, double *c1)
{
    rf_scratch *s = c->s;
    const rf_prep *p = c->prep;
    uint64_t *nb = s->node_bits;
    if (c->w_hi == 0) {
        const uint32_t *idx = s->idx;
        c->w_lo = idx[c->start] >> 6;
        c->w_hi = (idx[c->end - 1] >> 6) + 1;
        for (uint32_t i = c->start; i < c->end; i++)
            nb[idx[i] >> 6] |= (uint64_t)1 << (idx[i] & 63);
    }
    const uint64_t *fb = p->bits + (size_t)f * p->bit_words;
    const int32_t *y = p->y;
    const double *w = s->w;
    size_t n1 = 0;
    for (size_t q = c->w_lo; q < c->w_hi; q++) {
        uint64_t m = nb[q] & fb[q];
        for (; m; m &= m - 1, n1++) {
            size_t r = q * 64 + (size_t)__builtin_ctzll(m);
            c1[y[r]] += w[r];
        }
    }
    return n1;
}

static inline double midpoint(const float *u, uint32_t a, uint32_t b)
{
    double lo = u[a], hi = u[b];
    double t = lo / 2.0 + hi / 2.0;
    if (t == hi || isinf(t))
        t = lo;
    return t;
}

// consider records a candidate if it beats the best so far.
static inline void consider_v(node_ctx *c, split *best, int f, uint32_t cut, uint32_t next,
                              double wl, double v)
{
    if (v > best->proxy) {
        best->proxy = v;
        best->feature = f;
        best->cut = cut;
        best->next = next;
        best->wl = wl;
        memcpy(c->best_cl, c->cl, (size_t)c->k * sizeof(double));
    }
}

#define HIST_LOOP(T)                                                                               \
    do {                                                                                           \
        const T *col = (const T *)(c->prep->codes + c->prep->code_off[f]);                         \
        for (size_t i = 0; i < n; i++) {                                                           \
            uint32_t code = col[idx[i]];                                                           \
            hist[(size_t)code * k + ny[i]] += nw[i];                                               \
            if (counting)                                                                          \
                cnt[code]++;                                                                       \
            else                                                                                   \
                mark[code] = 1;                                                                    \
            mn = code < mn ? code : mn;                                                            \
            mx = code > mx ? code : mx;                                                            \
        }                                                                                          \
    } while (0)

#define HIST4_LOOP(T)                                                                              \
    do {                                                                                           \
        const T *col = (const T *)(c->prep->codes + c->prep->code_off[f]);                         \
        size_t i = 0;                                                                              \
        for (; i + 4 <= n; i += 4) {                                                               \
            uint32_t a0 = col[idx[i]], a1 = col[idx[i + 1]], a2 = col[idx[i + 2]],                 \
                     a3 = col[idx[i + 3]];                                                         \
            h4[(size_t)a0 * k + ny[i]] += nw[i];                                                   \
            h4[stride + (size_t)a1 * k + ny[i + 1]] += nw[i + 1];                                  \
            h4[2 * stride + (size_t)a2 * k + ny[i + 2]] += nw[i + 2];                              \
            h4[3 * stride + (size_t)a3 * k + ny[i + 3]] += nw[i + 3];                              \
            if (counting) {                                                                        \
                c4[a0]++;                                                                          \
                c4[HIST_SMALL + a1]++;                                                             \
                c4[2 * HIST_SMALL + a2]++;                                                         \
                c4[3 * HIST_SMALL + a3]++;                                                         \
            }                                                                                      \
        }                                                                                          \
        for (; i < n; i++) {                                                                       \
            uint32_t a0 = col[idx[i]];                                                             \
            h4[(size_t)a0 * k + ny[i]] += nw[i];                                                   \
            if (counting)                                                                          \
                c4[a0]++;                                                                          \
        }                                                                                          \
    } while (0)

static inline void consider(node_ctx *c, split *best, int f, uint32_t cut, uint32_t next, double wl)
{
    consider_v(c, best, f, cut, next, wl, proxy(c->p->criterion, c->cl, c->ct, c->k, wl, c->wt));
}

// For gini the proxy is sl / wl + sr / wr with sl, sr the sums of squared
// class weights on each side; gini_move updates them as weight d of class i
// moves from the right to the left side (before cl[i] is updated).
static inline void gini_move(double *sl, double *sr, double l, double r, double d)
{
    *sl += d * (2 * l + d);
    *sr += d * (d - 2 * r);
}

// For a binary feature whose values are mixed, which side a row falls on is
// a coin toss for the branch predictor: add every row's weight times its
// code instead, alternating between two sums so consecutive rows of one
// class do not wait on each other. h holds 2 x k zeros.
#define BINARY_DENSE_LOOP(T)                                                                       \
    do {                                                                                           \
        const T *col = (const T *)(c->prep->codes + c->prep->code_off[f]);                         \
        size_t i = 0;                                                                              \
        for (; i + 2 <= n; i += 2) {                                                               \
            uint32_t a0 = col[idx[i]], a1 = col[idx[i + 1]];                                       \
            h[ny[i]] += nw[i] * (double)a0;                                                        \
            h[k + ny[i + 1]] += nw[i + 1] * (double)a1;                                            \
            n1 += a0 + a1;                                                                         \
        }                                                                                          \
        for (; i < n; i++) {                                                                       \
            uint32_t a0 = col[idx[i]];                                                             \
            h[ny[i]] += nw[i] * (double)a0;                                                        \
            n1 += a0;                                                                              \
        }                                                                                          \
        for (int q = 0; q < k; q++) {                                                              \
            c1[q] = h[q] + h[k + q];                                                               \
            h[q] = h[k + q] = 0;                                                                   \
        }                                                                                          \
    } while (0)

#define BINARY_LOOP(T)                                                                             \
    do {                                                                                           \
        const T *col = (const T *)(c->prep->codes + c->prep->code_off[f]);                         \
        for (size_t i = 0; i < n; i++)                                                             \
            if (col[idx[i]]) {                                                                     \
                c1[ny[i]] += nw[i];                                                                \
                n1++;                                                                              \
            }                                                                                      \
    } while (0)

// scan_hist evaluates every threshold of feature f with a class histogram
// over its distinct values, reading the codes straight from the column, and
// clears the histogram again. Returns 1 if f is constant in the node.
static int scan_hist(node_ctx *c, split *best, int f)
{
    rf_scratch *s = c->s;
    int k = c->k;
    size_t n = c->end - c->start;
    size_t msl = (size_t)c->p->min_samples_leaf;
    const uint32_t *idx = s->idx + c->start;
    const int32_t *ny = s->ny + c->start;
    const double *nw = s->nw + c->start;
    double *hist = s->hist;
    uint32_t *cnt = s->cnt;
    uint32_t mn = UINT32_MAX, mx = 0;
    // Sample counts per value are needed only to enforce min_samples_leaf
    // above 1; otherwise a value is present iff its weight is positive.
    // (The many-valued path always counts: testing a count is cheaper than
    // summing a bin's weights when most bins are empty.)
    // Many-valued features mark present values in a byte array instead:
    // storing a constant does not wait on the previous store, whereas
    // incrementing one count per sample (most pixels are 0) would.
    if (c->prep->n_unique[f] == 2) {
        // Binary features (most are 0): sum the class weights of the rows
        // with code 1 only; a rarely taken branch is cheaper than a
        // histogram update per row. The left side (code 0) is the rest.
        double *c1 = c->cl;
        memset(c1, 0, (size_t)k * sizeof *c1);
        size_t n1 = 0;
        size_t span = (s->idx[c->end - 1] >> 6) - (s->idx[c->start] >> 6) + 1;
        if (n > BITS_FACTOR * span) {
            n1 = scan_bits(c, f, c1);
        } else if (c->prep->dense_bin[f] && c->prep->code_w[f] == 1) {
            double *h = s->hist4;
            BINARY_DENSE_LOOP(uint8_t);
        } else if (c->prep->code_w[f] == 1)
            BINARY_LOOP(uint8_t);
        else if (c->prep->code_w[f] == 2)
            BINARY_LOOP(uint16_t);
        else
            BINARY_LOOP(uint32_t);
        if (n1 == 0 || n1 == n)
            return 1;
        double wl = 0;
        for (int i = 0; i < k; i++) {
            double l = c->ct[i] - c1[i];
            c1[i] = l < 1e-9 * c->wt ? 0 : l; // c->cl now holds the left side
            wl += c1[i];
        }
        if (n - n1 >= msl && n1 >= msl)
            consider(c, best, f, 0, 1, wl);
        return 0;
    }
    const int small = c->prep->n_unique[f] <= HIST_SMALL;
    const int counting = msl > 1;
    uint8_t *mark = s->mark;
    if (small) {
        // Few distinct values (binary features): samples hit the same few
        // cells back to back, so four interleaved copies of the histogram
        // keep the additions from waiting on each other.
        double *h4 = s->hist4;
        uint32_t *c4 = s->cnt4;
        size_t stride = (size_t)HIST_SMALL * k;
        if (c->prep->code_w[f] == 1)
            HIST4_LOOP(uint8_t);
        else if (c->prep->code_w[f] == 2)
            HIST4_LOOP(uint16_t);
        else
            HIST4_LOOP(uint32_t);
        uint32_t nu = c->prep->n_unique[f];
        for (uint32_t b = 0; b < nu; b++) {
            double wb = 0;
            for (int j = 0; j < k; j++) {
                double v = 0;
                for (int q = 0; q < 4; q++) {
                    v += h4[q * stride + (size_t)b * k + j];
                    h4[q * stride + (size_t)b * k + j] = 0;
                }
                hist[(size_t)b * k + j] = v;
                wb += v;
            }
            if (counting) {
                uint32_t total = 0;
                for (int q = 0; q < 4; q++) {
                    total += c4[q * HIST_SMALL + b];
                    c4[q * HIST_SMALL + b] = 0;
                }
                cnt[b] = total;
            }
            if (wb <= 0)
                continue;
            mn = b < mn ? b : mn;
            mx = b;
        }
    } else if (c->prep->code_w[f] == 1)
        HIST_LOOP(uint8_t);
    else if (c->prep->code_w[f] == 2)
        HIST_LOOP(uint16_t);
    else
        HIST_LOOP(uint32_t);
    if (mn == mx) {
        memset(hist + (size_t)mn * k, 0, (size_t)k * sizeof *hist);
        if (counting)
            cnt[mn] = 0;
        else
            mark[mn] = 0;
        return 1;
    }
    memset(c->cl, 0, (size_t)k * sizeof(double));
    double wl = 0;
    size_t nl = 0;
    uint32_t prev = mn;
    const int gini = c->p->criterion == RF_GINI;
    double sl = 0, sr = 0;
    for (int i = 0; i < k; i++)
        sr += c->ct[i] * c->ct[i];
    for (uint32_t b = mn; b <= mx; b++) {
        double *h = hist + (size_t)b * k;
        uint32_t nb;
        if (counting) {
            nb = cnt[b];
            cnt[b] = 0;
        } else if (!small) {
            nb = mark[b];
            mark[b] = 0;
        } else {
            double wb = 0;
            for (int i = 0; i < k; i++)
                wb += h[i];
            nb = wb > 0;
        }
        if (nb == 0)
            continue;
        // Without counting, nl counts present values: > 0 means a left side.
        if (nl > 0 && (!counting || (nl >= msl && n - nl >= msl))) {
            if (gini)
                consider_v(c, best, f, prev, b, wl, sl / wl + sr / (c->wt - wl));
            else
                consider(c, best, f, prev, b, wl);
        }
        for (int i = 0; i < k; i++) {
            double d = h[i];
            if (gini)
                gini_move(&sl, &sr, c->cl[i], c->ct[i] - c->cl[i], d);
            c->cl[i] += d;
            wl += d;
            h[i] = 0;
        }
        nl += nb;
        prev = b;
    }
    return 0;
}

// scan_sorted evaluates every threshold of feature f by sorting the node's codes.
static void scan_sorted(node_ctx *c, split *best, int f)
{
    rf_scratch *s = c->s;
    int k = c->k;
    size_t n = c->end - c->start;
    size_t msl = (size_t)c->p->min_samples_leaf;
    const int32_t *ny = s->ny + c->start;
    const double *nw = s->nw + c->start;
    uint64_t *keys = s->keys;
    if (n <= RANK_MAX) {
        // Place each key at its rank, the number of keys below it (keys are
        // distinct): n^2 compares without a branch, where sorting small
        // arrays mispredicts about once per key.
        uint64_t in[RANK_MAX];
        for (size_t i = 0; i < n; i++)
            in[i] = ((uint64_t)s->vals[i] << 32) | i;
        for (size_t i = 0; i < n; i++) {
            size_t r = 0;
            for (size_t q = 0; q < n; q++)
                r += in[q] < in[i];
            keys[r] = in[i];
        }
    } else {
        for (size_t i = 0; i < n; i++)
            keys[i] = ((uint64_t)s->vals[i] << 32) | i;
        sort_u64(keys, n);
    }
    memset(c->cl, 0, (size_t)k * sizeof(double));
    double wl = 0;
    size_t i = 0;
    uint32_t prev = 0;
    const int gini = c->p->criterion == RF_GINI;
    double sl = 0, sr = 0;
    for (int j = 0; j < k; j++)
        sr += c->ct[j] * c->ct[j];
    while (i < n) {
        uint32_t code = (uint32_t)(keys[i] >> 32);
        if (i > 0 && i >= msl && n - i >= msl) {
            if (gini)
                consider_v(c, best, f, prev, code, wl, sl / wl + sr / (c->wt - wl));
            else
                consider(c, best, f, prev, code, wl);
        }
        for (; i < n && (uint32_t)(keys[i] >> 32) == code; i++) {
            size_t q = (size_t)(keys[i] & 0xffffffffu);
            int y = ny[q];
            if (gini)
                gini_move(&sl, &sr, c->cl[y], c->ct[y] - c->cl[y], nw[q]);
            c->cl[y] += nw[q];
            wl += nw[q];
        }
        prev = code;
    }
}

// scan_counted is scan_sorted with a counting sort over the node's code
// range [mn, mx]: O(n + range) and O(1) work per sample and per threshold,
// where the histogram scan pays O(n_classes) per distinct value.
static void scan_counted(node_ctx *c, split *best, int f, uint32_t mn, uint32_t mx)
{
    rf_scratch *s = c->s;
    int k = c->k;
    size_t n = c->end - c->start;
    size_t msl = (size_t)c->p->min_samples_leaf;
    const int32_t *ny = s->ny + c->start;
    const double *nw = s->nw + c->start;
    const uint32_t *vals = s->vals;
    uint32_t *cnt = s->cnt;
    uint32_t *order = s->tmp;
    uint32_t range = mx - mn + 1;
    for (size_t i = 0; i < n; i++)
        cnt[vals[i] - mn]++;
    uint32_t sum = 0;
    for (uint32_t v = 0; v < range; v++) {
        uint32_t t = cnt[v];
        cnt[v] = sum;
        sum += t;
    }
    for (size_t i = 0; i < n; i++)
        order[cnt[vals[i] - mn]++] = (uint32_t)i;
    memset(cnt, 0, range * sizeof *cnt);
    memset(c->cl, 0, (size_t)k * sizeof(double));
    double wl = 0;
    size_t i = 0;
    uint32_t prev = 0;
    const int gini = c->p->criterion == RF_GINI;
    double sl = 0, sr = 0;
    for (int j = 0; j < k; j++)
        sr += c->ct[j] * c->ct[j];
    while (i < n) {
        uint32_t code = vals[order[i]];
        if (i > 0 && i >= msl && n - i >= msl) {
            if (gini)
                consider_v(c, best, f, prev, code, wl, sl / wl + sr / (c->wt - wl));
            else
                consider(c, best, f, prev, code, wl);
        }
        for (; i < n && vals[order[i]] == code; i++) {
            uint32_t q = order[i];
            int y = ny[q];
            if (gini)
                gini_move(&sl, &sr, c->cl[y], c->ct[y] - c->cl[y], nw[q]);
            c->cl[y] += nw[q];
            wl += nw[q];
        }
        prev = code;
    }
}

// scan_random evaluates one random threshold of feature f (extra trees).
static void scan_random(node_ctx *c, split *best, int f, uint32_t mn, uint32_t mx, cn_rng *rng)
{
    rf_scratch *s = c->s;
    const float *u = c->prep->uniq + c->prep->uniq_off[f];
    double lo = u[mn], hi = u[mx];
    double thr = (hi - lo) * cn_rng_uniform(rng) + lo;
    if (thr >= hi)
        thr = lo;
    // Largest code in [mn, mx) whose value is <= thr.
    uint32_t a = mn, b = mx; // u[a] <= thr < u[b]
    while (b - a > 1) {
        uint32_t m = a + (b - a) / 2;
        if ((double)u[m] <= thr)
            a = m;
        else
            b = m;
    }
    int k = c->k;
    size_t n = c->end - c->start;
    size_t msl = (size_t)c->p->min_samples_leaf;
    const int32_t *ny = s->ny + c->start;
    const double *nw = s->nw + c->start;
    memset(c->cl, 0, (size_t)k * sizeof(double));
    double wl = 0;
    size_t nl = 0;
    for (size_t i = 0; i < n; i++)
        if (s->vals[i] <= a) {
            c->cl[ny[i]] += nw[i];
            wl += nw[i];
            nl++;
        }
    if (nl >= msl && n - nl >= msl && nl > 0 && nl < n) {
        double before = best->proxy;
        consider(c, best, f, a, a, wl);
        if (best->proxy != before)
            best->threshold = thr;
    }
}

// partition splits the rows [start, end) of s->idx (with their classes and
// weights) stably: rows whose code in col is <= cut stay in order at the
// front, the others are left in s->tmp, s->tmpy and s->tmpw (*m of them).
// Returns the end of the left side. Each row is written to both sides and
// only the cursor of its side moves, so there is no branch to mispredict
// (the write to the left side never overtakes the read). The arrays are
// held in locals: through the struct, every store would reload them.
static inline size_t partition(rf_scratch *s, const void *col, int width, size_t start, size_t end,
                               uint32_t cut, size_t *m)
{
    uint32_t *restrict idx = s->idx, *restrict tmp = s->tmp;
    int32_t *restrict ny = s->ny, *restrict tmpy = s->tmpy;
    double *restrict nw = s->nw, *restrict tmpw = s->tmpw;
    size_t out = start, r_n = 0;
    for (size_t i = start; i < end; i++) {
        uint32_t r = idx[i];
        int32_t y = ny[i];
        double w = nw[i];
        uint32_t code = width == 1   ? ((const uint8_t *)col)[r]
                        : width == 2 ? ((const uint16_t *)col)[r]
                                     : ((const uint32_t *)col)[r];
        size_t left = code <= cut;
        ny[out] = y;
        nw[out] = w;
        idx[out] = r;
        tmpy[r_n] = y;
        tmpw[r_n] = w;
        tmp[r_n] = r;
        out += left;
        r_n += 1 - left;
    }
    *m = r_n;
    return out;
}

static cn_err add_node(rf_tree *t, int k, int32_t *id)
{
    if (t->n_nodes == t->cap) {
        int32_t cap = t->cap ? t->cap * 2 : 64;
        rf_tnode *nodes = realloc(t->nodes, (size_t)cap * sizeof *nodes);
        if (nodes == NULL)
            return CN_ENOMEM;
        t->nodes = nodes;
        float *value = realloc(t->value, (size_t)cap * (size_t)k * sizeof *value);
        if (value == NULL)
            return CN_ENOMEM;
        t->value = value;
        t->cap = cap;
    }
    *id = t->n_nodes++;
    return CN_OK;
}

cn_err rf_tree_build(const rf_params *p, int max_features, const rf_prep *prep, rf_scratch *s,
                     cn_rng *rng, rf_tree *t)
{
    t->n_nodes = 0;
    int k = prep->n_classes;
    int nf = (int)prep->n_features;
    size_t n_in = 0;
    {
        // The in-bag rows: each row is written and the cursor moves only
        // for weights > 0, so there is no branch to mispredict on a
        // bootstrap's random pattern.
        const double *restrict w = s->w;
        const int32_t *restrict y = prep->y;
        int32_t *restrict ny = s->ny;
        double *restrict nw = s->nw;
        uint32_t *restrict idx = s->idx;
        for (size_t i = 0; i < prep->n_rows; i++) {
            ny[n_in] = y[i];
            nw[n_in] = w[i];
            idx[n_in] = (uint32_t)i;
            n_in += w[i] > 0;
        }
    }
    size_t mw = s->mask_words;
    memset(s->masks, 0, mw * sizeof *s->masks);
    memset(s->stk_ct, 0, (size_t)k * sizeof *s->stk_ct);
    for (size_t i = 0; i < n_in; i++)
        s->stk_ct[s->ny[i]] += s->nw[i];
    for (int j = 0; j < nf; j++)
        s->features[j] = j;
    double *ct = s->cls, *cl = s->cls + k, *best_cl = s->cls + 2 * k, *cr = s->cls + 3 * k;
    stack_ent *stack = s->stack;
    size_t sp = 0;
    stack[sp++] = (stack_ent){0, (uint32_t)n_in, 0, -1, 0};
    double w_root = 0;
    for (size_t i = 0; i < n_in; i++)
        w_root += s->w[s->idx[i]];
    size_t mss = (size_t)(p->min_samples_split > 2 ? p->min_samples_split : 2);
    size_t msl = (size_t)(p->min_samples_leaf > 1 ? p->min_samples_leaf : 1);
    while (sp > 0) {
        stack_ent e = stack[--sp];
        size_t n = e.end - e.start;
        // The class weights of a node come from its parent's split scan.
        memcpy(ct, s->stk_ct + sp * (size_t)k, (size_t)k * sizeof *ct);
        double wt = 0;
        for (int c = 0; c < k; c++)
            wt += ct[c];
        uint64_t *known = s->cur_mask;
        memcpy(known, s->masks + sp * mw, mw * sizeof *known);
        int32_t id;
        if (add_node(t, k, &id) != CN_OK)
            goto oom;
        if (e.parent >= 0) {
            if (e.is_left)
                t->nodes[e.parent].left = id;
            else
                t->nodes[e.parent].right = id;
        }
        rf_tnode *nd = &t->nodes[id];
        nd->feature = -1;
        nd->left = nd->right = -1;
        nd->n_samples = (uint32_t)n;
        nd->threshold = 0;
        nd->weighted_n = wt;
        nd->impurity = impurity(p->criterion, ct, k, wt);
        for (int c = 0; c < k; c++)
            t->value[(size_t)id * k + c] = wt > 0 ? (float)(ct[c] / wt) : 0.0f;
        int leaf = (p->max_depth > 0 && e.depth >= p->max_depth) || n < mss || n < 2 * msl ||
                   nd->impurity <= RF_EPS;
        if (leaf)
            continue;

        node_ctx c = {p, prep, s, k, e.start, e.end, ct, wt, cl, best_cl, 0, 0};
        split best = {-1, 0, 0, 0, -INFINITY, 0};
        int visited = 0, constants = 0;
        for (int i = 0; i < nf && (visited < max_features || visited <= constants); i++) {
            int jj = i + (int)cn_rng_below(rng, (uint64_t)(nf - i));
            int f = s->features[jj];
            s->features[jj] = s->features[i];
            s->features[i] = f;
            visited++;
            uint64_t bit = (uint64_t)1 << (f & 63);
            if (known[f >> 6] & bit) {
                constants++; // constant in an ancestor, so here too
                continue;
            }
            int constant = 0;
            if (p->splitter == RF_SPLIT_BEST &&
                (size_t)prep->n_unique[f] * (size_t)k <= HIST_FACTOR * n) {
                constant = scan_hist(&c, &best, f);
            } else {
                uint32_t mn, mx;
                gather(prep, (size_t)f, s->idx + e.start, n, s->vals, &mn, &mx);
                constant = mn == mx;
                if (!constant && p->splitter == RF_SPLIT_RANDOM)
                    scan_random(&c, &best, f, mn, mx, rng);
                else if (!constant && (n <= RANK_MAX || mx - mn > 65535 ||
                                       (n <= SORT_MAX && mx - mn >= SMALL_RANGE)))
                    scan_sorted(&c, &best, f);
                else if (!constant)
                    scan_counted(&c, &best, f, mn, mx);
            }
            if (constant) {
                known[f >> 6] |= bit;
                constants++;
            }
        }
        if (c.w_hi > 0)
            memset(s->node_bits + c.w_lo, 0, (c.w_hi - c.w_lo) * sizeof *s->node_bits);
        if (best.feature < 0)
            continue;
        double wl = best.wl, wr = wt - wl;
        for (int i = 0; i < k; i++) {
            // Subtraction can leave rounding dust where a class is absent
            // (fractional class weights); dust must not make a pure node impure.
            cr[i] = ct[i] - best_cl[i];
            if (cr[i] < 1e-9 * wt)
                cr[i] = 0;
        }
        double il = impurity(p->criterion, best_cl, k, wl);
        double ir = impurity(p->criterion, cr, k, wr);
        double improvement = (wt / w_root) * (nd->impurity - (wl / wt) * il - (wr / wt) * ir);
        if (improvement + RF_EPS < p->min_impurity_decrease)
            continue;
        nd->feature = best.feature;
        nd->threshold =
            p->splitter == RF_SPLIT_BEST
                ? midpoint(prep->uniq + prep->uniq_off[best.feature], best.cut, best.next)
                : best.threshold;
        // Left rows stay in order in idx, right rows follow them from tmp.
        uint32_t *idx = s->idx;
        size_t out, m = 0;
        const uint8_t *col = prep->codes + prep->code_off[best.feature];
        if (prep->code_w[best.feature] == 1)
            out = partition(s, col, 1, e.start, e.end, best.cut, &m);
        else if (prep->code_w[best.feature] == 2)
            out = partition(s, col, 2, e.start, e.end, best.cut, &m);
        else
            out = partition(s, col, 4, e.start, e.end, best.cut, &m);
        memcpy(idx + out, s->tmp, m * sizeof *idx);
        memcpy(s->ny + out, s->tmpy, m * sizeof *s->ny);
        memcpy(s->nw + out, s->tmpw, m * sizeof *s->nw);
        if (sp + 2 > s->stack_cap) {
            size_t cap = s->stack_cap * 2;
            stack_ent *ns = realloc(s->stack, cap * sizeof *ns);
            if (ns == NULL)
                goto oom;
            s->stack = stack = ns;
            uint64_t *nm = realloc(s->masks, cap * mw * sizeof *nm);
            if (nm == NULL)
                goto oom;
            s->masks = nm;
            double *nc = realloc(s->stk_ct, cap * (size_t)k * sizeof *nc);
            if (nc == NULL)
                goto oom;
            s->stk_ct = nc;
            s->stack_cap = cap;
        }
        for (int q = 0; q < k; q++) {
            s->stk_ct[sp * (size_t)k + q] = cr[q];            // right child
            s->stk_ct[(sp + 1) * (size_t)k + q] = best_cl[q]; // left child
        }
        memcpy(s->masks + sp * mw, known, mw * sizeof *known);
        memcpy(s->masks + (sp + 1) * mw, known, mw * sizeof *known);
        stack[sp++] = (stack_ent){(uint32_t)out, e.end, e.depth + 1, id, 0};
        stack[sp++] = (stack_ent){e.start, (uint32_t)out, e.depth + 1, id, 1};
    }
    return CN_OK;
oom:
    rf_tree_fini(t);
    return CN_ENOMEM;
}

cn_err rf_tree_finish(rf_tree *t)
{
    if (t->pnodes == NULL || t->pcap < t->n_nodes) {
        free(t->pnodes);
        t->pcap = t->n_nodes > 0 ? t->n_nodes : 1;
        t->pnodes = malloc((size_t)t->pcap * sizeof *t->pnodes);
        if (t->pnodes == NULL) {
            t->pcap = 0;
            return CN_ENOMEM;
        }
    }
    for (int32_t i = 0; i < t->n_nodes; i++) {
        const rf_tnode *nd = &t->nodes[i];
        rf_pnode *pn = &t->pnodes[i];
        pn->feature = nd->feature >= 0 ? nd->feature : -1;
        pn->left = nd->left;
        pn->right = nd->right;
        float f = 0;
        if (nd->feature >= 0) {
            f = (float)nd->threshold;
            if ((double)f > nd->threshold)
                f = nextafterf(f, -INFINITY);
        }
        pn->threshold = f;
    }
    return CN_OK;
}

void rf_tree_route(const rf_tree *t, const float *cols, size_t n, uint32_t *pos, uint32_t *tmp,
                   int32_t *leaf)
{
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++)
        pos[i] = (uint32_t)i;
    // A subtree's rows are contiguous in pos; a path has at most n_nodes
    // pending right siblings, so the stack never outgrows 64 + depth.
    struct {
        int32_t node;
        uint32_t start, end;
    } stack[128], *heap = NULL, *stk = stack;
    size_t sp = 0, cap = sizeof stack / sizeof stack[0];
    stk[sp].node = 0;
    stk[sp].start = 0;
    stk[sp++].end = (uint32_t)n;
    while (sp > 0) {
        int32_t id = stk[--sp].node;
        uint32_t start = stk[sp].start, end = stk[sp].end;
        const rf_pnode *pn = &t->pnodes[id];
        if (pn->feature < 0) {
            for (uint32_t i = start; i < end; i++)
                leaf[pos[i]] = id;
            continue;
        }
        const float *col = cols + (size_t)pn->feature * n;
        float thr = pn->threshold;
        uint32_t l = start, r = 0;
        for (uint32_t i = start; i < end; i++) {
            uint32_t q = pos[i];
            int left = col[q] <= thr;
            pos[l] = q;
            tmp[r] = q;
            l += (uint32_t)left;
            r += (uint32_t)!left;
        }
        memcpy(pos + l, tmp, r * sizeof *pos);
        if (sp + 2 > cap) {
            size_t ncap = cap * 2;
            void *grown = malloc(ncap * sizeof *stk);
            CN_ASSERT(grown != NULL);
            memcpy(grown, stk, sp * sizeof *stk);
            free(heap);
            heap = grown;
            stk = grown;
            cap = ncap;
        }
        if (l < end) {
            stk[sp].node = pn->right;
            stk[sp].start = l;
            stk[sp++].end = end;
        }
        if (l > start) {
            stk[sp].node = pn->left;
            stk[sp].start = start;
            stk[sp++].end = l;
        }
    }
    free(heap);
}

void rf_tree_fini(rf_tree *t)
{
    free(t->nodes);
    free(t->value);
    free(t->pnodes);
    memset(t, 0, sizeof *t);
}

// ---------------------------------------------------------------------------
// Minimal cost-complexity pruning.

cn_err rf_tree_prune_ccp(rf_tree *t, int k, double alpha)
{
    int32_t n = t->n_nodes;
    if (n <= 1)
        return CN_OK;
    double *r_node = malloc((size_t)n * sizeof *r_node);
    double *r_branch = malloc((size_t)n * sizeof *r_branch);
    int32_t *leaves = malloc((size_t)n * sizeof *leaves);
    int32_t *parent = malloc((size_t)n * sizeof *parent);
    unsigned char *cand = malloc((size_t)n);
    unsigned char *gone = calloc((size_t)n, 1);
    int32_t *map = malloc((size_t)n * sizeof *map);
    int32_t *stack = malloc((size_t)n * sizeof *stack);
    rf_tree nt = {0};
    cn_err rc = CN_ENOMEM;
    if (!r_node || !r_branch || !leaves || !parent || !cand || !gone || !map || !stack)
        goto out;
    double w_root = t->nodes[0].weighted_n;
    parent[0] = -1;
    for (int32_t i = 0; i < n; i++) {
        const rf_tnode *nd = &t->nodes[i];
        r_node[i] = nd->impurity * nd->weighted_n / w_root;
        cand[i] = nd->feature >= 0;
        if (nd->feature >= 0)
            parent[nd->left] = parent[nd->right] = i;
    }
    // Children have larger indices than their parent (depth-first order).
    for (int32_t i = n - 1; i >= 0; i--) {
        const rf_tnode *nd = &t->nodes[i];
        if (nd->feature < 0) {
            leaves[i] = 1;
            r_branch[i] = r_node[i];
        } else {
            leaves[i] = leaves[nd->left] + leaves[nd->right];
            r_branch[i] = r_branch[nd->left] + r_branch[nd->right];
        }
    }
    while (cand[0]) {
        double best = INFINITY;
        int32_t m = -1;
        for (int32_t i = 0; i < n; i++) {
            if (!cand[i])
                continue;
            double a = (r_node[i] - r_branch[i]) / (double)(leaves[i] - 1);
            if (a < best) {
                best = a;
                m = i;
            }
        }
        if (m < 0 || alpha < best)
            break;
        // Collapse m: its descendants disappear.
        int32_t sp = 0;
        stack[sp++] = t->nodes[m].left;
        stack[sp++] = t->nodes[m].right;
        while (sp > 0) {
            int32_t i = stack[--sp];
            gone[i] = 1;
            cand[i] = 0;
            if (t->nodes[i].feature >= 0) {
                stack[sp++] = t->nodes[i].left;
                stack[sp++] = t->nodes[i].right;
            }
        }
        cand[m] = 0;
        int32_t dl = leaves[m] - 1;
        double dr = r_node[m] - r_branch[m];
        leaves[m] = 1;
        r_branch[m] = r_node[m];
        for (int32_t a = parent[m]; a >= 0; a = parent[a]) {
            leaves[a] -= dl;
            r_branch[a] += dr;
        }
        t->nodes[m].feature = -2; // marks "now a leaf" for the rebuild below
    }
    // Rebuild depth-first, left first, without the removed nodes.
    int32_t kept = 0;
    for (int32_t i = 0; i < n; i++)
        if (!gone[i])
            map[i] = kept++;
    nt.n_nodes = nt.cap = kept;
    nt.nodes = malloc((size_t)kept * sizeof *nt.nodes);
    nt.value = malloc((size_t)kept * (size_t)k * sizeof *nt.value);
    if (!nt.nodes || !nt.value)
        goto out;
    for (int32_t i = 0; i < n; i++) {
        if (gone[i])
            continue;
        rf_tnode nd = t->nodes[i];
        if (nd.feature == -2) {
            nd.feature = -1;
            nd.left = nd.right = -1;
            nd.threshold = 0;
        } else if (nd.feature >= 0) {
            nd.left = map[nd.left];
            nd.right = map[nd.right];
        }
        nt.nodes[map[i]] = nd;
        memcpy(nt.value + (size_t)map[i] * k, t->value + (size_t)i * k, (size_t)k * sizeof(float));
    }
    rf_tree_fini(t);
    *t = nt;
    nt.nodes = NULL;
    nt.value = NULL;
    rc = CN_OK;
out:
    free(nt.nodes);
    free(nt.value);
    free(r_node);
    free(r_branch);
    free(leaves);
    free(parent);
    free(cand);
    free(gone);
    free(map);
    free(stack);
    return rc;
}
