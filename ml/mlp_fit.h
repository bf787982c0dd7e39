// mlp_fit.h: one MLP trial of a hyper-parameter search, on one machine: the
// trial's hyper-parameters read from its JSON object, a validation split
// held out from the training set, and a fresh network trained for a number
// of epochs and scored on that split. The test set plays no part: a search
// chooses on validation accuracy, and the chosen configuration is then
// trained and tested as a training job.
#ifndef CANOPY_MLP_FIT_H
#define CANOPY_MLP_FIT_H

#include <stddef.h>
#include <stdint.h>

#include "common/cn_err.h"
#include "ml/ds.h"
#include "ml/mlp.h"
#include "ml/optim.h"

struct cJSON;

// mlp_hparams: what a trial may set. Plain data.
typedef struct mlp_hparams {
    int hidden[MLP_MAX_LAYERS - 1];
    int n_hidden;
    int batch;     // rows per step
    int epochs;    // passes over the training rows
    uint64_t seed; // weights and batch order
    optim_cfg optim;
} mlp_hparams;

// mlp_hparams_default: hidden [256, 128], batch 64, 5 epochs, seed 1, sgd
// with lr 0.05 (the training job's defaults).
void mlp_hparams_default(mlp_hparams *h);

// mlp_hidden_from_json reads a JSON list of hidden widths (each 1..65536)
// into hidden[0..*n) (at most max). origin prefixes the message.
// Errors: CN_EINVAL naming the element ("job.json: key \"hidden\": element 1
// is not a width in 1..65536").
cn_err mlp_hidden_from_json(const struct cJSON *list, int *hidden, int max, int *n,
                            const char *origin, char *err, size_t errlen);

// mlp_hparams_from_json applies the keys of obj to h: hidden (a list of
// widths), batch, epochs, seed and the optimizer keys of a training job
// (optimizer, lr, momentum, ...). Errors: CN_EINVAL with err naming the key
// (origin first), e.g. "trial 3: key \"lr\": -1 is out of range".
cn_err mlp_hparams_from_json(mlp_hparams *h, const struct cJSON *obj, const char *origin, char *err,
                             size_t errlen);

// mlp_holdout splits d's rows, shuffled by seed: the validation rows
// (frac of them, at least one) are copied into *val, and the indices of the
// others are returned in *train_rows (*n_train of them, malloc'd), so the
// training rows are not copied. Errors: CN_EINVAL (fewer than two rows,
// frac outside (0, 1)), CN_ENOMEM.
cn_err mlp_holdout(const ds_dataset *d, double frac, uint64_t seed, size_t **train_rows,
                   size_t *n_train, ds_dataset **val, char *err, size_t errlen);

typedef struct mlp_fit_result {
    double accuracy, balanced_accuracy, macro_f1, loss; // on the validation rows
    double train_loss;                                  // mean over the last epoch
    double train_seconds;
} mlp_fit_result;

// mlp_fit_eval trains a fresh network (h's shape between d's features and
// n_classes) for `epochs` epochs on rows train_rows[0..n_train) of d with
// `threads` threads and scores it on val. BLAS must run single-threaded
// (mlp_set_threads(1)) when threads > 1. Errors: CN_EINVAL (a shape or
// optimizer rule broken, no training row, val's features differ),
// CN_ENOMEM.
cn_err mlp_fit_eval(const mlp_hparams *h, int epochs, int n_classes, const ds_dataset *d,
                    const size_t *train_rows, size_t n_train, const ds_dataset *val, int threads,
                    mlp_fit_result *out, char *err, size_t errlen);

#endif
