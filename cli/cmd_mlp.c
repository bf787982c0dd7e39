// cmd_mlp.c: `canopy mlp train` and `canopy mlp eval`: single-process MLP
// training and evaluation on IDX (MNIST-format) data.
//
// train loads the data, builds the network and optimizer from flags, runs
// shuffled minibatch epochs (printing loss, test accuracy and training
// throughput per epoch) and optionally saves the model; eval loads a model
// and prints its accuracy and confusion matrix. Throughput counts training
// steps only (gather, forward, backward, optimizer), not evaluation.
// Training runs on an mlp_trainer with --threads threads, each running
// single-threaded BLAS on its share of every step.
#include "cli/cli.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_buf.h"
#include "common/cn_clock.h"
#include "common/cn_config.h"
#include "common/cn_rand.h"
#include "ml/idx.h"
#include "ml/metrics.h"
#include "ml/mlp.h"
#include "ml/optim.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/"

typedef struct train_opts {
    char hidden[CN_OPT_STRLEN];
    int64_t epochs, batch, threads, seed, max_rows, step_every;
    char optimizer[CN_OPT_STRLEN];
    char schedule[CN_OPT_STRLEN];
    double lr, weight_decay, momentum, gamma, min_lr;
    bool nesterov, decoupled, json;
    char train_images[CN_OPT_STRLEN], train_labels[CN_OPT_STRLEN];
    char test_images[CN_OPT_STRLEN], test_labels[CN_OPT_STRLEN];
    char out[CN_OPT_STRLEN];
} train_opts;

static void usage_main(FILE *f)
{
    fprintf(f, "usage: canopy mlp <command> [options]\n\n"
               "commands:\n"
               "  train    train an MLP on IDX images and labels (default: Fashion-MNIST)\n"
               "  eval     evaluate a saved model: accuracy and confusion matrix\n\n"
               "Run `canopy mlp <command> --help` for the options of each.\n");
}

static int data_error(const char *msg)
{
    fprintf(stderr, "canopy mlp: %s\n", msg);
    return CLI_EXIT_DATA;
}

