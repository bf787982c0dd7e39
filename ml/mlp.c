// mlp.c: forward and backward passes of the MLP over a flat parameter vector.
//
// Shapes, with B the batch, in/out the widths of layer l:
//   forward   Z_l = A_{l-1} W_l + b_l        (B,in) x (in,out) -> (B,out)
//             A_l = relu(Z_l) for hidden layers; logits = Z_last
//   loss      mean over rows of -log softmax(logits)[y]
//   backward  dZ_last = (softmax - onehot(y)) / B
//             dW_l = A_{l-1}^T dZ_l          (in,B) x (B,out) -> (in,out)
//             db_l = column sums of dZ_l
//             dA_{l-1} = dZ_l W_l^T          (B,out) x (out,in) -> (B,in), skipped for l = 0
//             dZ_{l-1} = dA_{l-1} * [A_{l-1} > 0]
// Every matrix product goes through mlp_gemm(), which is cblas_sgemm or the
// naive reference loop, so the two kernels share all the other code.
#include "ml/mlp.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_rand.h"
#include "ml/metrics.h"
#include "ml/mlp_impl.h"

struct mlp_ws {
    mlp_shape s;
    int max_batch;
    mlp_kernel kernel;
    float *x;                   // (max_batch, widths[0]) gather buffer
    float *act[MLP_MAX_LAYERS]; // act[l]: (max_batch, widths[l+1]) output of layer l
    float *d[2];                // (max_batch, max width) ping-pong gradient buffers
};

cn_err mlp_shape_init(mlp_shape *s, int n_inputs, const int *hidden, int n_hidden, int n_classes,
                      char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (n_hidden < 0 || n_hidden > MLP_MAX_LAYERS - 1)
        return cn_errf(err, errlen, CN_EINVAL, "hidden layers: %d is not allowed (0..%d)", n_hidden,
                       MLP_MAX_LAYERS - 1);
    if (n_inputs < 1)
        return cn_errf(err, errlen, CN_EINVAL, "inputs: %d is not allowed (must be >= 1)",
                       n_inputs);
    if (n_classes < 2)
        return cn_errf(err, errlen, CN_EINVAL, "classes: %d is not allowed (must be >= 2)",
                       n_classes);
    s->n_layers = n_hidden + 1;
    s->widths[0] = n_inputs;
    for (int i = 0; i < n_hidden; i++) {
        if (hidden[i] < 1)
            return cn_errf(err, errlen, CN_EINVAL,
                           "hidden width %d: %d is not allowed (must be >= 1)", i + 1, hidden[i]);
        s->widths[i + 1] = hidden[i];
    }
    s->widths[s->n_layers] = n_classes;
    size_t off = 0;
    for (int l = 0; l < s->n_layers; l++) {
        mlp_layer *L = &s->layer[l];
        L->in = s->widths[l];
        L->out = s->widths[l + 1];
        L->w_off = off;
        L->b_off = off + (size_t)L->in * (size_t)L->out;
        off = L->b_off + (size_t)L->out;
    }
    s->n_params = off;
    return CN_OK;
}

void mlp_shape_format(const mlp_shape *s, char *out, size_t n)
{
    size_t len = 0;
    if (n == 0)
        return;
    out[0] = 0;
    for (int l = 0; l <= s->n_layers && len < n; l++)
        len += (size_t)snprintf(out + len, n - len, "%s%d", l ? "-" : "", s->widths[l]);
}

void mlp_init_params(const mlp_shape *s, float *params, uint64_t seed)
{
    for (int l = 0; l < s->n_layers; l++) {
        const mlp_layer *L = &s->layer[l];
        cn_rng r;
        cn_rng_seed(&r, seed, (uint64_t)l);
        double std = sqrt(2.0 / (double)L->in);
        size_t nw = (size_t)L->in * (size_t)L->out;
        for (size_t i = 0; i < nw; i++)
            params[L->w_off + i] = (float)(cn_rng_normal(&r) * std);
        memset(params + L->b_off, 0, (size_t)L->out * sizeof(float));
    }
}

void mlp_set_threads(int n)
{
    openblas_set_num_threads(n < 1 ? 1 : n);
}

mlp_ws *mlp_ws_new(const mlp_shape *s, int max_batch)
{
    if (max_batch < 1)
        return NULL;
    mlp_ws *ws = calloc(1, sizeof *ws);
    if (ws == NULL)
        return NULL;
    ws->s = *s;
    ws->max_batch = max_batch;
    ws->kernel = MLP_KERNEL_BLAS;
    size_t b = (size_t)max_batch;
    int maxw = 1;
    for (int l = 1; l <= s->n_layers; l++)
        if (s->widths[l] > maxw)
            maxw = s->widths[l];
    ws->x = malloc(b * (size_t)s->widths[0] * sizeof(float));
    int ok = ws->x != NULL;
    for (int l = 0; l < s->n_layers; l++)
        ok &= (ws->act[l] = malloc(b * (size_t)s->widths[l + 1] * sizeof(float))) != NULL;
    for (int i = 0; i < 2; i++)
        ok &= (ws->d[i] = malloc(b * (size_t)maxw * sizeof(float))) != NULL;
    if (!ok) {
        mlp_ws_free(ws);
        return NULL;
    }
    return ws;
}

