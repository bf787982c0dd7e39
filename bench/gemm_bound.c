// gemm_bound.c: the GEMM-only throughput bound of one MLP training step.
//
// Times just the cblas_sgemm calls that mlp_grad makes for one minibatch
// (forward Z = A W for every layer; backward dW = A^T dZ for every layer and
// dA = dZ W^T for all but the first), with the same shapes and transposes,
// and converts the best time per step into samples per second. No bias,
// activation, loss or optimizer work is included, so a real training step
// can only approach this number.
//
// With N threads the bound is the best of three ways to use them:
//   - OpenBLAS's own threading on the whole batch;
// and two splits, each timed as N threads running single-threaded GEMMs at
// the same time on data of their own (a perfect split with no
// synchronisation):
//   - rows: each thread runs every GEMM of a step on batch/N rows;
//   - parts: each thread runs 1/N of every GEMM in the shapes canopy's
//     trainer uses (ml/mlp_train.c): the first layer's forward product over
//     all rows and in/N inputs, the other layers' forward and backward
//     products on batch/N rows, and in/N rows of every dW over all rows.
// The splits are usually far faster than OpenBLAS's threads for these small
// matrices, and which of the two is fastest depends on the CPU.
//
// usage: gemm_bound [--threads N] [--batch B] [--hidden 256,128] [--inputs 784]
//                   [--classes 10] [--seconds S]
// prints: gemm_bound: threads=N batch=B samples_per_s=X gflops=G split=blas|rows|parts
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_clock.h"
#include "ml/mlp.h"

static float *rnd(size_t n)
{
    float *a = malloc(n * sizeof(float));
    if (a == NULL) {
        fprintf(stderr, "gemm_bound: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        a[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return a;
}

// step_parts runs one thread's share of a step split as the trainer splits
// it over nparts threads (see the top of the file).
static void step_parts(const mlp_shape *s, const float *w, float *g, float **act, float **dact,
                       int batch, int nparts)
{
    int rb = (batch + nparts - 1) / nparts;
    for (int l = 0; l < s->n_layers; l++) {
        const mlp_layer *L = &s->layer[l];
        if (l == 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, batch, L->out,
                        (L->in + nparts - 1) / nparts, 1.0f, act[0], L->in, w + L->w_off, L->out,
                        0.0f, act[1], L->out);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rb, L->out, L->in, 1.0f, act[l],
                        L->in, w + L->w_off, L->out, 0.0f, act[l + 1], L->out);
    }
    for (int l = s->n_layers - 1; l >= 0; l--) {
        const mlp_layer *L = &s->layer[l];
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (L->in + nparts - 1) / nparts, L->out,
                    batch, 1.0f, act[l], L->in, dact[l + 1], L->out, 0.0f, g + L->w_off, L->out);
        if (l > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rb, L->in, L->out, 1.0f,
                        dact[l + 1], L->out, w + L->w_off, L->out, 0.0f, dact[l], L->in);
    }
}

// time_step returns the best time, in seconds, of the GEMMs of one training
// step on `batch` rows, or with nparts > 0 of one thread's share of a step
// split in nparts parts as the trainer splits it (step_parts).
static double time_step(const mlp_shape *sp, const float *w, float *g, float **act, float **dact,
                        int batch, int nparts, double seconds)
{
    const mlp_shape s = *sp;
    double best = 1e30;
    uint64_t start = cn_now_ns();
    int reps = 0;
    while (reps < 20 || (double)(cn_now_ns() - start) * 1e-9 < seconds) {
        uint64_t t0 = cn_now_ns();
        for (int it = 0; it < 10; it++) {
            if (nparts > 0) {
                step_parts(&s, w, g, act, dact, batch, nparts);
                continue;
            }
            for (int l = 0; l < s.n_layers; l++) {
                const mlp_layer *L = &s.layer[l];
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, batch, L->out, L->in, 1.0f,
                            act[l], L->in, w + L->w_off, L->out, 0.0f, act[l + 1], L->out);
            }
            for (int l = s.n_layers - 1; l >= 0; l--) {
                const mlp_layer *L = &s.layer[l];
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L->in, L->out, batch, 1.0f,
                            act[l], L->in, dact[l + 1], L->out, 0.0f, g + L->w_off, L->out);
                if (l > 0)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, L->in, L->out, 1.0f,
                                dact[l + 1], L->out, w + L->w_off, L->out, 0.0f, dact[l], L->in);
            }
        }
        double dt = (double)(cn_now_ns() - t0) * 1e-9 / 10.0;
        if (dt < best)
            best = dt;
        reps++;
    }
    return best;
}

