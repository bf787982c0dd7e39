// mlp.h: a multilayer perceptron (affine + ReLU hidden layers, softmax
// cross-entropy output) whose parameters are ONE flat float vector.
//
// The flat vector is the unit the rest of canopy moves around: parameter
// servers split it into contiguous key ranges, workers pull it and push a
// gradient of the same length and layout, federated clients send deltas of
// it, and checkpoints store it. Its layout is fixed by the layer widths:
//
//   for layer l = 0 .. n_layers-1 (in = widths[l], out = widths[l+1]):
//     W_l at layer[l].w_off: (in, out) row-major, so Y = X W_l + b_l
//     b_l at layer[l].b_off = w_off + in*out: (out)
//   n_params = sum over layers of in*out + out
//
// Layers are stored back to back (W0 b0 W1 b1 ...), so a balanced key-range
// split cuts at most a few layers in two; every update is element-wise, so
// that is harmless.
//
// Forward and backward run on OpenBLAS's cblas_sgemm (row-major); a naive
// loop kernel with the same contract is kept beside it for gradient checks.
// All scratch memory lives in a workspace sized once for a maximum batch, so
// a training step allocates nothing.
#ifndef CANOPY_MLP_H
#define CANOPY_MLP_H

#include <stddef.h>
#include <stdint.h>

#include "common/cn_buf.h"
#include "common/cn_err.h"
#include "ml/ds.h"
#include "ml/optim.h"

// MLP_MAX_LAYERS bounds the number of affine layers (hidden layers + 1).
#define MLP_MAX_LAYERS 16

// mlp_layer is the position of one affine layer in the flat vector.
typedef struct mlp_layer {
    int in, out;  // widths
    size_t w_off; // offset of W: (in, out) row-major
    size_t b_off; // offset of b: (out)
} mlp_layer;

// mlp_shape is the layer map of a network. Plain data (copy freely); it
// holds no parameters, so the same shape describes the model on a worker, a
// slice on a shard, and a gradient.
typedef struct mlp_shape {
    int n_layers;                    // affine layers = hidden layers + 1
    int widths[MLP_MAX_LAYERS + 1];  // widths[0] = inputs, widths[n_layers] = classes
    mlp_layer layer[MLP_MAX_LAYERS]; //
    size_t n_params;                 // length of the flat vector
} mlp_shape;

// mlp_shape_init fills s for n_inputs -> hidden[0..n_hidden) -> n_classes.
// Errors: CN_EINVAL (a width < 1, n_classes < 2, or more than
// MLP_MAX_LAYERS - 1 hidden layers) with err saying which.
cn_err mlp_shape_init(mlp_shape *s, int n_inputs, const int *hidden, int n_hidden, int n_classes,
                      char *err, size_t errlen);

// mlp_shape_format writes "784-256-128-10" into out (size n).
void mlp_shape_format(const mlp_shape *s, char *out, size_t n);

// mlp_init_params writes He-initialised weights (normal, std sqrt(2 / in))
// and zero biases into params (n_params floats), deterministically from seed.
void mlp_init_params(const mlp_shape *s, float *params, uint64_t seed);

// mlp_set_threads sets the number of BLAS threads for the whole process
// (openblas_set_num_threads). Call it once at start-up, before any training;
// it is the one process-wide setting in ml/. n < 1 is treated as 1.
void mlp_set_threads(int n);

typedef enum {
    MLP_KERNEL_BLAS,  // cblas_sgemm (default)
    MLP_KERNEL_NAIVE, // plain loops with double accumulation: the reference
} mlp_kernel;

// mlp_ws is the scratch memory of forward and backward passes for batches of
// up to max_batch rows: activations, their gradients and a gather buffer.
// Thread rule: one thread at a time per workspace; use one per thread.
typedef struct mlp_ws mlp_ws;

// mlp_ws_new allocates a workspace for s and batches up to max_batch (>= 1)
// rows, using the BLAS kernel. Returns NULL on OOM. s is copied.
mlp_ws *mlp_ws_new(const mlp_shape *s, int max_batch);
// mlp_ws_free frees ws. Accepts NULL.
void mlp_ws_free(mlp_ws *ws);
// mlp_ws_set_kernel selects the kernel used by later calls with ws.
void mlp_ws_set_kernel(mlp_ws *ws, mlp_kernel k);
// mlp_ws_max_batch returns the batch capacity.
int mlp_ws_max_batch(const mlp_ws *ws);

