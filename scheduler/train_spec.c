// train_spec.c: parsing and validation of training job files (see
// train_spec.h).
#include "scheduler/train_spec.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/cn_config.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/"
#define MAX_EVALS 4096

// ------------------------------------------------------------ spec

static const char *const KEYS[] = {"name",
                                   "train_images",
                                   "train_labels",
                                   "test_images",
                                   "test_labels",
                                   "train_rows",
                                   "test_rows",
                                   "hidden",
                                   "optimizer",
                                   "lr",
                                   "momentum",
                                   "nesterov",
                                   "weight_decay",
                                   "schedule",
                                   "step_every",
                                   "gamma",
                                   "min_lr",
                                   "batch",
                                   "epochs",
                                   "consistency",
                                   "staleness",
                                   "shards",
                                   "workers",
                                   "partition",
                                   "alpha",
                                   "k_labels",
                                   "seed",
                                   "eval_every_s",
                                   "checkpoint_every",
                                   "threads",
                                   "target_accuracy",
                                   "report_every_s",
                                   "beta1",
                                   "beta2",
                                   "admission_timeout_s",
                                   NULL};

static cn_err get_str(const cJSON *o, const char *key, char *dst, size_t n, const char *origin,
                      char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (v == NULL)
        return CN_OK;
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= n)
        return cn_errf(err, errlen, CN_EINVAL, "%s: key \"%s\": expected a string (< %zu chars)",
                       origin, key, n);
    snprintf(dst, n, "%s", v->valuestring);
    return CN_OK;
}

static cn_err get_num(const cJSON *o, const char *key, double *dst, double min, double max,
                      bool integer, const char *origin, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (v == NULL)
        return CN_OK;
    if (!cJSON_IsNumber(v) || (integer && v->valuedouble != floor(v->valuedouble)) ||
        !(v->valuedouble >= min && v->valuedouble <= max))
        return cn_errf(err, errlen, CN_EINVAL, "%s: key \"%s\": %s is not allowed (%s in %g..%g)",
                       origin, key, cJSON_IsNumber(v) ? "the value" : "a non-number",
                       integer ? "an integer" : "a number", min, max);
    *dst = v->valuedouble;
    return CN_OK;
}

static cn_err get_choice(const cJSON *o, const char *key, char *dst, size_t n, const char *choices,
                         const char *origin, char *err, size_t errlen)
{
    char tmp[64] = "";
    cn_err e = get_str(o, key, tmp, sizeof tmp, origin, err, errlen);
    if (e != CN_OK || !tmp[0])
        return e;
    char list[256];
    snprintf(list, sizeof list, "|%s|", choices);
    char want[80];
    snprintf(want, sizeof want, "|%s|", tmp);
    if (strstr(list, want) == NULL)
        return cn_errf(err, errlen, CN_EINVAL, "%s: key \"%s\": \"%s\" is not one of %s", origin,
                       key, tmp, choices);
    snprintf(dst, n, "%s", tmp);
    return CN_OK;
}

cn_err train_spec_parse(const char *json, const char *origin, train_spec *s, char *err,
                        size_t errlen)
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

    cJSON *o = cJSON_Parse(json);
    if (o == NULL || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return cn_errf(err, errlen, CN_EFORMAT, "%s: not a JSON object", origin);
    }
    cn_err e = CN_OK;
    for (const cJSON *it = o->child; it; it = it->next) {
        int known = 0;
        for (int i = 0; KEYS[i]; i++)
            known |= strcmp(it->string, KEYS[i]) == 0;
        if (!known) {
            const char *best = cn_closest_name(KEYS, it->string);
            if (best)
                e = cn_errf(err, errlen, CN_EINVAL, "%s: unknown key \"%s\" (did you mean \"%s\"?)",
                            origin, it->string, best);
            else
                e = cn_errf(err, errlen, CN_EINVAL, "%s: unknown key \"%s\"", origin, it->string);
            goto out;
        }
    }
    double d;
    char ch[64];
