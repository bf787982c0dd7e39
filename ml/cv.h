// cv.h: stratified k-fold cross-validation of random forests.
//
// Fold assignment follows scikit-learn's StratifiedKFold: rows are spread
// so each fold holds each class in proportion (per-fold class counts differ
// by at most one from n_c / k). Unshuffled, each class's rows go to folds
// in file order (the first rows of a class to fold 0); shuffled, the rows of
// each class are assigned at random from a seed. The assignment depends only
// on (labels, k, shuffle, seed), so any process can compute fold f of a
// trial on its own: that is the unit of work a distributed worker runs.
#ifndef CANOPY_CV_H
#define CANOPY_CV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cn_err.h"
#include "ml/ds.h"
#include "ml/rf.h"

// cv_assign_folds writes the test fold (0..k-1) of each of the n rows into
// fold_of (n entries). y holds class indices in [0, n_classes).
// Errors: CN_EINVAL (k < 2 or k > n), CN_ERANGE (a label outside
// [0, n_classes)), CN_ENOMEM. A class with fewer than k rows is allowed; it
// is simply absent from some folds.
cn_err cv_assign_folds(const int32_t *y, size_t n, int n_classes, int k, bool shuffle,
                       uint64_t seed, int *fold_of);

// cv_fold_indices returns the train and test rows of fold f (0 <= f < k),
// each ascending, in new arrays *train (n - n_test entries) and *test that
// the caller frees. Errors: as cv_assign_folds, plus CN_ERANGE (f outside
// [0, k)); nothing is allocated then.
cn_err cv_fold_indices(const int32_t *y, size_t n, int n_classes, int k, int f, bool shuffle,
                       uint64_t seed, size_t **train, size_t *n_train, size_t **test,
                       size_t *n_test);

// One fold's result.
typedef struct cv_fold_result {
    double accuracy;
    double balanced_accuracy;
    double macro_f1;
    double fit_seconds;     // wall time of fitting, including predicting the test rows
                            // (rf_forest_fit_predict does both tree by tree); in cv_run,
                            // from taking the fold's first tree to finishing its last
    double predict_seconds; // wall time of scoring after the fit (metrics only; the
                            // predictions themselves are counted in fit_seconds)
    size_t n_train, n_test;
    uint64_t *confusion; // (n_classes, n_classes) rows = true class; owned by the result
} cv_fold_result;

// cv_result holds all folds and their summary. Free with cv_result_free.
typedef struct cv_result {
    int k;
    int n_classes;
    cv_fold_result *folds;              // (k)
    double mean_accuracy, std_accuracy; // std: population std over folds (numpy's default)
    double mean_balanced_accuracy, mean_macro_f1;
    double wall_seconds; // whole run
} cv_result;

// cv_eval_fold fits a forest with p on the train rows of fold f and scores
// it on the test rows, filling *r (r->confusion is allocated). This is the
// (trial, fold) unit. Errors: those of cv_fold_indices and rf_forest_fit,
// with err set.
cn_err cv_eval_fold(const rf_params *p, const ds_dataset *d, int k, int f, bool shuffle,
                    uint64_t seed, cv_fold_result *r, char *err, size_t errlen);

// cv_run runs all k folds as one job on p->threads threads
// (rf_forest_fit_predict_folds; each fold's scores equal cv_eval_fold's)
// and returns the results in *out. The folds' fit_seconds overlap, so they
// may add up to more than wall_seconds. d must be labelled.
// Errors: as cv_eval_fold, plus CN_EINVAL for an unlabelled data set.
cn_err cv_run(const rf_params *p, const ds_dataset *d, int k, bool shuffle, uint64_t seed,
              cv_result **out, char *err, size_t errlen);

// cv_result_free frees r. Accepts NULL.
void cv_result_free(cv_result *r);

#endif