// mlp_ws_gather copies rows idx[0..batch) of d's features into ws's input
// buffer and returns it ((batch, n_inputs) row-major), ready to pass as x.
// batch <= max_batch and d->n_features == widths[0] (CN_ASSERT).
const float *mlp_ws_gather(mlp_ws *ws, const ds_dataset *d, const size_t *idx, int batch);

// mlp_forward runs x ((batch, widths[0]) row-major) through the network with
// params and returns the logits ((batch, n_classes) row-major, owned by ws,
// valid until the next call). If y is not NULL (batch class indices), *loss
// receives the mean softmax cross-entropy. batch <= max_batch (CN_ASSERT).
const float *mlp_forward(const mlp_shape *s, const float *params, const float *x, const int32_t *y,
                         int batch, mlp_ws *ws, float *loss);

// mlp_grad computes the mean cross-entropy over the batch into *loss and its
// gradient with respect to params into grad (n_params floats, same layout,
// fully overwritten). The input gradient of the first layer is not computed.
// x, y, params and grad are borrowed; grad must not alias params. Labels
// must be in [0, n_classes) (CN_ASSERT). Allocates nothing.
void mlp_grad(const mlp_shape *s, const float *params, const float *x, const int32_t *y, int batch,
              mlp_ws *ws, float *grad, float *loss);

// --- multi-threaded training (mlp_train.c) ---
//
// mlp_trainer computes the gradient of a minibatch, and optionally applies an
// optimizer step, on T threads of its own (the caller's thread is one of
// them; T - 1 pthreads are started once, in mlp_trainer_new, and wait between
// calls by spinning briefly and then sleeping on a futex). One call:
//   0. each thread takes a part of the first layer's inputs (about in / T
//      columns), gathers those columns of the batch's rows (if asked) and
//      multiplies them by the same rows of W_0;
//   1. after a barrier, each thread takes a contiguous block of the batch's
//      rows, sums the partial products for them and runs the rest of the
//      forward pass, softmax cross-entropy and the backward chain dZ_l;
//   2. after another, each thread computes its share of every layer's
//      weight rows dW_l[a:b) = A_{l-1}[:, a:b)^T dZ_l and bias columns over
//      the whole batch (for W_0 the rows it read in step 0), straight into
//      the flat gradient (no per-thread copies, no reduction; a step that
//      returns no gradient uses a small buffer per thread instead), and, for
//      a step, applies the optimizer to exactly those ranges
//      (optim_step_part) while they are in cache.
// Every gradient element is therefore one sum over the whole batch, as in
// mlp_grad; results differ from mlp_grad only by GEMM blocking and the
// split of the first layer's sums over inputs (float rounding), and are
// deterministic for a given thread count.
// BLAS must run single-threaded in each thread: call mlp_set_threads(1)
// before using a trainer with T > 1.
// Thread rule: one call at a time per trainer.
typedef struct mlp_trainer mlp_trainer;

// mlp_batch names one minibatch of n rows: either x ((n, widths[0])
// row-major) with labels y, or, when x is NULL, rows idx[0..n) of the
// labelled data set d, gathered by the worker threads (labels d->y[idx[i]]).
typedef struct mlp_batch {
    const float *x;
    const int32_t *y;
    const ds_dataset *d;
    const size_t *idx;
    int n;
} mlp_batch;

// mlp_trainer_new makes a trainer for s, batches up to max_batch (>= 1)
// rows and threads (>= 1) threads. Returns NULL on OOM, bad arguments or if
// a thread cannot be started. s is copied.
mlp_trainer *mlp_trainer_new(const mlp_shape *s, int max_batch, int threads);
// mlp_trainer_free stops and joins the threads and frees tr. Accepts NULL.
void mlp_trainer_free(mlp_trainer *tr);
int mlp_trainer_threads(const mlp_trainer *tr);
int mlp_trainer_max_batch(const mlp_trainer *tr);
// mlp_trainer_set_kernel selects the GEMM kernel (MLP_KERNEL_BLAS default).
void mlp_trainer_set_kernel(mlp_trainer *tr, mlp_kernel k);
// mlp_trainer_set_idle_spin sets how long (ns) the worker threads spin for
// the next call before they sleep (MLP_IDLE_SPIN_NS by default). A caller
// that calls back to back, like a training loop on local data, should set
// MLP_LOOP_SPIN_NS: waking a sleeping thread can cost more than half a step.
// A caller that waits between calls (for the network, say) keeps the
// default, so the idle threads leave the cores to other processes.
#define MLP_IDLE_SPIN_NS 150000
#define MLP_LOOP_SPIN_NS 2000000
void mlp_trainer_set_idle_spin(mlp_trainer *tr, uint64_t ns);