#define NUM(key, min, max, integer, dst)                                                           \
    do {                                                                                           \
        d = NAN;                                                                                   \
        if ((e = get_num(o, key, &d, min, max, integer, origin, err, errlen)) != CN_OK)            \
            goto out;                                                                              \
        if (!isnan(d))                                                                             \
            dst = d;                                                                               \
    } while (0)
    if ((e = get_str(o, "name", s->name, sizeof s->name, origin, err, errlen)) != CN_OK ||
        (e = get_str(o, "train_images", s->train_images, sizeof s->train_images, origin, err,
                     errlen)) != CN_OK ||
        (e = get_str(o, "train_labels", s->train_labels, sizeof s->train_labels, origin, err,
                     errlen)) != CN_OK ||
        (e = get_str(o, "test_images", s->test_images, sizeof s->test_images, origin, err,
                     errlen)) != CN_OK ||
        (e = get_str(o, "test_labels", s->test_labels, sizeof s->test_labels, origin, err,
                     errlen)) != CN_OK)
        goto out;
    for (const char *p = s->name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.')) {
            e = cn_errf(err, errlen, CN_EINVAL,
                        "%s: key \"name\": \"%s\": only letters, digits, '-', '_' and '.'", origin,
                        s->name);
            goto out;
        }
    NUM("train_rows", 0, 1e9, true, s->train_rows);
    NUM("test_rows", 0, 1e9, true, s->test_rows);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "hidden");
    if (h) {
        int n = cJSON_IsArray(h) ? cJSON_GetArraySize(h) : -1;
        if (n < 0 || n > TRAIN_MAX_HIDDEN) {
            e = cn_errf(err, errlen, CN_EINVAL,
                        "%s: key \"hidden\": expected an array of at most %d widths", origin,
                        TRAIN_MAX_HIDDEN);
            goto out;
        }
        for (int i = 0; i < n; i++) {
            const cJSON *x = cJSON_GetArrayItem(h, i);
            if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) ||
                x->valuedouble < 1 || x->valuedouble > 65536) {
                e = cn_errf(err, errlen, CN_EINVAL,
                            "%s: key \"hidden\": element %d is not a width in 1..65536", origin, i);
                goto out;
            }
            s->hidden[i] = (int)x->valuedouble;
        }
        s->n_hidden = n;
    }
    ch[0] = 0;
    if ((e = get_choice(o, "optimizer", ch, sizeof ch, "sgd|momentum|adam|adamw", origin, err,
                        errlen)) != CN_OK)
        goto out;
    if (ch[0]) {
        optim_kind k;
        optim_kind_parse(ch, &k);
        optim_cfg_default(&s->optim, strcmp(ch, "adamw") == 0 ? OPTIM_ADAM : k);
        s->optim.decoupled_wd = strcmp(ch, "adamw") == 0;
    }
    d = NAN;
    NUM("lr", 1e-9, 100, false, s->optim.lr);
    NUM("momentum", 0, 0.999999, false, s->optim.momentum);
    NUM("weight_decay", 0, 10, false, s->optim.weight_decay);
    NUM("beta1", 0, 0.999999, false, s->optim.beta1);
    NUM("beta2", 0, 0.999999, false, s->optim.beta2);
    NUM("gamma", 1e-6, 1, false, s->optim.gamma);
    NUM("step_every", 1, 1e12, true, s->optim.step_every);
    NUM("min_lr", 0, 100, false, s->optim.min_lr);
    const cJSON *nv = cJSON_GetObjectItemCaseSensitive(o, "nesterov");
    if (nv) {
        if (!cJSON_IsBool(nv)) {
            e = cn_errf(err, errlen, CN_EINVAL, "%s: key \"nesterov\": expected true or false",
                        origin);
            goto out;
        }
        s->optim.nesterov = cJSON_IsTrue(nv);
    }
    ch[0] = 0;
    if ((e = get_choice(o, "schedule", ch, sizeof ch, "constant|step|cosine", origin, err,
                        errlen)) != CN_OK)
        goto out;
    if (ch[0])
        optim_sched_parse(ch, &s->optim.schedule);
    NUM("batch", 1, 65536, true, s->batch);
    NUM("epochs", 1, 100000, true, s->epochs);
    ch[0] = 0;
    if ((e = get_choice(o, "consistency", ch, sizeof ch, "bsp|asp|ssp", origin, err, errlen)) !=
        CN_OK)
        goto out;
    if (ch[0])
        ps_mode_parse(ch, &s->mode);
    NUM("staleness", 0, 1000, true, s->staleness);
    NUM("shards", 1, 64, true, s->shards);
    NUM("workers", 1, 64, true, s->workers);
    ch[0] = 0;
    if ((e = get_choice(o, "partition", ch, sizeof ch, "iid|dirichlet|klabels|quantity|contiguous",
                        origin, err, errlen)) != CN_OK)
        goto out;
    if (ch[0])
        part_kind_parse(ch, &s->partition);
    NUM("alpha", 1e-6, 1e6, false, s->alpha);
    NUM("k_labels", 1, 1000, true, s->k_labels);
    NUM("seed", 0, 9007199254740992.0, true, s->seed);
    NUM("eval_every_s", 0.05, 3600, false, s->eval_every_s);
    NUM("checkpoint_every", 0, 1e9, true, s->checkpoint_every);
    NUM("threads", 0, 1024, true, s->threads);
    NUM("target_accuracy", 0, 1, false, s->target_accuracy);
    NUM("report_every_s", 0.05, 60, false, s->report_every_s);
    NUM("admission_timeout_s", 1, 86400, false, s->admission_timeout_s);
#undef NUM
    if (s->optim.schedule == OPTIM_SCHED_COSINE)
        s->optim.total_steps = 0; // filled in when the step count is known
    e = CN_OK;
out:
    cJSON_Delete(o);
    return e;
}

