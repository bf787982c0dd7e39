// test_mlp.c: the MLP's layer map, He initialisation, gradients against
// central differences, the BLAS path against the naive kernel, evaluation,
// a small training run, the multi-threaded trainer against mlp_grad and its
// determinism, and the model file format.
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cn_file.h"
#include "common/cn_rand.h"
#include "ml/mlp.h"
#include "ml/optim.h"
#include "tests/support/support.h"

static void fill_normal(float *a, size_t n, uint64_t seed, double scale)
{
    cn_rng r;
    cn_rng_seed(&r, seed, 9);
    for (size_t i = 0; i < n; i++)
        a[i] = (float)(cn_rng_normal(&r) * scale);
}

START_TEST(test_shape_lays_out_layers_back_to_back)
{
    mlp_shape s;
    int hidden[2] = {256, 128};
    char err[CN_ERRBUF_LEN], name[64];
    ck_assert_int_eq(mlp_shape_init(&s, 784, hidden, 2, 10, err, sizeof err), CN_OK);
    ck_assert_int_eq(s.n_layers, 3);
    ck_assert_uint_eq(s.n_params, 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
    ck_assert_uint_eq(s.layer[0].w_off, 0);
    ck_assert_uint_eq(s.layer[0].b_off, 784 * 256);
    ck_assert_uint_eq(s.layer[1].w_off, 784 * 256 + 256);
    ck_assert_uint_eq(s.layer[2].b_off, s.n_params - 10);
    ck_assert_int_eq(s.layer[2].in, 128);
    mlp_shape_format(&s, name, sizeof name);
    ck_assert_str_eq(name, "784-256-128-10");
    hidden[1] = 0;
    ck_assert_int_eq(mlp_shape_init(&s, 784, hidden, 2, 10, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "hidden width 2: 0 is not allowed (must be >= 1)");
    ck_assert_int_eq(mlp_shape_init(&s, 784, hidden, 1, 1, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "classes: 1 is not allowed (must be >= 2)");
    ck_assert_int_eq(mlp_shape_init(&s, 4, hidden, MLP_MAX_LAYERS, 3, err, sizeof err), CN_EINVAL);
    ck_assert_int_eq(mlp_shape_init(&s, 4, NULL, 0, 3, err, sizeof err), CN_OK);
    ck_assert_uint_eq(s.n_params, 15);
}
END_TEST

START_TEST(test_he_init_is_seeded_and_scaled)
{
    mlp_shape s;
    int hidden[1] = {200};
    ck_assert_int_eq(mlp_shape_init(&s, 500, hidden, 1, 10, NULL, 0), CN_OK);
    float *a = malloc(s.n_params * sizeof(float)), *b = malloc(s.n_params * sizeof(float));
    mlp_init_params(&s, a, 42);
    mlp_init_params(&s, b, 42);
    ck_assert(memcmp(a, b, s.n_params * sizeof(float)) == 0);
    mlp_init_params(&s, b, 43);
    ck_assert(memcmp(a, b, s.n_params * sizeof(float)) != 0);
    double ss = 0.0;
    size_t nw = 500 * 200;
    for (size_t i = 0; i < nw; i++)
        ss += (double)a[i] * a[i];
    // std sqrt(2/500) = 0.0632; 100k samples give about 0.2% error.
    ck_assert_double_eq_tol(sqrt(ss / nw), sqrt(2.0 / 500), 0.002);
    for (int j = 0; j < 200; j++)
        ck_assert(a[s.layer[0].b_off + j] == 0.0f);
    free(a);
    free(b);
}
END_TEST

// Central differences on the loss (naive kernel, double accumulation) for
// every parameter of every layer: the weights, the biases and, through them,
// the softmax cross-entropy. h = 1e-3; tolerance |num - ana| <= 2e-4 +
// 1e-2 |ana| (float logits limit the numerical derivative to about 1e-4).
START_TEST(test_gradient_matches_central_differences)
{
    mlp_shape s;
    int hidden[2] = {7, 6};
    ck_assert_int_eq(mlp_shape_init(&s, 5, hidden, 2, 4, NULL, 0), CN_OK);
    const int B = 6;
    float *p = malloc(s.n_params * sizeof(float)), *g = malloc(s.n_params * sizeof(float));
    float x[6 * 5];
    int32_t y[6] = {0, 1, 2, 3, 1, 2};
    mlp_init_params(&s, p, 3);
    fill_normal(p + s.layer[0].b_off, 7, 11, 0.1); // non-zero biases exercise db
    fill_normal(x, sizeof x / sizeof x[0], 5, 1.0);
    mlp_ws *ws = mlp_ws_new(&s, B);
    mlp_ws_set_kernel(ws, MLP_KERNEL_NAIVE);
    float loss;
    mlp_grad(&s, p, x, y, B, ws, g, &loss);
    float lf;
    mlp_forward(&s, p, x, y, B, ws, &lf);
    ck_assert_double_eq_tol(loss, lf, 1e-6);
    const float h = 1e-3f;
    for (size_t i = 0; i < s.n_params; i++) {
        float keep = p[i], lp, lm;
        p[i] = keep + h;
        mlp_forward(&s, p, x, y, B, ws, &lp);
        p[i] = keep - h;
        mlp_forward(&s, p, x, y, B, ws, &lm);
        p[i] = keep;
        double num = ((double)lp - (double)lm) / (2.0 * h);
        ck_assert_msg(fabs(num - g[i]) <= 2e-4 + 1e-2 * fabs(g[i]),
                      "param %zu: analytic %g, numeric %g", i, (double)g[i], num);
    }
    mlp_ws_free(ws);
    free(p);
    free(g);
}
END_TEST

// The softmax cross-entropy gradient alone (no hidden layer) against its
// closed form: d loss / d logits = (softmax - onehot) / B, so for zero
// weights and biases the bias gradient is (1/k - onehot) averaged.
START_TEST(test_loss_gradient_closed_form)
{
    mlp_shape s;
    ck_assert_int_eq(mlp_shape_init(&s, 3, NULL, 0, 4, NULL, 0), CN_OK);
    float p[16] = {0}, g[16];
    float x[2 * 3] = {1, 2, 3, 4, 5, 6};
    int32_t y[2] = {1, 1};
    mlp_ws *ws = mlp_ws_new(&s, 2);
    float loss;
    mlp_grad(&s, p, x, y, 2, ws, g, &loss);
    ck_assert_double_eq_tol(loss, log(4.0), 1e-6);
    for (int j = 0; j < 4; j++)
        ck_assert_double_eq_tol(g[s.layer[0].b_off + j], 0.25 - (j == 1), 1e-6);
    // dW[i][j] = mean over rows of x[i] * (0.25 - onehot_j)
    ck_assert_double_eq_tol(g[0 * 4 + 1], 2.5 * -0.75, 1e-6);
    ck_assert_double_eq_tol(g[2 * 4 + 3], 4.5 * 0.25, 1e-6);
    mlp_ws_free(ws);
}
END_TEST

// The BLAS path equals the naive reference on the benchmark shape within
// |blas - naive| <= 1e-5 + 1e-3 |naive| (float accumulation over up to 784
// terms against double).
START_TEST(test_blas_matches_naive_kernel)
{
    mlp_shape s;
    int hidden[2] = {256, 128};
    ck_assert_int_eq(mlp_shape_init(&s, 784, hidden, 2, 10, NULL, 0), CN_OK);
    const int B = 33;
    float *p = malloc(s.n_params * sizeof(float));
    float *g1 = malloc(s.n_params * sizeof(float)), *g2 = malloc(s.n_params * sizeof(float));
    float *x = malloc((size_t)B * 784 * sizeof(float)), l1, l2;
    int32_t y[33];
    for (int i = 0; i < B; i++)
        y[i] = i % 10;
    mlp_init_params(&s, p, 1);
    fill_normal(x, (size_t)B * 784, 2, 0.5);
    mlp_ws *a = mlp_ws_new(&s, 64), *b = mlp_ws_new(&s, 64);
    mlp_ws_set_kernel(b, MLP_KERNEL_NAIVE);
    mlp_grad(&s, p, x, y, B, a, g1, &l1);
    mlp_grad(&s, p, x, y, B, b, g2, &l2);
    ck_assert_double_eq_tol(l1, l2, 1e-5);
    double worst = 0.0;
    for (size_t i = 0; i < s.n_params; i++) {
        double d = fabs((double)g1[i] - g2[i]) - (1e-5 + 1e-3 * fabs(g2[i]));
        if (d > worst)
            worst = d;
    }
    ck_assert_msg(worst <= 0.0, "BLAS and naive gradients differ beyond tolerance by %g", worst);
    const float *z1 = mlp_forward(&s, p, x, NULL, B, a, NULL);
    const float *z2 = mlp_forward(&s, p, x, NULL, B, b, NULL);
    for (int i = 0; i < B * 10; i++)
        ck_assert_double_eq_tol(z1[i], z2[i], 1e-5 + 1e-3 * fabs(z2[i]));
    mlp_ws_free(a);
    mlp_ws_free(b);
    free(p);
    free(g1);
    free(g2);
    free(x);
}
END_TEST

// Three Gaussian blobs in 8 dimensions, labels 0..2.
static ds_dataset *blobs(size_t n, uint64_t seed)
{
    ds_dataset *d = ds_dataset_new(n, 8, 1);
    cn_rng r;
    cn_rng_seed(&r, seed, 0);
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i % 3);
        d->y[i] = c;
        for (int j = 0; j < 8; j++)
            d->x[i * 8 + j] = (float)(cn_rng_normal(&r) * 0.5 + (j % 3 == c ? 1.5 : 0.0));
    }
    d->n_classes = 3;
    return d;
}

START_TEST(test_training_reduces_loss_and_evaluates)
{
    ds_dataset *d = blobs(300, 4);
    mlp_shape s;
    int hidden[1] = {16};
    ck_assert_int_eq(mlp_shape_init(&s, 8, hidden, 1, 3, NULL, 0), CN_OK);
    float *p = malloc(s.n_params * sizeof(float)), *g = malloc(s.n_params * sizeof(float));
    mlp_init_params(&s, p, 7);
    optim_cfg oc;
    optim_cfg_default(&oc, OPTIM_ADAM);
    oc.lr = 0.01f;
    optim_state *st = optim_state_new(&oc, s.n_params);
    mlp_ws *ws = mlp_ws_new(&s, 32);
    char err[CN_ERRBUF_LEN];
    mlp_eval before, after;
    ck_assert_int_eq(mlp_evaluate(&s, p, d, ws, &before, err, sizeof err), CN_OK);
    size_t idx[32];
    uint64_t t = 0;
    for (int epoch = 0; epoch < 5; epoch++)
        for (size_t r0 = 0; r0 + 32 <= d->n_rows; r0 += 32) {
            for (int i = 0; i < 32; i++)
                idx[i] = (r0 + (size_t)i * 7) % d->n_rows;
            const float *x = mlp_ws_gather(ws, d, idx, 32);
            int32_t y[32];
            for (int i = 0; i < 32; i++)
                y[i] = d->y[idx[i]];
            float loss;
            mlp_grad(&s, p, x, y, 32, ws, g, &loss);
            optim_step(&oc, st, p, g, s.n_params, t++);
        }
    ck_assert_int_eq(mlp_evaluate(&s, p, d, ws, &after, err, sizeof err), CN_OK);
    ck_assert_msg(after.loss < 0.5 * before.loss, "loss %g -> %g", before.loss, after.loss);
    ck_assert(after.accuracy > 0.9);
    uint64_t total = 0;
    for (int i = 0; i < 9; i++)
        total += after.confusion[i];
    ck_assert_uint_eq(total, 300);
    for (int c = 0; c < 3; c++)
        ck_assert(after.class_accuracy[c] > 0.8);
    int32_t pred[300];
    mlp_predict(&s, p, d, ws, pred);
    size_t right = 0;
    for (int i = 0; i < 300; i++)
        right += pred[i] == d->y[i];
    ck_assert_double_eq_tol((double)right / 300.0, after.accuracy, 1e-12);
    mlp_eval_fini(&before);
    mlp_eval_fini(&after);

    // Evaluation errors.
    d->y[5] = 3;
    ck_assert_int_eq(mlp_evaluate(&s, p, d, ws, &after, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "row 5: class 3 is outside the model's 3 classes");
    mlp_shape s2;
    ck_assert_int_eq(mlp_shape_init(&s2, 9, hidden, 1, 3, NULL, 0), CN_OK);
    ck_assert_int_eq(mlp_evaluate(&s2, p, d, ws, &after, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "data has 8 features per row but the model expects 9");
    optim_state_free(st);
    mlp_ws_free(ws);
    ds_dataset_free(d);
    free(p);
    free(g);
}
END_TEST

// check_trainer_grad checks that the threaded trainer's gradient for the
// model inputs-hidden-5 equals mlp_grad's for T = 1, 2, 3 and batches not
// divisible by T or smaller than T, from rows or gathered from a data set,
// within |tr - ref| <= 1e-6 + 1e-4 |ref| (both are float sums over the same
// rows; only GEMM blocking differs), and that it writes every element. Loss
// within 1e-6.
static void check_trainer_grad(int inputs, const int *hidden, int n_hidden)
{
    mlp_shape s;
    ck_assert_int_eq(mlp_shape_init(&s, inputs, hidden, n_hidden, 5, NULL, 0), CN_OK);
    const int maxb = 37;
    ds_dataset *d = ds_dataset_new(100, (size_t)inputs, 1);
    fill_normal(d->x, 100 * (size_t)inputs, 21, 1.0);
    for (size_t i = 0; i < 100; i++)
        d->y[i] = (int32_t)((i * 7) % 5);
    d->n_classes = 5;
    size_t idx[37];
    for (int i = 0; i < maxb; i++)
        idx[i] = (size_t)(i * 13 + 5) % 100;
    float *p = malloc(s.n_params * sizeof(float)), *ref = malloc(s.n_params * sizeof(float));
    float *g = malloc(s.n_params * sizeof(float));
    mlp_init_params(&s, p, 4);
    fill_normal(p + s.layer[0].b_off, (size_t)hidden[0], 12, 0.1);
    mlp_ws *ws = mlp_ws_new(&s, maxb);
    const int batches[] = {1, 2, 3, 5, 7, 37};
    for (int T = 1; T <= 3; T++) {
        mlp_trainer *tr = mlp_trainer_new(&s, maxb, T);
        ck_assert_ptr_nonnull(tr);
        ck_assert_int_eq(mlp_trainer_threads(tr), T);
        for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
            int B = batches[bi];
            const float *x = mlp_ws_gather(ws, d, idx, B);
            int32_t y[37];
            for (int i = 0; i < B; i++)
                y[i] = d->y[idx[i]];
            float lref, l1, l2;
            mlp_grad(&s, p, x, y, B, ws, ref, &lref);
            for (int from_rows = 0; from_rows < 2; from_rows++) {
                mlp_batch b = {.n = B};
                if (from_rows) {
                    b.x = x;
                    b.y = y;
                } else {
                    b.d = d;
                    b.idx = idx;
                }
                memset(g, 0xff, s.n_params * sizeof(float)); // NaN: every element must be written
                mlp_trainer_grad(tr, p, &b, g, &l1);
                ck_assert_double_eq_tol(l1, lref, 1e-6);
                size_t bad = 0; // one assertion per gradient: each costs Check a write
                while (bad < s.n_params &&
                       fabs((double)g[bad] - ref[bad]) <= 1e-6 + 1e-4 * fabs(ref[bad]))
                    bad++;
                ck_assert_msg(bad == s.n_params, "T=%d B=%d param %zu: %g vs %g", T, B, bad,
                              bad < s.n_params ? (double)g[bad] : 0.0,
                              bad < s.n_params ? (double)ref[bad] : 0.0);
                mlp_trainer_grad(tr, p, &b, g, &l2); // repeatable
                ck_assert(l1 == l2);
            }
        }
        mlp_trainer_free(tr);
    }
    mlp_ws_free(ws);
    ds_dataset_free(d);
    free(p);
    free(ref);
    free(g);
}

START_TEST(test_trainer_grad_matches_single_thread)
{
    int hidden[2] = {40, 24};
    check_trainer_grad(30, hidden, 2);
}
END_TEST

// The same for a model whose layers the trainer splits into parameter chunks
// of unequal row counts: the first layer's 601 inputs in 3 chunks at T = 1,
// each thread's part in 2 at T = 2 and 1 at T = 3; the second layer in 1, 2
// and 3 chunks (a plan that missed a row or a bias would leave NaN).
START_TEST(test_trainer_grad_matches_with_many_chunks)
{
    int hidden[2] = {230, 150};
    check_trainer_grad(601, hidden, 2);
}
END_TEST

// The same for a model with fewer inputs than threads: at T = 3 one of the
// three parts of the first layer's inputs is empty (1 input each at T = 2).
START_TEST(test_trainer_grad_matches_with_fewer_inputs_than_threads)
{
    int hidden[1] = {7};
    check_trainer_grad(2, hidden, 1);
}
END_TEST

// A data set of 16 MB is advised transparent huge pages: the mapping that
// holds its features is THP-eligible in /proc/self/smaps (unless the kernel
// has THP off, when there is nothing to check).
START_TEST(test_large_data_set_asks_for_huge_pages)
{
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f != NULL) {
        if (fgets(mode, sizeof mode, f) == NULL)
            mode[0] = 0;
        fclose(f);
    }
    if (strstr(mode, "[never]") != NULL || mode[0] == 0)
        return;
    ds_dataset *d = ds_dataset_new(4096, 1024, 1);
    ck_assert_ptr_nonnull(d);
    uintptr_t x = (uintptr_t)d->x + ((size_t)8 << 20); // inside the advised range
    f = fopen("/proc/self/smaps", "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    int in_vma = 0, eligible = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            in_vma = x >= lo && x < hi;
        else if (in_vma && sscanf(line, "THPeligible: %d", &eligible) == 1)
            break;
    }
    fclose(f);
    ck_assert_int_eq(eligible, 1);
    ds_dataset_free(d);
}
END_TEST

// runs `steps` Adam steps of the trainer with T threads from a fixed start
// and returns the final parameters (caller frees) and the last loss.
static float *train_run(const mlp_shape *s, const ds_dataset *d, int T, int steps, float *last)
{
    float *p = malloc(s->n_params * sizeof(float)), *g = malloc(s->n_params * sizeof(float));
    mlp_init_params(s, p, 8);
    optim_cfg oc;
    optim_cfg_default(&oc, OPTIM_ADAM);
    oc.lr = 0.01f;
    oc.weight_decay = 1e-3f;
    optim_state *st = optim_state_new(&oc, s->n_params);
    mlp_trainer *tr = mlp_trainer_new(s, 29, T);
    ck_assert_ptr_nonnull(tr);
    size_t idx[29];
    for (int t = 0; t < steps; t++) {
        for (int i = 0; i < 29; i++)
            idx[i] = (size_t)(t * 29 + i * 11) % d->n_rows;
        mlp_batch b = {.d = d, .idx = idx, .n = 29 - t % 3};
        mlp_trainer_step(tr, p, &b, &oc, st, (uint64_t)t, t % 2 ? g : NULL, last);
    }
    ck_assert_uint_eq(optim_state_steps(st), (uint64_t)steps);
    mlp_trainer_free(tr);
    optim_state_free(st);
    free(g);
    return p;
}

// A threaded training run is deterministic for a fixed T (bit-identical
// parameters), a step equals mlp_trainer_grad + optim_step bit for bit
// whether it returns the gradient or not, and runs with different T agree
// closely and learn.
START_TEST(test_trainer_training_is_deterministic)
{
    ds_dataset *d = blobs(300, 6);
    mlp_shape s;
    int hidden[1] = {16};
    ck_assert_int_eq(mlp_shape_init(&s, 8, hidden, 1, 3, NULL, 0), CN_OK);
    float first = 0.0f, last;
    float *p1[4];
    for (int T = 1; T <= 3; T++) {
        p1[T] = train_run(&s, d, T, 60, &last);
        float again;
        float *p2 = train_run(&s, d, T, 60, &again);
        ck_assert_msg(memcmp(p1[T], p2, s.n_params * sizeof(float)) == 0, "T=%d: two runs differ",
                      T);
        ck_assert(last == again);
        free(p2);
        if (T == 1) {
            float *p0 = train_run(&s, d, 1, 1, &first);
            free(p0);
            ck_assert_msg(last < 0.5f * first, "loss %g -> %g", (double)first, (double)last);
        }
    }
    for (int T = 2; T <= 3; T++)
        for (size_t i = 0; i < s.n_params; i++)
            ck_assert_double_eq_tol(p1[T][i], p1[1][i], 1e-3);

    // One step against mlp_trainer_grad followed by optim_step.
    optim_cfg oc;
    optim_cfg_default(&oc, OPTIM_ADAM);
    optim_state *sa = optim_state_new(&oc, s.n_params), *sb = optim_state_new(&oc, s.n_params);
    optim_state *sc = optim_state_new(&oc, s.n_params);
    float *pa = malloc(s.n_params * sizeof(float)), *pb = malloc(s.n_params * sizeof(float));
    float *pc = malloc(s.n_params * sizeof(float));
    float *g = malloc(s.n_params * sizeof(float)), *g2 = malloc(s.n_params * sizeof(float));
    memcpy(pa, p1[2], s.n_params * sizeof(float));
    memcpy(pb, p1[2], s.n_params * sizeof(float));
    memcpy(pc, p1[2], s.n_params * sizeof(float));
    mlp_trainer *tr = mlp_trainer_new(&s, 32, 2);
    size_t idx[32];
    for (int i = 0; i < 32; i++)
        idx[i] = (size_t)i * 9;
    mlp_batch b = {.d = d, .idx = idx, .n = 32};
    for (uint64_t t = 0; t < 3; t++) {
        float la, lb, lc;
        mlp_trainer_grad(tr, pa, &b, g, &la);
        optim_step(&oc, sa, pa, g, s.n_params, t);
        mlp_trainer_step(tr, pb, &b, &oc, sb, t, g2, &lb);
        mlp_trainer_step(tr, pc, &b, &oc, sc, t, NULL, &lc);
        ck_assert(la == lb && la == lc);
        ck_assert(memcmp(g, g2, s.n_params * sizeof(float)) == 0);
        ck_assert(memcmp(pa, pb, s.n_params * sizeof(float)) == 0);
        ck_assert(memcmp(pa, pc, s.n_params * sizeof(float)) == 0);
        for (int sl = 0; sl < 2; sl++)
            ck_assert(memcmp(optim_state_slot(sa, sl), optim_state_slot(sc, sl),
                             s.n_params * sizeof(float)) == 0);
    }
    mlp_trainer_free(tr);
    optim_state_free(sa);
    optim_state_free(sb);
    optim_state_free(sc);
    free(pa);
    free(pb);
    free(pc);
    free(g);
    free(g2);
    for (int T = 1; T <= 3; T++)
        free(p1[T]);
    ds_dataset_free(d);
}
END_TEST

// A trainer whose threads go to sleep between steps (idle longer than they
// spin, or told not to spin) wakes them and gives bit-identical results to
// one stepped back to back; so does one that spins for the whole gap. A
// lost wake-up hangs the test.
START_TEST(test_trainer_wakes_sleeping_threads)
{
    ds_dataset *d = blobs(300, 6);
    mlp_shape s;
    int hidden[1] = {16};
    ck_assert_int_eq(mlp_shape_init(&s, 8, hidden, 1, 3, NULL, 0), CN_OK);
    const uint64_t spins[] = {MLP_IDLE_SPIN_NS, 0, MLP_LOOP_SPIN_NS};
    const long gaps_ns[] = {6000000, 0, 0}; // 6 ms: idle threads sleep
    for (int T = 2; T <= 3; T++) {
        float last;
        float *ref = train_run(&s, d, T, 6, &last);
        for (int mode = 0; mode < 3; mode++) {
            float *p = malloc(s.n_params * sizeof(float));
            mlp_init_params(&s, p, 8);
            optim_cfg oc;
            optim_cfg_default(&oc, OPTIM_ADAM);
            oc.lr = 0.01f;
            oc.weight_decay = 1e-3f;
            optim_state *st = optim_state_new(&oc, s.n_params);
            mlp_trainer *tr = mlp_trainer_new(&s, 29, T);
            ck_assert_ptr_nonnull(tr);
            mlp_trainer_set_idle_spin(tr, spins[mode]);
            size_t idx[29];
            float loss = 0.0f;
            for (int t = 0; t < 6; t++) {
                struct timespec idle = {0, gaps_ns[mode]};
                nanosleep(&idle, NULL);
                for (int i = 0; i < 29; i++)
                    idx[i] = (size_t)(t * 29 + i * 11) % d->n_rows;
                mlp_batch b = {.d = d, .idx = idx, .n = 29 - t % 3};
                mlp_trainer_step(tr, p, &b, &oc, st, (uint64_t)t, NULL, &loss);
            }
            ck_assert_msg(memcmp(p, ref, s.n_params * sizeof(float)) == 0,
                          "T=%d mode %d: results differ", T, mode);
            ck_assert(loss == last);
            mlp_trainer_free(tr);
            optim_state_free(st);
            free(p);
        }
        free(ref);
    }
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_model_file_round_trip_and_errors)
{
    char dir[512], path[600], err[CN_ERRBUF_LEN];
    ts_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.cnm", dir);
    mlp_shape s, s2;
    int hidden[2] = {5, 4};
    ck_assert_int_eq(mlp_shape_init(&s, 6, hidden, 2, 3, NULL, 0), CN_OK);
    float *p = malloc(s.n_params * sizeof(float)), *q = NULL;
    mlp_init_params(&s, p, 9);
    ck_assert_int_eq(mlp_model_save(path, &s, p, err, sizeof err), CN_OK);
    ck_assert_int_eq(mlp_model_load(path, &s2, &q, err, sizeof err), CN_OK);
    ck_assert(memcmp(&s, &s2, sizeof s) == 0);
    ck_assert(memcmp(p, q, s.n_params * sizeof(float)) == 0);
    free(q);

    cn_buf b;
    cn_buf_init(&b);
    ck_assert_int_eq(mlp_model_encode(&s, p, &b), CN_OK);
    ck_assert_uint_eq(b.len, 8 + 4 + 4 * 4 + 8 + s.n_params * 4 + 4);
    uint8_t *m = malloc(b.len);
    memcpy(m, b.data, b.len);
    m[b.len - 10] ^= 0x40; // flip a bit of the last parameter
    ck_assert_int_eq(mlp_model_decode(m, b.len, "m.cnm", &s2, &q, err, sizeof err), CN_EIO);
    ck_assert_str_eq(err, "m.cnm: checksum mismatch (file is corrupted)");
    ck_assert_ptr_null(q);
    ck_assert_int_eq(mlp_model_decode(b.data, b.len - 7, "m.cnm", &s2, &q, err, sizeof err),
                     CN_EFORMAT);
    ck_assert_str_eq(err, "m.cnm: file has 329 bytes, the header implies 336 (truncated)");
    ck_assert_int_eq(mlp_model_decode(b.data, 10, "m.cnm", &s2, &q, err, sizeof err), CN_EFORMAT);
    ck_assert_str_eq(err, "m.cnm: file is truncated (10 bytes)");
    memcpy(m, b.data, b.len);
    m[7] = 2;
    ck_assert_int_eq(mlp_model_decode(m, b.len, "m.cnm", &s2, &q, err, sizeof err), CN_EVERSION);
    ck_assert_str_eq(err, "m.cnm: model format version 2 is not supported (this build reads 1)");
    m[0] = 'X';
    ck_assert_int_eq(mlp_model_decode(m, b.len, "m.cnm", &s2, &q, err, sizeof err), CN_EFORMAT);
    ck_assert_str_eq(err, "m.cnm: not a canopy MLP model (bad magic)");
    memcpy(m, b.data, b.len);
    m[12] = 0; // first width 6 -> 0
    ck_assert_int_eq(mlp_model_decode(m, b.len, "m.cnm", &s2, &q, err, sizeof err), CN_EFORMAT);
    ck_assert_str_eq(err, "m.cnm: layer width 0 is not allowed");
    memcpy(m, b.data, b.len);
    m[28] = 99; // n_params
    ck_assert_int_eq(mlp_model_decode(m, b.len, "m.cnm", &s2, &q, err, sizeof err), CN_EFORMAT);
    ck_assert_str_eq(err, "m.cnm: header says 99 parameters, the layer widths imply 74");
    snprintf(path, sizeof path, "%s/missing.cnm", dir);
    ck_assert_int_eq(mlp_model_load(path, &s2, &q, err, sizeof err), CN_ENOTFOUND);
    free(m);
    cn_buf_fini(&b);
    free(p);
    ts_rmtree(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("mlp");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_shape_lays_out_layers_back_to_back);
    tcase_add_test(t, test_he_init_is_seeded_and_scaled);
    tcase_add_test(t, test_gradient_matches_central_differences);
    tcase_add_test(t, test_loss_gradient_closed_form);
    tcase_add_test(t, test_blas_matches_naive_kernel);
    tcase_add_test(t, test_training_reduces_loss_and_evaluates);
    tcase_add_test(t, test_trainer_grad_matches_single_thread);
    tcase_add_test(t, test_trainer_grad_matches_with_many_chunks);
    tcase_add_test(t, test_trainer_grad_matches_with_fewer_inputs_than_threads);
    tcase_add_test(t, test_large_data_set_asks_for_huge_pages);
    tcase_add_test(t, test_trainer_training_is_deterministic);
    tcase_add_test(t, test_trainer_wakes_sleeping_threads);
    tcase_add_test(t, test_model_file_round_trip_and_errors);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
