// wk_fold.h: the executor of a sweep's work item: fit a random forest with
// one trial's parameters on the training rows of one cross-validation fold
// and score it on the held-out rows.
//
// The task arrives as the sweep kind's JSON document; wk_fold_task_read
// turns it into a plain struct (unknown or missing keys are errors) and
// wk_fold_run does the work on a data set the caller provides.
#ifndef CANOPY_WK_FOLD_H
#define CANOPY_WK_FOLD_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/cn_err.h"
#include "ml/ds.h"
#include "ml/rf.h"

typedef struct wk_fold_task {
    char sweep_id[160];
    uint32_t trial, fold, folds;
    uint64_t cv_seed;
    bool shuffle;
    rf_params params;     // the trial's forest parameters
    char data_sha256[65]; // the data set, by hash
    char label[128];      // label column
    char drop[256];       // comma-separated columns to drop
} wk_fold_task;

// wk_fold_task_read reads a task document. An optional "trees" (ASHA's
// tree budget: a low rung's smaller forest) replaces params.n_estimators. Errors: CN_EINVAL with
// err naming the key ("task: key \"folds\": ...").
cn_err wk_fold_task_read(const cJSON *doc, wk_fold_task *out, char *err, size_t errlen);

// wk_fold_run fits and scores the fold of t on d with `threads` threads and
// returns the result document in *result (caller frees): accuracy,
// balanced_accuracy, macro_f1, fit_seconds, predict_seconds, n_train,
// n_test, trees (the forest's), confusion. Errors: those of cv_eval_fold.
cn_err wk_fold_run(const wk_fold_task *t, const ds_dataset *d, int threads, cJSON **result,
                   char *err, size_t errlen);

#endif
