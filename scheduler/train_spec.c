// train_spec.c: parsing and validation of training job files (see
// train_spec.h).
#include "scheduler/train_spec.h"

#include <cjson/cJSON.h>
#include <math.h>
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
    s->fed.rounds = 10;
    s->fed.min_clients = 1;
    s->fed.local_epochs = 1;
    s->fed.local_batch = 32;
    optim_cfg_default(&s->fed.local, OPTIM_SGD);
    s->fed.local.lr = 0.05f;
    fed_server_default(&s->fed.server, FED_AVG);
    s->fed.mu = 0.01;
    s->fed.slowdown = 1;
}

// fed_keys is what the option table reads for federated mode, before it is
// checked and turned into train_fed.
typedef struct fed_keys {
    char mode[CN_OPT_STRLEN], strategy[CN_OPT_STRLEN], local_opt[CN_OPT_STRLEN],
        client_data[CN_OPT_STRLEN];
    int64_t rounds, clients, min_clients, local_epochs, local_batch, min_updates;
    double per_round, local_lr, deadline, mu, dropout, slowdown, delay;
    double server_lr, server_momentum, server_beta1, server_beta2, tau; // NAN: the default
    const cJSON *slow;
} fed_keys;

#define FED_KEYS_N 20

static void fed_keys_opts(fed_keys *k, cn_opt *o)
{
    const cn_opt v[FED_KEYS_N] = {
        {"mode", CN_OPT_CHOICE, k->mode, "ps or federated", 0, 0, "ps|federated"},
        {"rounds", CN_OPT_INT, &k->rounds, "federated rounds", 1, 100000, NULL},
        {"clients", CN_OPT_INT, &k->clients, "federated clients", 1, PS_MAX_WORKERS, NULL},
        {"clients_per_round", CN_OPT_DOUBLE, &k->per_round, "a count, or a fraction < 1", 0,
         PS_MAX_WORKERS, NULL},
        {"min_clients", CN_OPT_INT, &k->min_clients, "clients selected at least", 1, PS_MAX_WORKERS,
         NULL},
        {"local_epochs", CN_OPT_INT, &k->local_epochs, "client epochs per round", 1, 10000, NULL},
        {"local_batch", CN_OPT_INT, &k->local_batch, "client batch", 1, 65536, NULL},
        {"local_lr", CN_OPT_DOUBLE, &k->local_lr, "client learning rate", 1e-9, 100, NULL},
        {"local_optimizer", CN_OPT_CHOICE, k->local_opt, "client optimizer", 0, 0,
         "sgd|momentum|adam"},
        {"round_deadline_s", CN_OPT_DOUBLE, &k->deadline, "round deadline (0 = none)", 0, 86400,
         NULL},
        {"min_updates", CN_OPT_INT, &k->min_updates, "quorum of updates (0 = all)", 0,
         PS_MAX_WORKERS, NULL},
        {"strategy", CN_OPT_CHOICE, k->strategy, "server strategy", 0, 0, FED_STRATEGIES},
        {"mu", CN_OPT_DOUBLE, &k->mu, "FedProx coefficient", 0, 1000, NULL},
        {"server_lr", CN_OPT_DOUBLE, &k->server_lr, "server learning rate", 1e-9, 100, NULL},
        {"server_momentum", CN_OPT_DOUBLE, &k->server_momentum, "FedAvgM momentum", 0, 0.999999,
         NULL},
        {"server_beta1", CN_OPT_DOUBLE, &k->server_beta1, "FedOpt beta1", 0, 0.999999, NULL},
        {"server_beta2", CN_OPT_DOUBLE, &k->server_beta2, "FedOpt beta2", 0, 0.999999, NULL},
        {"tau", CN_OPT_DOUBLE, &k->tau, "FedOpt adaptivity", 1e-12, 1, NULL},
        {"dropout", CN_OPT_DOUBLE, &k->dropout, "drop probability per client-round", 0, 1, NULL},
        {"client_data", CN_OPT_CHOICE, k->client_data, "partition or local", 0, 0,
         "partition|local"},
    };
    memcpy(o, v, sizeof v);
}