// mlp_trainer_grad is mlp_grad on tr's threads: the batch-mean cross-entropy
// into *loss (if not NULL) and its gradient into grad (n_params, fully
// overwritten, must not alias params). 1 <= b->n <= max_batch and labels in
// [0, n_classes) (CN_ASSERT). Allocates nothing.
void mlp_trainer_grad(mlp_trainer *tr, const float *params, const mlp_batch *b, float *grad,
                      float *loss);

// mlp_trainer_step computes the gradient of the batch as mlp_trainer_grad
// and applies optimizer step t (optim_step's meaning) to params with st,
// whose slice must be the whole vector (n == n_params); st's step count is
// incremented. If grad is not NULL the gradient is also written there.
// Equal to mlp_trainer_grad followed by optim_step, bit for bit.
void mlp_trainer_step(mlp_trainer *tr, float *params, const mlp_batch *b, const optim_cfg *cfg,
                      optim_state *st, uint64_t t, float *grad, float *loss);

// mlp_predict writes the arg-max class of each row of d into pred (n_rows),
// in batches of ws's max_batch.
void mlp_predict(const mlp_shape *s, const float *params, const ds_dataset *d, mlp_ws *ws,
                 int32_t *pred);

// mlp_eval is the result of mlp_evaluate. Arrays are owned by the struct
// (mlp_eval_fini).
typedef struct mlp_eval {
    double loss;            // mean cross-entropy
    double accuracy;        // fraction correct
    int n_classes;          //
    uint64_t *confusion;    // (n_classes, n_classes) rows = true, cols = predicted
    double *class_accuracy; // (n_classes) recall per class; NaN if a class has no rows
} mlp_eval;

// mlp_evaluate computes loss, accuracy, per-class accuracy and the confusion
// matrix of the model on the labelled data set d. d->n_features must equal
// widths[0] and its labels must be below n_classes, else CN_EINVAL with err.
// Errors: CN_EINVAL, CN_ENOMEM. On error out holds nothing to free.
cn_err mlp_evaluate(const mlp_shape *s, const float *params, const ds_dataset *d, mlp_ws *ws,
                    mlp_eval *out, char *err, size_t errlen);
void mlp_eval_fini(mlp_eval *e);

// --- model files (mlp_io.c) ---
//
// Format, version 1, little-endian:
//   "CNMLP\0\0\1" (8 bytes: magic with the version in the last byte)
//   u32 n_layers, u32 widths[n_layers + 1], u64 n_params,
//   f32 params[n_params], u32 CRC-32 (zlib) of every preceding byte.
#define MLP_FILE_VERSION 1

// mlp_model_encode appends the model record to out. CN_OK or CN_ENOMEM.
cn_err mlp_model_encode(const mlp_shape *s, const float *params, cn_buf *out);

// mlp_model_decode parses a record into *s and a new *params (n_params
// floats, owned by the caller: free()). origin names the source in messages.
// Errors: CN_EFORMAT (bad magic, truncated, bad widths, length mismatch),
// CN_EVERSION (a newer version), CN_EIO (checksum mismatch: corrupted),
// CN_ENOMEM; err says which, e.g. "model.cnm: checksum mismatch (file is
// corrupted)".
cn_err mlp_model_decode(const void *data, size_t len, const char *origin, mlp_shape *s,
                        float **params, char *err, size_t errlen);

// mlp_model_save writes the record to path atomically (cn_file_write_atomic).
// Errors: CN_EIO, CN_ENOMEM with err set.
cn_err mlp_model_save(const char *path, const mlp_shape *s, const float *params, char *err,
                      size_t errlen);

// mlp_model_load reads path (gzip allowed) and decodes it. Errors as for
// cn_file_read_all and mlp_model_decode.
cn_err mlp_model_load(const char *path, mlp_shape *s, float **params, char *err, size_t errlen);

#endif
