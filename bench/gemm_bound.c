// gemm_bound.c: the GEMM-only throughput bound of one MLP training step.
//
// Times just the cblas_sgemm calls that mlp_grad makes for one minibatch
// (forward Z = A W for every layer; backward dW = A^T dZ for every layer and
// dA = dZ W^T for all but the first), with the same shapes and transposes,
// and converts the best time per step into samples per second. No bias,
// activation, loss or optimizer work is included, so a real training step
// can only approach this number.
//
// usage: gemm_bound [--threads N] [--batch B] [--hidden 256,128] [--inputs 784]
//                   [--classes 10] [--seconds S]
// prints: gemm_bound: threads=N batch=B samples_per_s=X gflops=G
#include <cblas.h>
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
    double best = 1e30;
    uint64_t start = cn_now_ns();
    int reps = 0;
    while (reps < 20 || (double)(cn_now_ns() - start) * 1e-9 < seconds) {
        uint64_t t0 = cn_now_ns();
        for (int it = 0; it < 10; it++) {
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
    printf("gemm_bound: threads=%d batch=%d samples_per_s=%.0f gflops=%.1f\n", threads, batch,
           batch / best, flops / best * 1e-9);
    for (int l = 0; l <= s.n_layers; l++) {
        free(act[l]);
        free(dact[l]);
    }
    free(w);
    free(g);
    return 0;
}