void mlp_ws_free(mlp_ws *ws)
{
    if (ws == NULL)
        return;
    free(ws->x);
    for (int l = 0; l < MLP_MAX_LAYERS; l++)
        free(ws->act[l]);
    free(ws->d[0]);
    free(ws->d[1]);
    free(ws);
}

void mlp_ws_set_kernel(mlp_ws *ws, mlp_kernel k)
{
    ws->kernel = k;
}
int mlp_ws_max_batch(const mlp_ws *ws)
{
    return ws->max_batch;
}

const float *mlp_ws_gather(mlp_ws *ws, const ds_dataset *d, const size_t *idx, int batch)
{
    CN_ASSERT(batch >= 0 && batch <= ws->max_batch);
    CN_ASSERT(d->n_features == (size_t)ws->s.widths[0]);
    size_t f = d->n_features;
    for (int i = 0; i < batch; i++) {
        CN_ASSERT(idx[i] < d->n_rows);
        memcpy(ws->x + (size_t)i * f, d->x + idx[i] * f, f * sizeof(float));
    }
    return ws->x;
}

// naive_gemm is the reference: C = op(A) op(B) with row-major storage,
// accumulated in double. Same argument meaning as cblas_sgemm with alpha 1,
// beta 0.
static void naive_gemm(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b,
                       int ldb, float *c, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0.0;
            for (int p = 0; p < k; p++) {
                float av = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                float bv = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                acc += (double)av * (double)bv;
            }
            c[(size_t)i * ldc + j] = (float)acc;
        }
}

