// wk_mlp_trial.c: the MLP sweep unit executor (see wk_mlp_trial.h).
#include "worker/wk_mlp_trial.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_config.h"

bool wk_mlp_trial_is(const cJSON *task)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(task, "model");
    return cJSON_IsString(m) && strcmp(m->valuestring, "mlp") == 0;
}

cn_err wk_mlp_task_read(const cJSON *doc, wk_mlp_task *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    char model[CN_OPT_STRLEN] = "", sweep_id[CN_OPT_STRLEN] = "", images[CN_OPT_STRLEN] = "",
         labels[CN_OPT_STRLEN] = "";
    int64_t trial = -1, unit = -1, epochs = 0, rows = 0, split_seed = 0, attempt = 0;
    double validation = 0;
    const cJSON *params = NULL;
    cn_opt opts[] = {
        {"model", CN_OPT_CHOICE, model, "model", 0, 0, "mlp"},
        {"sweep_id", CN_OPT_STRING, sweep_id, "the sweep", 0, 0, NULL},
        {"trial", CN_OPT_INT, &trial, "trial index", 0, 1e9, NULL},
        {"unit", CN_OPT_INT, &unit, "unit index", 0, 1000, NULL},
        {"epochs", CN_OPT_INT, &epochs, "epochs (0 = the trial's)", 0, 100000, NULL},
        {"params", CN_OPT_OBJECT, &params, "trial parameters", 0, 0, NULL},
        {"train_images", CN_OPT_STRING, images, "training images hash", 0, 0, NULL},
        {"train_labels", CN_OPT_STRING, labels, "training labels hash", 0, 0, NULL},
        {"train_rows", CN_OPT_INT, &rows, "training rows (0 = all)", 0, 1e9, NULL},
        {"validation", CN_OPT_DOUBLE, &validation, "held-out fraction", 0.001, 0.9, NULL},
        {"split_seed", CN_OPT_INT, &split_seed, "split seed", 0, 9.007199254740992e15, NULL},
        {"attempt", CN_OPT_INT, &attempt, "attempt", 0, 1e9, NULL},
        CN_OPT_END,
    };
    cn_err e = cn_config_apply_json(opts, doc, "mlp task", err, errlen);
    if (e != CN_OK)
        return e;
    if (trial < 0 || unit < 0 || params == NULL || !images[0] || !labels[0] || validation == 0)
        return cn_errf(err, errlen, CN_EINVAL,
                       "mlp task: trial, unit, params, train_images, train_labels and validation "
                       "are required");
    mlp_hparams_default(&t->hp);
    if ((e = mlp_hparams_from_json(&t->hp, params, "mlp task: params", err, errlen)) != CN_OK)
        return e;
    snprintf(t->sweep_id, sizeof t->sweep_id, "%s", sweep_id);
    snprintf(t->train_images, sizeof t->train_images, "%s", images);
    snprintf(t->train_labels, sizeof t->train_labels, "%s", labels);
    t->trial = (uint32_t)trial;
    t->unit = (uint32_t)unit;
    t->epochs = (uint32_t)epochs;
    t->train_rows = (uint64_t)rows;
    t->validation = validation;
    t->split_seed = (uint64_t)split_seed;
    return CN_OK;
}

cn_err wk_mlp_trial_exec(const cJSON *task, wk_data *data, int threads, cJSON **result, char *err,
                         size_t errlen)
{
    *result = NULL;
    wk_mlp_task t;
    cn_err e = wk_mlp_task_read(task, &t, err, errlen);
    if (e != CN_OK)
        return e;
    const ds_dataset *d = NULL;
    double load_s = 0;
    e = wk_data_idx(data, t.train_images, t.train_labels, (size_t)t.train_rows, &d, &load_s, err,
                    errlen);
    if (e != CN_OK)
        return e;
    size_t *rows = NULL, n_train = 0;
    ds_dataset *val = NULL;
    mlp_fit_result r;
    int epochs = t.epochs ? (int)t.epochs : t.hp.epochs;
    e = mlp_holdout(d, t.validation, t.split_seed, &rows, &n_train, &val, err, errlen);
    if (e == CN_OK)
        e = mlp_fit_eval(&t.hp, epochs, d->n_classes, d, rows, n_train, val, threads, &r, err,
                         errlen);
    if (e == CN_OK) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "accuracy", r.accuracy);
        cJSON_AddNumberToObject(o, "balanced_accuracy", r.balanced_accuracy);
        cJSON_AddNumberToObject(o, "macro_f1", r.macro_f1);
        cJSON_AddNumberToObject(o, "loss", r.loss);
        cJSON_AddNumberToObject(o, "epochs", epochs);
        cJSON_AddNumberToObject(o, "train_loss", r.train_loss);
        cJSON_AddNumberToObject(o, "fit_seconds", r.train_seconds);
        cJSON_AddNumberToObject(o, "predict_seconds", 0);
        cJSON_AddNumberToObject(o, "n_train", (double)n_train);
        cJSON_AddNumberToObject(o, "n_validation", (double)val->n_rows);
        cJSON_AddNumberToObject(o, "data_load_seconds", load_s);
        *result = o;
    }
    ds_dataset_free(val);
    free(rows);
    wk_data_release(data, d);
    return e;
}