// parse_hidden turns "256,128" into widths; "" or "none" means no hidden layer.
static int parse_hidden(const char *s, int *w, int max)
{
    int n = 0;
    if (*s == 0 || strcmp(s, "none") == 0)
        return 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1 << 20 || n == max || (*end != ',' && *end != 0))
            return -1;
        w[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

static void print_eval(const mlp_eval *e, const int32_t *labels)
{
    printf("accuracy %.4f  loss %.4f\n", e->accuracy, e->loss);
    printf("per-class accuracy:");
    for (int c = 0; c < e->n_classes; c++)
        printf(" %d:%.3f", labels ? labels[c] : c, e->class_accuracy[c]);
    printf("\nconfusion matrix (rows = true, columns = predicted):\n");
    cn_buf b;
    cn_buf_init(&b);
    metrics_format_confusion(e->confusion, e->n_classes, labels, &b);
    fputs(b.data ? b.data : "", stdout);
    cn_buf_fini(&b);
}

static int cmd_train(int argc, char **argv)
{
    train_opts o;
    memset(&o, 0, sizeof o);
    strcpy(o.hidden, "256,128");
    o.epochs = 10;
    o.batch = 64;
    o.threads = 1;
    o.seed = 1;
    o.step_every = 3;
    strcpy(o.optimizer, "adam");
    strcpy(o.schedule, "cosine");
    o.momentum = 0.9;
    o.gamma = 0.1;
    strcpy(o.train_images, FMNIST "train-images-idx3-ubyte.gz");
    strcpy(o.train_labels, FMNIST "train-labels-idx1-ubyte.gz");
    strcpy(o.test_images, FMNIST "t10k-images-idx3-ubyte.gz");
    strcpy(o.test_labels, FMNIST "t10k-labels-idx1-ubyte.gz");
    cn_opt opts[] = {
        {"hidden", CN_OPT_STRING, o.hidden, "hidden layer widths, comma-separated", 0, 0, NULL},
        {"epochs", CN_OPT_INT, &o.epochs, "passes over the training data", 1, 100000, NULL},
        {"batch", CN_OPT_INT, &o.batch, "minibatch size", 1, 65536, NULL},
        {"optimizer", CN_OPT_CHOICE, o.optimizer, "update rule", 0, 0, OPTIM_NAMES},
        {"lr", CN_OPT_DOUBLE, &o.lr,
         "learning rate (0 = optimizer default: adam 1e-3, sgd/momentum 0.05)", 0, 100, NULL},
        {"weight-decay", CN_OPT_DOUBLE, &o.weight_decay, "L2 coefficient (decoupled for adamw)", 0,
         10, NULL},
        {"momentum", CN_OPT_DOUBLE, &o.momentum, "momentum coefficient", 0, 0.9999, NULL},
        {"nesterov", CN_OPT_BOOL, &o.nesterov, "Nesterov momentum", 0, 0, NULL},
        {"schedule", CN_OPT_CHOICE, o.schedule, "learning-rate schedule", 0, 0,
         "constant|step|cosine"},
        {"step-gamma", CN_OPT_DOUBLE, &o.gamma, "step schedule: lr multiplier", 0, 1, NULL},
        {"step-epochs", CN_OPT_INT, &o.step_every, "step schedule: epochs per step", 1, 100000,
         NULL},
        {"min-lr", CN_OPT_DOUBLE, &o.min_lr, "cosine schedule: final learning rate", 0, 100, NULL},
        {"threads", CN_OPT_INT, &o.threads,
         "training threads (each runs single-threaded BLAS on its share of a step)", 1, 256, NULL},
        {"seed", CN_OPT_INT, &o.seed, "seed for initialisation and shuffling", 0, 0, NULL},
        {"max-rows", CN_OPT_INT, &o.max_rows, "use at most this many training rows (0 = all)", 0,
         1e12, NULL},
        {"train-images", CN_OPT_STRING, o.train_images, "training images (IDX, gzip ok)", 0, 0,
         NULL},
        {"train-labels", CN_OPT_STRING, o.train_labels, "training labels (IDX)", 0, 0, NULL},
        {"test-images", CN_OPT_STRING, o.test_images, "test images (IDX)", 0, 0, NULL},
        {"test-labels", CN_OPT_STRING, o.test_labels, "test labels (IDX)", 0, 0, NULL},
        {"output", CN_OPT_STRING, o.out, "write the trained model here (.cnm); also -o", 0, 0,
         NULL},
        {"json", CN_OPT_BOOL, &o.json, "print a final JSON line for scripts", 0, 0, NULL},
        CN_OPT_END,
    };
    cn_args args;
    char err[CN_ERRBUF_LEN];
    // cn_config knows only --long flags; accept the conventional -o too.
    char *av[CN_ARGS_MAX * 2];
    char out_flag[] = "--output";
    if (argc > (int)(sizeof av / sizeof av[0]))
        return cli_usage_error("mlp train", "too many arguments");
    for (int i = 0; i < argc; i++)
        av[i] = strcmp(argv[i], "-o") == 0 ? out_flag : argv[i];
    if (cn_config_parse(opts, argc, av, &args, err, sizeof err) != CN_OK)
        return cli_usage_error("mlp train", err);
    if (args.help) {
        printf("usage: canopy mlp train [options]\n\nTrain an MLP (ReLU, softmax "
               "cross-entropy) with minibatch SGD/momentum/Adam.\n\noptions:\n");
        cn_config_print_help(opts, stdout);
        return CLI_EXIT_OK;
    }
    if (args.npos > 0) {
        snprintf(err, sizeof err, "unexpected argument \"%s\"", args.pos[0]);
        return cli_usage_error("mlp train", err);
    }
    int hidden[MLP_MAX_LAYERS];
    int nh = parse_hidden(o.hidden, hidden, MLP_MAX_LAYERS - 1);
    if (nh < 0) {
        snprintf(err, sizeof err,
                 "--hidden: \"%s\" is not a list of widths (allowed: e.g. 256,128; at most %d)",
                 o.hidden, MLP_MAX_LAYERS - 1);
        return cli_usage_error("mlp train", err);
    }

    optim_cfg oc;
    optim_cfg_named(&oc, o.optimizer); // a choice of OPTIM_NAMES, checked by the table
    if (oc.kind != OPTIM_ADAM)
        oc.lr = 0.05f;
    if (o.lr > 0)
        oc.lr = (float)o.lr;
    oc.weight_decay = (float)o.weight_decay;
    oc.momentum = (float)o.momentum;
    oc.nesterov = o.nesterov;
    optim_sched_parse(o.schedule, &oc.schedule);
    oc.gamma = (float)o.gamma;
    oc.min_lr = (float)o.min_lr;

    ds_dataset *train = NULL, *test = NULL;
    float *params = NULL;
    size_t *perm = NULL;
    mlp_trainer *tr = NULL;
    mlp_ws *ews = NULL;
    optim_state *st = NULL;
    int rc = CLI_EXIT_OK;
    if (idx_load(o.train_images, o.train_labels, (size_t)o.max_rows, &train, err, sizeof err) !=
            CN_OK ||
        idx_load(o.test_images, o.test_labels, 0, &test, err, sizeof err) != CN_OK) {
        rc = data_error(err);
        goto out;
    }
    if (test->n_features != train->n_features) {
        snprintf(err, sizeof err, "test images have %zu pixels, training images %zu",
                 test->n_features, train->n_features);
        rc = data_error(err);
        goto out;
    }
    int n_classes = train->n_classes > test->n_classes ? train->n_classes : test->n_classes;
    if (n_classes < 2)
        n_classes = 2;
    mlp_shape s;
    if (mlp_shape_init(&s, (int)train->n_features, hidden, nh, n_classes, err, sizeof err) !=
        CN_OK) {
        rc = cli_usage_error("mlp train", err);
        goto out;
    }
    size_t n = train->n_rows;
    int B = (int)o.batch;
    uint64_t steps_per_epoch = (n + (size_t)B - 1) / (size_t)B;
    oc.step_every = (uint64_t)o.step_every * steps_per_epoch;
    oc.total_steps = (uint64_t)o.epochs * steps_per_epoch;
    if (optim_cfg_check(&oc, err, sizeof err) != CN_OK) {
        rc = cli_usage_error("mlp train", err);
        goto out;
    }
    mlp_set_threads(1); // the trainer's threads each run single-threaded BLAS
    params = malloc(s.n_params * sizeof(float));
    perm = malloc((n ? n : 1) * sizeof(size_t));
    tr = mlp_trainer_new(&s, B, (int)o.threads);
    ews = mlp_ws_new(&s, 1000);
    st = optim_state_new(&oc, s.n_params);
    if (!params || !perm || !tr || !ews || !st) {
        fprintf(stderr, "canopy mlp train: out of memory\n");
        rc = CLI_EXIT_FAILURE;
        goto out;
    }
    mlp_trainer_set_idle_spin(tr, MLP_LOOP_SPIN_NS); // steps run back to back
    mlp_init_params(&s, params, (uint64_t)o.seed);
    char shape[128];
    mlp_shape_format(&s, shape, sizeof shape);
    printf("mlp %s (%zu parameters), %zu training %s, %zu test %s, %s lr %g, batch %d, %d %s\n",
           shape, s.n_params, n, cn_plural(n, "row", "rows"), test->n_rows,
           cn_plural(test->n_rows, "row", "rows"), o.optimizer, (double)oc.lr, B, (int)o.threads,
           cn_plural((unsigned long long)o.threads, "thread", "threads"));
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    cn_rng rng;
    cn_rng_seed(&rng, (uint64_t)o.seed, 1000);
    uint64_t t = 0, train_ns = 0;
    double last_loss = 0.0;
    mlp_eval ev;
    memset(&ev, 0, sizeof ev);
    for (int64_t epoch = 0; epoch < o.epochs; epoch++) {
        cn_rng_shuffle(&rng, perm, n, sizeof *perm);
        double loss_sum = 0.0;
        uint64_t t0 = cn_now_ns();
        for (size_t r0 = 0; r0 < n; r0 += (size_t)B) {
            int nb = (int)(n - r0 < (size_t)B ? n - r0 : (size_t)B);
            mlp_batch mb = {.d = train, .idx = perm + r0, .n = nb};
            float loss;
            mlp_trainer_step(tr, params, &mb, &oc, st, t++, NULL, &loss);
            loss_sum += (double)loss * nb;
        }
        uint64_t dt = cn_now_ns() - t0;
        train_ns += dt;
        last_loss = loss_sum / (double)n;
        mlp_eval_fini(&ev);
        if (mlp_evaluate(&s, params, test, ews, &ev, err, sizeof err) != CN_OK) {
            rc = data_error(err);
            goto out;
        }
        printf("epoch %3lld/%lld  loss %.4f  test_loss %.4f  test_acc %.4f  samples/s %.0f  "
               "(%.2f s)\n",
               (long long)epoch + 1, (long long)o.epochs, last_loss, ev.loss, ev.accuracy,
               (double)n / ((double)dt * 1e-9), (double)dt * 1e-9);
        fflush(stdout);
        if (!isfinite(last_loss)) {
            fprintf(stderr, "canopy mlp train: loss diverged (try a lower --lr)\n");
            rc = CLI_EXIT_FAILURE;
            goto out;
        }
    }
    double sps = train_ns ? (double)n * (double)o.epochs / ((double)train_ns * 1e-9) : 0.0;
    if (o.out[0]) {
        if (mlp_model_save(o.out, &s, params, err, sizeof err) != CN_OK) {
            fprintf(stderr, "canopy mlp train: %s\n", err);
            rc = CLI_EXIT_FAILURE;
            goto out;
        }
        printf("model written to %s\n", o.out);
    }
    printf("trained %lld %s in %.2f s: %.0f samples/s, test accuracy %.4f\n", (long long)o.epochs,
           cn_plural((unsigned long long)o.epochs, "epoch", "epochs"), (double)train_ns * 1e-9, sps,
           ev.accuracy);
    if (o.json) {
        printf("{\"model\":\"%s\",\"params\":%zu,\"optimizer\":\"%s\",\"lr\":%g,\"batch\":%d,"
               "\"threads\":%d,\"epochs\":%lld,\"train_seconds\":%.3f,\"samples_per_s\":%.1f,"
               "\"train_loss\":%.5f,\"test_loss\":%.5f,\"test_acc\":%.5f}\n",
               shape, s.n_params, o.optimizer, (double)oc.lr, B, (int)o.threads,
               (long long)o.epochs, (double)train_ns * 1e-9, sps, last_loss, ev.loss, ev.accuracy);
    }
    mlp_eval_fini(&ev);
out:
    ds_dataset_free(train);
    ds_dataset_free(test);
    free(params);
    free(perm);
    mlp_trainer_free(tr);
    mlp_ws_free(ews);
    optim_state_free(st);
    return rc;
}

static int cmd_eval(int argc, char **argv)
{
    char images[CN_OPT_STRLEN] = FMNIST "t10k-images-idx3-ubyte.gz";
    char labels[CN_OPT_STRLEN] = FMNIST "t10k-labels-idx1-ubyte.gz";
    bool json = false;
    int64_t threads = 1;
    cn_opt opts[] = {
        {"images", CN_OPT_STRING, images, "images to evaluate on (IDX, gzip ok)", 0, 0, NULL},
        {"labels", CN_OPT_STRING, labels, "their labels (IDX)", 0, 0, NULL},
        {"threads", CN_OPT_INT, &threads, "BLAS threads", 1, 256, NULL},
        {"json", CN_OPT_BOOL, &json, "print a JSON line instead of the table", 0, 0, NULL},
        CN_OPT_END,
    };
    cn_args args;
    char err[CN_ERRBUF_LEN];
    if (cn_config_parse(opts, argc, argv, &args, err, sizeof err) != CN_OK)
        return cli_usage_error("mlp eval", err);
    if (args.help) {
        printf("usage: canopy mlp eval MODEL [options]\n\nPrint a saved model's accuracy, "
               "per-class accuracy and confusion matrix.\n\noptions:\n");
        cn_config_print_help(opts, stdout);
        return CLI_EXIT_OK;
    }
    if (args.npos != 1)
        return cli_usage_error("mlp eval", "expected exactly one MODEL file");
    mlp_shape s;
    float *params = NULL;
    ds_dataset *d = NULL;
    mlp_ws *ws = NULL;
    mlp_eval ev;
    memset(&ev, 0, sizeof ev);
    int rc = CLI_EXIT_OK;
    if (mlp_model_load(args.pos[0], &s, &params, err, sizeof err) != CN_OK ||
        idx_load(images, labels, 0, &d, err, sizeof err) != CN_OK) {
        rc = data_error(err);
        goto out;
    }
    mlp_set_threads((int)threads);
    if ((ws = mlp_ws_new(&s, 1000)) == NULL) {
        fprintf(stderr, "canopy mlp eval: out of memory\n");
        rc = CLI_EXIT_FAILURE;
        goto out;
    }
    if (mlp_evaluate(&s, params, d, ws, &ev, err, sizeof err) != CN_OK) {
        rc = data_error(err);
        goto out;
    }
    if (json) {
        printf("{\"model\":\"%s\",\"rows\":%zu,\"accuracy\":%.5f,\"loss\":%.5f}\n", args.pos[0],
               d->n_rows, ev.accuracy, ev.loss);
    } else {
        char shape[128];
        mlp_shape_format(&s, shape, sizeof shape);
        printf("model %s (%s), %zu %s\n", args.pos[0], shape, d->n_rows,
               cn_plural(d->n_rows, "row", "rows"));
        print_eval(&ev, NULL);
    }
out:
    mlp_eval_fini(&ev);
    mlp_ws_free(ws);
    ds_dataset_free(d);
    free(params);
    return rc;
}

int cmd_mlp(int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
        strcmp(argv[0], "help") == 0) {
        usage_main(argc < 1 ? stderr : stdout);
        return argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[0], "train") == 0)
        return cmd_train(argc - 1, argv + 1);
    if (strcmp(argv[0], "eval") == 0)
        return cmd_eval(argc - 1, argv + 1);
    char msg[256];
    snprintf(msg, sizeof msg, "unknown command \"%s\" (expected train or eval)", argv[0]);
    return cli_usage_error("mlp", msg);
}