void mlp_gemm(mlp_kernel kern, int ta, int tb, int m, int n, int k, const float *a, int lda,
              const float *b, int ldb, float *c, int ldc)
{
    if (kern == MLP_KERNEL_NAIVE) {
        naive_gemm(ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
                k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
}

MLP_HOT void mlp_bias_act(float *restrict z, const float *restrict b, int rows, int n, int relu)
{
    for (int i = 0; i < rows; i++) {
        float *zi = z + (size_t)i * n;
        if (relu) {
            for (int j = 0; j < n; j++) {
                float v = zi[j] + b[j];
                zi[j] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (int j = 0; j < n; j++)
                zi[j] += b[j];
        }
    }
}

// relu_mask_colsum turns dA into dZ in place (zero where the activation a
// was clipped) and writes its column sums into db (n).
MLP_HOT static void relu_mask_colsum(float *restrict da, const float *restrict a,
                                     float *restrict db, int rows, int n)
{
    memset(db, 0, (size_t)n * sizeof(float));
    for (int i = 0; i < rows; i++) {
        float *di = da + (size_t)i * n;
        const float *ai = a + (size_t)i * n;
        for (int j = 0; j < n; j++) {
            float v = ai[j] > 0.0f ? di[j] : 0.0f;
            di[j] = v;
            db[j] += v;
        }
    }
}

static void colsum(const float *restrict d, float *restrict db, int rows, int n)
{
    memset(db, 0, (size_t)n * sizeof(float));
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < n; j++)
            db[j] += d[(size_t)i * n + j];
}

const float *mlp_forward(const mlp_shape *s, const float *params, const float *x, const int32_t *y,
                         int batch, mlp_ws *ws, float *loss)
{
    CN_ASSERT(batch >= 1 && batch <= ws->max_batch);
    const float *in = x;
    for (int l = 0; l < s->n_layers; l++) {
        const mlp_layer *L = &s->layer[l];
        float *z = ws->act[l];
        mlp_gemm(ws->kernel, 0, 0, batch, L->out, L->in, in, L->in, params + L->w_off, L->out, z,
                 L->out);
        mlp_bias_act(z, params + L->b_off, batch, L->out, l + 1 < s->n_layers);
        in = z;
    }
    if (y != NULL && loss != NULL) {
        int k = s->widths[s->n_layers];
        double sum = 0.0;
        for (int i = 0; i < batch; i++) {
            const float *zi = in + (size_t)i * k;
            CN_ASSERT(y[i] >= 0 && y[i] < k);
            float mx = zi[0];
            for (int j = 1; j < k; j++)
                mx = zi[j] > mx ? zi[j] : mx;
            double se = 0.0;
            for (int j = 0; j < k; j++)
                se += exp((double)(zi[j] - mx));
            sum += log(se) - (double)(zi[y[i]] - mx);
        }
        *loss = (float)(sum / batch);
    }
    return in;
}

void mlp_grad(const mlp_shape *s, const float *params, const float *x, const int32_t *y, int batch,
              mlp_ws *ws, float *grad, float *loss)
{
    int nl = s->n_layers;
    int k = s->widths[nl];
    const float *logits = mlp_forward(s, params, x, NULL, batch, ws, NULL);
    // dZ_last = (softmax - onehot) / B, and the loss on the way.
    float *dz = ws->d[0];
    double sum = 0.0;
    float inv_b = 1.0f / (float)batch;
    for (int i = 0; i < batch; i++) {
        const float *zi = logits + (size_t)i * k;
        float *di = dz + (size_t)i * k;
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
    if (loss != NULL)
        *loss = (float)(sum / batch);
    int cur = 0;
    for (int l = nl - 1; l >= 0; l--) {
        const mlp_layer *L = &s->layer[l];
        const float *a_in = l > 0 ? ws->act[l - 1] : x; // (B, in)
        dz = ws->d[cur];
        // dW = A_in^T dZ
        mlp_gemm(ws->kernel, 1, 0, L->in, L->out, batch, a_in, L->in, dz, L->out, grad + L->w_off,
                 L->out);
        if (l == nl - 1)
            colsum(dz, grad + L->b_off, batch, L->out); // hidden biases were summed below
        if (l == 0)
            break; // the input gradient is never needed
        float *da = ws->d[cur ^ 1];
        mlp_gemm(ws->kernel, 0, 1, batch, L->in, L->out, dz, L->out, params + L->w_off, L->out, da,
                 L->in);
        const mlp_layer *P = &s->layer[l - 1];
        relu_mask_colsum(da, ws->act[l - 1], grad + P->b_off, batch, L->in);
        cur ^= 1;
    }
}

void mlp_predict(const mlp_shape *s, const float *params, const ds_dataset *d, mlp_ws *ws,
                 int32_t *pred)
{
    CN_ASSERT(d->n_features == (size_t)s->widths[0]);
    int k = s->widths[s->n_layers];
    for (size_t r0 = 0; r0 < d->n_rows; r0 += (size_t)ws->max_batch) {
        size_t nb = d->n_rows - r0;
        if (nb > (size_t)ws->max_batch)
            nb = (size_t)ws->max_batch;
        const float *z = mlp_forward(s, params, d->x + r0 * d->n_features, NULL, (int)nb, ws, NULL);
        for (size_t i = 0; i < nb; i++) {
            const float *zi = z + i * (size_t)k;
            int best = 0;
            for (int j = 1; j < k; j++)
                if (zi[j] > zi[best])
                    best = j;
            pred[r0 + i] = best;
        }
    }
}

cn_err mlp_evaluate(const mlp_shape *s, const float *params, const ds_dataset *d, mlp_ws *ws,
                    mlp_eval *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int k = s->widths[s->n_layers];
    if (d->n_features != (size_t)s->widths[0])
        return cn_errf(err, errlen, CN_EINVAL,
                       "data has %zu features per row but the model expects %d", d->n_features,
                       s->widths[0]);
    if (d->y == NULL)
        return cn_errf(err, errlen, CN_EINVAL, "data has no labels");
    for (size_t i = 0; i < d->n_rows; i++)
        if (d->y[i] < 0 || d->y[i] >= k)
            return cn_errf(err, errlen, CN_EINVAL,
                           "row %zu: class %d is outside the model's %d classes", i, d->y[i], k);
    int32_t *pred = malloc((d->n_rows ? d->n_rows : 1) * sizeof *pred);
    out->confusion = calloc((size_t)k * (size_t)k, sizeof(uint64_t));
    out->class_accuracy = calloc((size_t)k, sizeof(double));
    if (pred == NULL || out->confusion == NULL || out->class_accuracy == NULL) {
        free(pred);
        mlp_eval_fini(out);
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory evaluating %zu rows", d->n_rows);
    }
    out->n_classes = k;
    double loss_sum = 0.0;
    for (size_t r0 = 0; r0 < d->n_rows; r0 += (size_t)ws->max_batch) {
        size_t nb = d->n_rows - r0;
        if (nb > (size_t)ws->max_batch)
            nb = (size_t)ws->max_batch;
        float l = 0.0f;
        const float *z =
            mlp_forward(s, params, d->x + r0 * d->n_features, d->y + r0, (int)nb, ws, &l);
        loss_sum += (double)l * (double)nb;
        for (size_t i = 0; i < nb; i++) {
            const float *zi = z + i * (size_t)k;
            int best = 0;
            for (int j = 1; j < k; j++)
                if (zi[j] > zi[best])
                    best = j;
            pred[r0 + i] = best;
        }
    }
    metrics_confusion(d->y, pred, d->n_rows, k, out->confusion);
    free(pred);
    out->loss = d->n_rows ? loss_sum / (double)d->n_rows : 0.0;
    out->accuracy = metrics_accuracy(out->confusion, k);
    for (int c = 0; c < k; c++) {
        uint64_t row = 0;
        for (int j = 0; j < k; j++)
            row += out->confusion[(size_t)c * k + j];
        out->class_accuracy[c] =
            row ? (double)out->confusion[(size_t)c * k + c] / (double)row : NAN;
    }
    return CN_OK;
}

void mlp_eval_fini(mlp_eval *e)
{
    free(e->confusion);
    free(e->class_accuracy);
    e->confusion = NULL;
    e->class_accuracy = NULL;
}
