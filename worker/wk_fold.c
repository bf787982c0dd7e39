// wk_fold.c: the sweep fold executor (see wk_fold.h).
#include "worker/wk_fold.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_config.h"
#include "ml/cv.h"

cn_err wk_fold_task_read(const cJSON *doc, wk_fold_task *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    char sweep_id[CN_OPT_STRLEN] = "", sha[CN_OPT_STRLEN] = "", label[CN_OPT_STRLEN] = "",
         drop[CN_OPT_STRLEN] = "";
    int64_t trial = -1, fold = -1, folds = 0, cv_seed = 0, attempt = 0, trees = 0;
    double data_size = 0;
    bool shuffle = true;
    const cJSON *params = NULL;
    cn_opt opts[] = {
        {"sweep_id", CN_OPT_STRING, sweep_id, "the sweep", 0, 0, NULL},
        {"trial", CN_OPT_INT, &trial, "trial index", 0, 1e9, NULL},
        {"fold", CN_OPT_INT, &fold, "fold index", 0, 1000, NULL},
        {"folds", CN_OPT_INT, &folds, "fold count", 2, 1000, NULL},
        {"cv_seed", CN_OPT_INT, &cv_seed, "fold split seed", 0, 9.007199254740992e15, NULL},
        {"shuffle", CN_OPT_BOOL, &shuffle, "shuffled folds", 0, 0, NULL},
        {"params", CN_OPT_OBJECT, &params, "forest parameters", 0, 0, NULL},
        {"trees", CN_OPT_INT, &trees, "trees in place of params' n_estimators", 1, 1e6, NULL},
        {"data_sha256", CN_OPT_STRING, sha, "data set hash", 0, 0, NULL},
        {"data_size", CN_OPT_DOUBLE, &data_size, "data set bytes", 0, 0, NULL},
        {"label", CN_OPT_STRING, label, "label column", 0, 0, NULL},
        {"drop", CN_OPT_STRING, drop, "columns dropped", 0, 0, NULL},
        {"attempt", CN_OPT_INT, &attempt, "attempt", 0, 1e9, NULL},
        CN_OPT_END,
    };
    cn_err e = cn_config_apply_json(opts, doc, "sweep task", err, errlen);
    if (e != CN_OK)
        return e;
    if (trial < 0 || fold < 0 || folds == 0 || params == NULL || !sha[0] || !label[0])
        return cn_errf(err, errlen, CN_EINVAL,
                       "sweep task: trial, fold, folds, params, data_sha256 and label are "
                       "required");
    if (fold >= folds)
        return cn_errf(err, errlen, CN_EINVAL, "sweep task: fold %lld of %lld folds",
                       (long long)fold, (long long)folds);
    t->params = rf_params_default();
    e = rf_params_from_json(&t->params, params, err, errlen);
    if (e != CN_OK)
        return e;
    if (trees > 0)
        t->params.n_estimators = (int)trees;
    snprintf(t->sweep_id, sizeof t->sweep_id, "%s", sweep_id);
    snprintf(t->data_sha256, sizeof t->data_sha256, "%s", sha);
    snprintf(t->label, sizeof t->label, "%s", label);
    snprintf(t->drop, sizeof t->drop, "%s", drop);
    t->trial = (uint32_t)trial;
    t->fold = (uint32_t)fold;
    t->folds = (uint32_t)folds;
    t->cv_seed = (uint64_t)cv_seed;
    t->shuffle = shuffle;
    return CN_OK;
}

cn_err wk_fold_run(const wk_fold_task *t, const ds_dataset *d, int threads, cJSON **result,
                   char *err, size_t errlen)
{
    *result = NULL;
    rf_params p = t->params;
    p.threads = threads; // the worker's slot decides, whatever the trial says
    cv_fold_result fr;
    memset(&fr, 0, sizeof fr);
    cn_err e =
        cv_eval_fold(&p, d, (int)t->folds, (int)t->fold, t->shuffle, t->cv_seed, &fr, err, errlen);
    if (e != CN_OK)
        return e;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "accuracy", fr.accuracy);
    cJSON_AddNumberToObject(o, "balanced_accuracy", fr.balanced_accuracy);
    cJSON_AddNumberToObject(o, "macro_f1", fr.macro_f1);
    cJSON_AddNumberToObject(o, "fit_seconds", fr.fit_seconds);
    cJSON_AddNumberToObject(o, "predict_seconds", fr.predict_seconds);
    cJSON_AddNumberToObject(o, "n_train", (double)fr.n_train);
    cJSON_AddNumberToObject(o, "n_test", (double)fr.n_test);
    cJSON_AddNumberToObject(o, "trees", p.n_estimators);
    cJSON *cm = cJSON_AddArrayToObject(o, "confusion");
    size_t cells = (size_t)d->n_classes * (size_t)d->n_classes;
    for (size_t i = 0; i < cells; i++)
        cJSON_AddItemToArray(cm, cJSON_CreateNumber((double)fr.confusion[i]));
    free(fr.confusion);
    *result = o;
    return CN_OK;
}
