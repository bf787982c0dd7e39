// train_spec.c: parsing and validation of training job files (see
// train_spec.h).
#include "scheduler/train_spec.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/cn_config.h"
#include "ml/mlp_fit.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/"
#define MAX_EVALS 4096

// ------------------------------------------------------------ spec

// name_ok: job names become directory names and ids.
static bool name_ok(const char *s)
{
    if (!*s)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return false;
    return true;
}

static void set_defaults(train_spec *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "train");
    snprintf(s->train_images, sizeof s->train_images, FMNIST "train-images-idx3-ubyte.gz");
    snprintf(s->train_labels, sizeof s->train_labels, FMNIST "train-labels-idx1-ubyte.gz");
    snprintf(s->test_images, sizeof s->test_images, FMNIST "t10k-images-idx3-ubyte.gz");
    snprintf(s->test_labels, sizeof s->test_labels, FMNIST "t10k-labels-idx1-ubyte.gz");
    s->hidden[0] = 256;
    s->hidden[1] = 128;
    s->n_hidden = 2;
    optim_cfg_default(&s->optim, OPTIM_SGD);
    s->optim.lr = 0.05f;
    s->batch = 64;
    s->epochs = 5;
    s->mode = PS_BSP;
    s->staleness = 2;
    s->shards = 1;
    s->workers = 1;
    s->partition = PART_IID;
    s->alpha = 0.5;
    s->k_labels = 2;
    s->seed = 1;
    s->eval_every_s = 2.0;
    s->checkpoint_every = 100;
    s->report_every_s = 0.5;
    s->admission_timeout_s = 60;
}

cn_err train_spec_parse(const char *json, const char *origin, train_spec *s, char *err,
                        size_t errlen)
{
    set_defaults(s);
    cJSON *root = cJSON_Parse(json);
    if (root == NULL || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return cn_errf(err, errlen, CN_EFORMAT, "%s: not a JSON object", origin);
    }
    char name[CN_OPT_STRLEN], paths[4][CN_OPT_STRLEN], mode[CN_OPT_STRLEN] = "",
                                                       part[CN_OPT_STRLEN] = "";
    snprintf(name, sizeof name, "%s", s->name);
    char *dst[4] = {s->train_images, s->train_labels, s->test_images, s->test_labels};
    for (int i = 0; i < 4; i++)
        snprintf(paths[i], sizeof paths[i], "%s", dst[i]);
    int64_t train_rows = 0, test_rows = 0, batch = s->batch, epochs = s->epochs,
            staleness = s->staleness, shards = s->shards, workers = s->workers,
            k_labels = s->k_labels, seed = (int64_t)s->seed, ckpt = s->checkpoint_every,
            threads = 0;
    const cJSON *hidden = NULL;
    optim_keys ok;
    optim_keys_init(&ok);
    cn_opt opts[32 + OPTIM_KEYS_N] = {
        {"name", CN_OPT_STRING, name, "job name", 0, 0, NULL},
        {"train_images", CN_OPT_STRING, paths[0], "IDX training images", 0, 0, NULL},
        {"train_labels", CN_OPT_STRING, paths[1], "IDX training labels", 0, 0, NULL},
        {"test_images", CN_OPT_STRING, paths[2], "IDX test images", 0, 0, NULL},
        {"test_labels", CN_OPT_STRING, paths[3], "IDX test labels", 0, 0, NULL},
        {"train_rows", CN_OPT_INT, &train_rows, "training rows (0 = all)", 0, 1e9, NULL},
        {"test_rows", CN_OPT_INT, &test_rows, "test rows (0 = all)", 0, 1e9, NULL},
        {"hidden", CN_OPT_ARRAY, &hidden, "hidden widths", 0, TRAIN_MAX_HIDDEN, NULL},
        {"batch", CN_OPT_INT, &batch, "batch per worker", 1, 65536, NULL},
        {"epochs", CN_OPT_INT, &epochs, "epochs", 1, 100000, NULL},
        {"consistency", CN_OPT_CHOICE, mode, "consistency", 0, 0, "bsp|asp|ssp"},
        {"staleness", CN_OPT_INT, &staleness, "SSP bound", 0, 1000, NULL},
        {"shards", CN_OPT_INT, &shards, "ps shards", 1, 64, NULL},
        {"workers", CN_OPT_INT, &workers, "workers", 1, 64, NULL},
        {"partition", CN_OPT_CHOICE, part, "data partition", 0, 0,
         "iid|dirichlet|klabels|quantity|contiguous"},
        {"alpha", CN_OPT_DOUBLE, &s->alpha, "Dirichlet alpha", 1e-6, 1e6, NULL},
        {"k_labels", CN_OPT_INT, &k_labels, "labels per worker", 1, 1000, NULL},
        {"seed", CN_OPT_INT, &seed, "seed", 0, 9007199254740992.0, NULL},
        {"eval_every_s", CN_OPT_DOUBLE, &s->eval_every_s, "evaluation interval", 0.05, 3600, NULL},
        {"checkpoint_every", CN_OPT_INT, &ckpt, "updates between checkpoints", 0, 1e9, NULL},
        {"threads", CN_OPT_INT, &threads, "threads per worker", 0, 1024, NULL},
        {"target_accuracy", CN_OPT_DOUBLE, &s->target_accuracy, "time-to-accuracy goal", 0, 1,
         NULL},
        {"report_every_s", CN_OPT_DOUBLE, &s->report_every_s, "worker report interval", 0.05, 60,
         NULL},
        {"admission_timeout_s", CN_OPT_DOUBLE, &s->admission_timeout_s,
         "wait for every rank's worker (bsp, ssp)", 1, 86400, NULL},
    };
    size_t n = 0;
    while (opts[n].name)
        n++;
    optim_keys_opts(&ok, &opts[n]);
    cn_err e = cn_config_apply_json(opts, root, origin, err, errlen);
    if (e == CN_OK && hidden)
        e = mlp_hidden_from_json(hidden, s->hidden, TRAIN_MAX_HIDDEN, &s->n_hidden, origin, err,
                                 errlen);
    if (e == CN_OK && (strlen(name) >= sizeof s->name || !name_ok(name)))
        e = cn_errf(err, errlen, CN_EINVAL,
                    "%s: key \"name\": \"%s\": 1 to %zu letters, digits, '-', '_' and '.'", origin,
                    name, sizeof s->name - 1);
    if (e == CN_OK)
        e = optim_keys_apply(&ok, &s->optim, origin, err, errlen);
    cJSON_Delete(root);
    if (e != CN_OK)
        return e;
    snprintf(s->name, sizeof s->name, "%s", name);
    for (int i = 0; i < 4; i++)
        snprintf(dst[i], TRAIN_PATH_LEN, "%.1023s", paths[i]);
    if (mode[0])
        ps_mode_parse(mode, &s->mode);
    if (part[0])
        part_kind_parse(part, &s->partition);
    s->train_rows = (uint64_t)train_rows;
    s->test_rows = (uint64_t)test_rows;
    s->batch = (uint32_t)batch;
    s->epochs = (uint32_t)epochs;
    s->staleness = (uint32_t)staleness;
    s->shards = (uint32_t)shards;
    s->workers = (uint32_t)workers;
    s->k_labels = (uint32_t)k_labels;
    s->seed = (uint64_t)seed;
    s->checkpoint_every = (uint32_t)ckpt;
    s->threads = (uint32_t)threads;
    if (s->optim.schedule == OPTIM_SCHED_COSINE)
        s->optim.total_steps = 0; // filled in when the step count is known
    return CN_OK;
}
