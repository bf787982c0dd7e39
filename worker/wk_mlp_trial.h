// wk_mlp_trial.h: the executor of an MLP sweep's work item: train a fresh
// network with one trial's hyper-parameters on this worker, on the training
// set less a held-out validation split, and score it on that split
// (ml/mlp_fit.h). The item is a "sweep" item whose task says "model": "mlp";
// the scheduler's sweep kind writes it (scheduler/sched_sweep.c).
#ifndef CANOPY_WK_MLP_TRIAL_H
#define CANOPY_WK_MLP_TRIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/cn_err.h"
#include "ml/mlp_fit.h"
#include "worker/wk_data.h"

typedef struct wk_mlp_task {
    char sweep_id[160];
    uint32_t trial, unit;
    uint32_t epochs; // 0 = the trial's own (params "epochs")
    mlp_hparams hp;
    char train_images[65], train_labels[65]; // by hash
    uint64_t train_rows;                     // 0 = all
    double validation;                       // held-out fraction
    uint64_t split_seed;
} wk_mlp_task;

// wk_mlp_trial_is reports whether a sweep task is an MLP trial's.
bool wk_mlp_trial_is(const cJSON *task);

// wk_mlp_task_read reads a task document. Errors: CN_EINVAL with err naming
// the key ("mlp task: key \"epochs\": ...").
cn_err wk_mlp_task_read(const cJSON *doc, wk_mlp_task *out, char *err, size_t errlen);

// wk_mlp_trial_exec reads the task, takes the data from data (fetched from
// the scheduler and cached), trains with `threads` threads and returns the
// result document in *result (caller frees): accuracy, balanced_accuracy,
// macro_f1 and loss on the validation rows, epochs, train_loss,
// fit_seconds, predict_seconds (0), n_train, n_validation,
// data_load_seconds. Errors: those of wk_mlp_task_read, wk_data_idx,
// mlp_holdout and mlp_fit_eval.
cn_err wk_mlp_trial_exec(const cJSON *task, wk_data *data, int threads, cJSON **result, char *err,
                         size_t errlen);

#endif