typedef struct split_arg {
    const mlp_shape *s;
    float *w, *g;
    float *act[MLP_MAX_LAYERS + 1], *dact[MLP_MAX_LAYERS + 1];
    int batch, nparts;
    double seconds;
    double best; // out
} split_arg;

static void *split_main(void *p)
{
    split_arg *a = p;
    a->best = time_step(a->s, a->w, a->g, a->act, a->dact, a->batch, a->nparts, a->seconds);
    return NULL;
}

// split_time returns the time of a step split over `threads` concurrent
// single-threaded streams: on batch/threads rows each (nparts 0), or in the
// trainer's parts (nparts = threads). A step takes as long as the slowest.
static double split_time(const mlp_shape *s, int batch, int threads, int nparts, double seconds)
{
    split_arg args[64];
    pthread_t tids[64];
    int nt = threads > 64 ? 64 : threads;
    int rows = nparts > 0 ? batch : (batch + nt - 1) / nt;
    for (int t = 0; t < nt; t++) {
        args[t] = (split_arg){s,    rnd(s->n_params), rnd(s->n_params), {NULL}, {NULL},
                              rows, nparts,           seconds,          0};
        for (int l = 0; l <= s->n_layers; l++) {
            args[t].act[l] = rnd((size_t)rows * (size_t)s->widths[l]);
            args[t].dact[l] = rnd((size_t)rows * (size_t)s->widths[l]);
        }
        pthread_create(&tids[t], NULL, split_main, &args[t]);
    }
    double slowest = 0;
    for (int t = 0; t < nt; t++) {
        pthread_join(tids[t], NULL);
        if (args[t].best > slowest)
            slowest = args[t].best;
        for (int l = 0; l <= s->n_layers; l++) {
            free(args[t].act[l]);
            free(args[t].dact[l]);
        }
        free(args[t].w);
        free(args[t].g);
    }
    return slowest;
}

int main(int argc, char **argv)
{
    int threads = 1, batch = 64, inputs = 784, classes = 10, hidden[MLP_MAX_LAYERS], nh = 2;
    double seconds = 2.0;
    hidden[0] = 256;
    hidden[1] = 128;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--batch") == 0)
            batch = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--inputs") == 0)
            inputs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--classes") == 0)
            classes = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--hidden") == 0) {
            nh = 0;
            for (char *s = argv[i + 1]; *s && nh < MLP_MAX_LAYERS - 1;) {
                hidden[nh++] = (int)strtol(s, &s, 10);
                if (*s == ',')
                    s++;
            }
        } else {
            fprintf(stderr, "gemm_bound: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    mlp_shape s;
    char err[CN_ERRBUF_LEN];
    if (mlp_shape_init(&s, inputs, hidden, nh, classes, err, sizeof err) != CN_OK) {
        fprintf(stderr, "gemm_bound: %s\n", err);
        return 2;
    }
    mlp_set_threads(threads);
    float *w = rnd(s.n_params), *g = rnd(s.n_params);
    float *act[MLP_MAX_LAYERS + 1], *dact[MLP_MAX_LAYERS + 1];
    for (int l = 0; l <= s.n_layers; l++) {
        act[l] = rnd((size_t)batch * (size_t)s.widths[l]);
        dact[l] = rnd((size_t)batch * (size_t)s.widths[l]);
    }
    double flops = 0.0;
    for (int l = 0; l < s.n_layers; l++) {
        double mnk = 2.0 * batch * s.layer[l].in * s.layer[l].out;
        flops += mnk * (l == 0 ? 2 : 3);
    }
    double best = time_step(&s, w, g, act, dact, batch, 0, seconds);
    const char *way = "blas";
    if (threads > 1) {
        mlp_set_threads(1);
        double rows = split_time(&s, batch, threads, 0, seconds);
        double parts = split_time(&s, batch, threads, threads, seconds);
        if (rows < best) {
            best = rows;
            way = "rows";
        }
        if (parts < best) {
            best = parts;
            way = "parts";
        }
    }
    printf("gemm_bound: threads=%d batch=%d samples_per_s=%.0f gflops=%.1f split=%s\n", threads,
           batch, batch / best, flops / best * 1e-9, way);
    for (int l = 0; l <= s.n_layers; l++) {
        free(act[l]);
        free(dact[l]);
    }
    free(w);
    free(g);
    return 0;
}