// fed_apply checks the federated keys and fills s->fed.
static cn_err fed_apply(const fed_keys *k, train_spec *s, const char *origin, char *err,
                        size_t errlen)
{
    train_fed *f = &s->fed;
    f->on = strcmp(k->mode, "federated") == 0;
    f->rounds = (uint32_t)k->rounds;
    f->clients = k->clients ? (uint32_t)k->clients : s->workers;
    f->clients_per_round = k->per_round;
    f->min_clients = (uint32_t)k->min_clients;
    f->local_epochs = (uint32_t)k->local_epochs;
    f->local_batch = (uint32_t)k->local_batch;
    if (k->local_opt[0])
        optim_cfg_named(&f->local, k->local_opt);
    if (!isnan(k->local_lr))
        f->local.lr = (float)k->local_lr;
    f->round_deadline_s = k->deadline;
    f->min_updates = (uint32_t)k->min_updates;
    if (k->strategy[0])
        fed_strategy_parse(k->strategy, &f->server.strategy);
    fed_server_default(&f->server, f->server.strategy);
    if (!isnan(k->server_lr))
        f->server.lr = k->server_lr;
    if (!isnan(k->server_momentum))
        f->server.momentum = k->server_momentum;
    if (!isnan(k->server_beta1))
        f->server.beta1 = k->server_beta1;
    if (!isnan(k->server_beta2))
        f->server.beta2 = k->server_beta2;
    if (!isnan(k->tau))
        f->server.tau = k->tau;
    f->mu = f->server.strategy == FED_PROX ? k->mu : 0;
    f->dropout = k->dropout;
    f->local_data = strcmp(k->client_data, "local") == 0;
    f->slowdown = k->slowdown;
    f->delay_s = k->delay;
    int n = cJSON_GetArraySize(k->slow);
    for (int i = 0; i < n; i++) {
        const cJSON *c = cJSON_GetArrayItem(k->slow, i);
        if (!cJSON_IsNumber(c) || c->valuedouble < 0 || c->valuedouble >= f->clients ||
            c->valuedouble != floor(c->valuedouble))
            return cn_errf(err, errlen, CN_EINVAL,
                           "%s: key \"slow_clients\": element %d is not a client in 0..%u", origin,
                           i, f->clients - 1);
        f->slow[f->n_slow++] = (uint32_t)c->valuedouble;
    }
    if (f->min_updates > f->clients)
        return cn_errf(err, errlen, CN_EINVAL,
                       "%s: key \"min_updates\": %u is more than the %u clients", origin,
                       f->min_updates, f->clients);
    optim_cfg server;
    char inner[CN_ERRBUF_LEN];
    if (fed_server_optim(&f->server, &server, inner, sizeof inner) != CN_OK)
        return cn_errf(err, errlen, CN_EINVAL, "%s: %s", origin, inner);
    return CN_OK;
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
    fed_keys fk = {.rounds = s->fed.rounds,
                   .min_clients = s->fed.min_clients,
                   .local_epochs = s->fed.local_epochs,
                   .local_batch = s->fed.local_batch,
                   .local_lr = NAN,
                   .mu = s->fed.mu,
                   .slowdown = 1,
                   .server_lr = NAN,
                   .server_momentum = NAN,
                   .server_beta1 = NAN,
                   .server_beta2 = NAN,
                   .tau = NAN};
    cn_opt opts[40 + OPTIM_KEYS_N + FED_KEYS_N] = {
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
        {"slow_clients", CN_OPT_ARRAY, &fk.slow, "clients run slowdown times slower", 0,
         TRAIN_MAX_SLOW, NULL},
        {"slowdown", CN_OPT_DOUBLE, &fk.slowdown, "slow clients' factor", 1, 1000, NULL},
        {"delay_s", CN_OPT_DOUBLE, &fk.delay, "slow clients' added delay", 0, 3600, NULL},
    };
    size_t n = 0;
    while (opts[n].name)
        n++;
    optim_keys_opts(&ok, &opts[n]);
    fed_keys_opts(&fk, &opts[n + OPTIM_KEYS_N]);
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
    if (e == CN_OK) {
        s->workers = (uint32_t)workers; // fed's default client count
        e = fed_apply(&fk, s, origin, err, errlen);
    }
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
