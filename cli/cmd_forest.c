// cmd_forest.c: `canopy forest fit|predict|cv`, the random forest on one
// machine: train and save a model, predict a CSV file (Kaggle's Id,label
// format) with metrics when the file has labels, and cross-validate.
//
// Flags go through cn_config tables; two spellings the tables cannot express
// are rewritten first: `-o FILE` (short for --output) and repeated
// `--set key=value` (forest parameters, applied after --params FILE).
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/cn_buf.h"
#include "common/cn_config.h"
#include "common/cn_err.h"
#include "common/cn_file.h"
#include "ml/blas_info.h"
#include "ml/csv.h"
#include "ml/cv.h"
#include "ml/ds.h"
#include "ml/metrics.h"
#include "ml/rf.h"

#define MAX_SETS 64

// Options shared by the subcommands that read a CSV file.
typedef struct data_opts {
    bool header;
    char label[CN_OPT_STRLEN];
    char label_col[CN_OPT_STRLEN];
    char drop[CN_OPT_STRLEN];
    int64_t max_rows;
} data_opts;

// Arguments after rewriting -o and pulling out --set.
typedef struct argv_work {
    int argc;
    char *argv[CN_ARGS_MAX * 2];
    int nsets;
    char *sets[MAX_SETS];
} argv_work;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void data_opts_default(data_opts *d)
{
    d->header = true;
    d->label[0] = 0;
    d->label_col[0] = 0;
    snprintf(d->drop, sizeof d->drop, "Id");
    d->max_rows = 0;
}

// rewrite copies argv into w, turning "-o X" into "--output X" and taking
// "--set k=v" / "--set=k=v" out. Returns 0, or -1 with msg set.
static int rewrite(int argc, char **argv, argv_work *w, char *msg, size_t n)
{
    static char output_flag[] = "--output";
    memset(w, 0, sizeof *w);
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            for (; i < argc && w->argc < (int)(sizeof w->argv / sizeof w->argv[0]); i++)
                w->argv[w->argc++] = argv[i];
            break;
        }
        if (strcmp(a, "--set") == 0 || strncmp(a, "--set=", 6) == 0) {
            char *v = a[5] == '=' ? a + 6 : (i + 1 < argc ? argv[++i] : NULL);
            if (v == NULL || strchr(v, '=') == NULL) {
                snprintf(msg, n, "--set: expected key=value, e.g. --set max_depth=20");
                return -1;
            }
            if (w->nsets == MAX_SETS) {
                snprintf(msg, n, "--set: at most %d parameters", MAX_SETS);
                return -1;
            }
            w->sets[w->nsets++] = v;
            continue;
        }
        if (w->argc >= (int)(sizeof w->argv / sizeof w->argv[0])) {
            snprintf(msg, n, "too many arguments");
            return -1;
        }
        w->argv[w->argc++] = strcmp(a, "-o") == 0 ? output_flag : a;
    }
    return 0;
}

// load_params applies --params FILE, then the --set pairs, to p.
static int load_params(const char *cmd, const char *file, const argv_work *w, rf_params *p)
{
    char err[CN_ERRBUF_LEN];
    if (file[0]) {
        uint8_t *text;
        size_t len;
        cn_err e = cn_file_read_all(file, 1 << 20, &text, &len, err, sizeof err);
        if (e != CN_OK) {
            fprintf(stderr, "canopy forest %s: %s\n", cmd, err);
            return CLI_EXIT_USAGE;
        }
        e = rf_params_from_json_text(p, (char *)text, file, err, sizeof err);
        free(text);
        if (e != CN_OK) {
            fprintf(stderr, "canopy forest %s: %s\n", cmd, err);
            return CLI_EXIT_USAGE;
        }
    }
    for (int i = 0; i < w->nsets; i++) {
        char key[128];
        const char *eq = strchr(w->sets[i], '=');
        size_t kl = (size_t)(eq - w->sets[i]);
        if (kl >= sizeof key)
            kl = sizeof key - 1;
        memcpy(key, w->sets[i], kl);
        key[kl] = 0;
        if (rf_params_set(p, key, eq + 1, err, sizeof err) != CN_OK) {
            fprintf(stderr, "canopy forest %s: --set: %s\n", cmd, err);
            return CLI_EXIT_USAGE;
        }
    }
    return CLI_EXIT_OK;
}

// csv_opts_from turns the data flags into loader options. label_default is
// the label name to use when neither --label nor --label-col is given (NULL
// = the last column); optional makes a missing label column fine.
static int csv_opts_from(const char *cmd, const data_opts *d, const char *label_default,
                         bool optional, csv_options *o)
{
    *o = csv_options_default();
    o->has_header = d->header;
    o->drop_columns = d->drop[0] ? d->drop : NULL;
    o->max_rows = (size_t)d->max_rows;
    if (d->label_col[0]) {
        char *end;
        long v = strtol(d->label_col, &end, 10);
        if (*end != 0 || end == d->label_col) {
            fprintf(stderr,
                    "canopy forest %s: --label-col: \"%s\" is not an integer (0-based column; "
                    "negative counts from the end, -1 = last)\n",
                    cmd, d->label_col);
            return CLI_EXIT_USAGE;
        }
        o->label_mode = CSV_LABEL_INDEX;
        o->label_index = (int)v;
    } else if (d->label[0]) {
        o->label_mode = CSV_LABEL_NAME;
        o->label_name = d->label;
    } else if (label_default && d->header) {
        o->label_mode = CSV_LABEL_NAME;
        o->label_name = label_default;
        o->label_optional = optional;
    } else if (optional) {
        o->label_mode = CSV_LABEL_NONE;
    }
    return CLI_EXIT_OK;
}

static int load_data(const char *cmd, const char *path, const csv_options *o, ds_dataset **d)
{
    char err[CN_ERRBUF_LEN];
    cn_err e = ds_load_csv(path, o, d, err, sizeof err);
    if (e != CN_OK) {
        fprintf(stderr, "canopy forest %s: %s\n", cmd, err);
        return CLI_EXIT_DATA;
    }
    return CLI_EXIT_OK;
}

#define DATA_OPTS(d)                                                                               \
    {"header", CN_OPT_BOOL, &(d).header, "the first line names the columns (--no-header: not)",    \
     0,        0,           NULL},                                                                 \
        {"label",   CN_OPT_STRING,                                                                 \
         (d).label, "label column by name (default: Cover_Type if present)",                       \
         0,         0,                                                                             \
         NULL},                                                                                    \
        {"label-col",                                                                              \
         CN_OPT_STRING,                                                                            \
         (d).label_col,                                                                            \
         "label column by 0-based position, negative from the end (-1 = last)",                    \
         0,                                                                                        \
         0,                                                                                        \
         NULL},                                                                                    \
        {"drop", CN_OPT_STRING, (d).drop, "comma-separated id columns to drop", 0, 0, NULL},       \
    {                                                                                              \
        "max-rows", CN_OPT_INT, &(d).max_rows, "read at most this many rows (0 = all)", 0, 1e15,   \
            NULL                                                                                   \
    }

static void print_help(const char *usage, const char *what, const cn_opt *opts)
{
    printf("usage: %s\n\n%s\n\noptions:\n", usage, what);
    cn_config_print_help(opts, stdout);
    printf("  --set key=value   a forest parameter (repeatable; see docs/forest.md)\n");
}

// ---------------------------------------------------------------------------

static int forest_fit(int argc, char **argv)
{
    data_opts d;
    data_opts_default(&d);
    char params_file[CN_OPT_STRLEN] = "", output[CN_OPT_STRLEN] = "";
    int64_t threads = -1;
    cn_opt opts[] = {
        {"params", CN_OPT_STRING, params_file, "JSON object of forest parameters", 0, 0, NULL},
        {"output", CN_OPT_STRING, output, "model file to write (-o)", 0, 0, NULL},
        {"threads", CN_OPT_INT, &threads, "threads (0 = all CPUs; default: the parameters')", -1,
         4096, NULL},
        DATA_OPTS(d),
        CN_OPT_END,
    };
    argv_work w;
    char msg[CN_ERRBUF_LEN];
    cn_args a;
    if (rewrite(argc, argv, &w, msg, sizeof msg) != 0 ||
        cn_config_parse(opts, w.argc, w.argv, &a, msg, sizeof msg) != CN_OK)
        return cli_usage_error("forest fit", msg);
    if (a.help) {
        print_help("canopy forest fit [--params P.json] [--set k=v ...] DATA.csv -o MODEL.cnf",
                   "Train a random forest on every row of DATA.csv and save it.", opts);
        return CLI_EXIT_OK;
    }
    if (a.npos != 1)
        return cli_usage_error("forest fit", "expected one data file");
    if (!output[0])
        return cli_usage_error("forest fit", "missing -o MODEL.cnf");
    rf_params p = rf_params_default();
    int rc = load_params("fit", params_file, &w, &p);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (threads >= 0)
        p.threads = (int)threads;
    csv_options co;
    if ((rc = csv_opts_from("fit", &d, "Cover_Type", false, &co)) != CLI_EXIT_OK)
        return rc;
    if (!d.label[0] && !d.label_col[0] && d.header)
        co.label_optional = false;
    ds_dataset *ds = NULL;
    // Without --label/--label-col, use Cover_Type if present, else the last column.
    if (!d.label[0] && !d.label_col[0] && d.header) {
        co.label_optional = true;
        if ((rc = load_data("fit", a.pos[0], &co, &ds)) != CLI_EXIT_OK)
            return rc;
        if (ds->y == NULL) {
            ds_dataset_free(ds);
            ds = NULL;
            co.label_mode = CSV_LABEL_INDEX;
            co.label_index = -1;
            if ((rc = load_data("fit", a.pos[0], &co, &ds)) != CLI_EXIT_OK)
                return rc;
        }
    } else if ((rc = load_data("fit", a.pos[0], &co, &ds)) != CLI_EXIT_OK) {
        return rc;
    }
    char err[CN_ERRBUF_LEN];
    rf_forest *f = NULL;
    double t0 = now_s();
    cn_err e = rf_forest_fit(&p, ds, NULL, 0, &f, err, sizeof err);
    double secs = now_s() - t0;
    if (e != CN_OK) {
        fprintf(stderr, "canopy forest fit: %s\n", err);
        ds_dataset_free(ds);
        return e == CN_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
    }
    int nt = rf_forest_n_trees(f);
    printf("trained %d %s (%zu nodes) on %zu %s x %zu %s, %d classes, in %.2f s\n", nt,
           cn_plural((unsigned)nt, "tree", "trees"), rf_forest_n_nodes(f), ds->n_rows,
           cn_plural(ds->n_rows, "row", "rows"), ds->n_features,
           cn_plural(ds->n_features, "feature", "features"), ds->n_classes, secs);
    double oob;
    if (rf_forest_oob_score(f, &oob) == CN_OK)
        printf("out-of-bag accuracy: %.4f\n", oob);
    rc = CLI_EXIT_OK;
    if (rf_forest_save(f, output, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy forest fit: %s\n", err);
        rc = CLI_EXIT_FAILURE;
    } else {
        printf("saved %s\n", output);
    }
    rf_forest_free(f);
    ds_dataset_free(ds);
    return rc;
}

// ---------------------------------------------------------------------------

// match_columns puts the feature columns of ds (read from path) in the
// order the model f expects. With a header and a model that knows its
// feature names, columns are matched by name: a missing one is an error
// naming it, extra ones are ignored and said so. Otherwise they are taken
// by position and only their number is checked.
static int match_columns(const char *path, bool header, const rf_forest *f, ds_dataset *ds)
{
    size_t nf = rf_forest_n_features(f);
    const char **names = malloc((nf ? nf : 1) * sizeof *names);
    if (names == NULL) {
        fprintf(stderr, "canopy forest predict: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    bool named = header && ds->feature_names != NULL;
    for (size_t j = 0; j < nf && named; j++)
        named = (names[j] = rf_forest_feature_name(f, j)) != NULL;
    int rc = CLI_EXIT_OK;
    if (named) {
        char err[CN_ERRBUF_LEN];
        cn_buf ignored;
        cn_buf_init(&ignored);
        cn_err e = ds_dataset_select_features(ds, names, nf, &ignored, path, err, sizeof err);
        if (e != CN_OK) {
            fprintf(stderr,
                    "canopy forest predict: %s (the header must name every feature the model "
                    "was trained on; with --no-header, columns are taken by position)\n",
                    err);
            rc = e == CN_ENOMEM ? CLI_EXIT_FAILURE : CLI_EXIT_DATA;
        } else if (ignored.len) {
            fprintf(stderr,
                    "canopy forest predict: %s: ignoring columns the model was not trained on: "
                    "%s\n",
                    path, ignored.data);
        }
        cn_buf_fini(&ignored);
    } else if (ds->n_features != nf) {
        fprintf(stderr,
                "canopy forest predict: %s has %zu feature columns but the model was trained "
                "on %zu (check --label/--drop/--no-header)\n",
                path, ds->n_features, nf);
        rc = CLI_EXIT_DATA;
    }
    free(names);
    return rc;
}

// write_predictions writes "Id,<label>" rows (and with proba, one p_<class>
// column per class) to out.
static void write_predictions(FILE *out, const rf_forest *f, const ds_dataset *ds,
                              const int32_t *pred, const double *proba)
{
    const char *lname = rf_forest_label_name(f);
    const int32_t *cv = rf_forest_class_values(f);
    int k = rf_forest_n_classes(f);
    fprintf(out, "Id,%s", lname[0] ? lname : "label");
    for (int c = 0; proba && c < k; c++)
        fprintf(out, ",p_%d", cv[c]);
    fputc('\n', out);
    for (size_t i = 0; i < ds->n_rows; i++) {
        fprintf(out, "%lld,%d", ds->ids ? (long long)ds->ids[i] : (long long)i + 1, cv[pred[i]]);
        for (int c = 0; proba && c < k; c++)
            fprintf(out, ",%.6g", proba[i * (size_t)k + (size_t)c]);
        fputc('\n', out);
    }
}

static int forest_predict(int argc, char **argv)
{
    data_opts d;
    data_opts_default(&d);
    char output[CN_OPT_STRLEN] = "";
    bool want_proba = false;
    cn_opt opts[] = {
        {"output", CN_OPT_STRING, output,
         "write Id,label predictions here (-o; default stdout "
         "when the file has no labels)",
         0, 0, NULL},
        {"proba", CN_OPT_BOOL, &want_proba,
         "also write each class's probability beside the prediction (columns p_<class>)", 0, 0,
         NULL},
        DATA_OPTS(d),
        CN_OPT_END,
    };
    argv_work w;
    char msg[CN_ERRBUF_LEN], err[CN_ERRBUF_LEN];
    cn_args a;
    if (rewrite(argc, argv, &w, msg, sizeof msg) != 0 ||
        cn_config_parse(opts, w.argc, w.argv, &a, msg, sizeof msg) != CN_OK)
        return cli_usage_error("forest predict", msg);
    if (a.help) {
        print_help("canopy forest predict MODEL.cnf DATA.csv [-o PREDS.csv] [--proba]",
                   "Predict every row of DATA.csv. Writes Id,<label> rows (Kaggle format; the "
                   "file's Id column, else row numbers from 1). With a header, columns are "
                   "matched to the model's features by name (a missing one is an error, extra "
                   "ones are ignored); with --no-header, by position. When DATA.csv has the "
                   "label column, prints accuracy, balanced accuracy, macro F1 and the confusion "
                   "matrix.",
                   opts);
        return CLI_EXIT_OK;
    }
    if (a.npos != 2)
        return cli_usage_error("forest predict", "expected MODEL.cnf and DATA.csv");
    rf_forest *f = NULL;
    if (rf_forest_load(a.pos[0], &f, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy forest predict: %s\n", err);
        return CLI_EXIT_DATA;
    }
    const char *lname = rf_forest_label_name(f);
    csv_options co;
    int rc = csv_opts_from("predict", &d, lname[0] ? lname : NULL, true, &co);
    ds_dataset *ds = NULL;
    if (rc == CLI_EXIT_OK) {
        co.allow_single_class = true;
        rc = load_data("predict", a.pos[1], &co, &ds);
    }
    if (rc != CLI_EXIT_OK) {
        rf_forest_free(f);
        return rc;
    }
    int32_t *pred = NULL;
    double *proba = NULL;
    FILE *out = NULL;
    if ((rc = match_columns(a.pos[1], d.header, f, ds)) != CLI_EXIT_OK)
        goto done;
    if (want_proba && !output[0] && ds->y != NULL) {
        rc = cli_usage_error("forest predict",
                             "--proba writes the probabilities into the predictions file, and a "
                             "labelled file gets one only with -o PREDS.csv");
        goto done;
    }
    const int32_t *cv = rf_forest_class_values(f);
    int k = rf_forest_n_classes(f);
    pred = malloc((ds->n_rows ? ds->n_rows : 1) * sizeof *pred);
    if (want_proba)
        proba = malloc((ds->n_rows ? ds->n_rows : 1) * (size_t)k * sizeof *proba);
    if (pred == NULL || (want_proba && proba == NULL) ||
        rf_forest_predict_rows(f, ds, NULL, 0, pred) != CN_OK) {
        fprintf(stderr, "canopy forest predict: out of memory\n");
        rc = CLI_EXIT_FAILURE;
        goto done;
    }
    if (want_proba)
        rf_forest_predict_proba(f, ds->x, ds->n_rows, proba);
    if (output[0] || ds->y == NULL) {
        out = output[0] ? fopen(output, "w") : stdout;
        if (out == NULL) {
            fprintf(stderr, "canopy forest predict: cannot write %s\n", output);
            rc = CLI_EXIT_FAILURE;
            goto done;
        }
        write_predictions(out, f, ds, pred, proba);
        if (out != stdout && fclose(out) != 0) {
            fprintf(stderr, "canopy forest predict: error writing %s\n", output);
            rc = CLI_EXIT_FAILURE;
        }
        out = NULL;
        if (output[0])
            printf("wrote %zu %s to %s\n", ds->n_rows,
                   cn_plural(ds->n_rows, "prediction", "predictions"), output);
    }
    if (ds->y != NULL) {
        // Map the file's labels to the model's class indices.
        int32_t *truth = malloc(ds->n_rows * sizeof *truth);
        uint64_t *cm = calloc((size_t)k * (size_t)k, sizeof *cm);
        size_t unknown = 0, m = 0;
        if (truth == NULL || cm == NULL) {
            free(truth);
            free(cm);
            rc = CLI_EXIT_FAILURE;
            goto done;
        }
        for (size_t i = 0; i < ds->n_rows; i++) {
            int32_t v = ds->class_values[ds->y[i]];
            int c = -1;
            for (int j = 0; j < k; j++)
                if (cv[j] == v)
                    c = j;
            if (c < 0) {
                unknown++;
                continue;
            }
            truth[m] = c;
            pred[m] = pred[i];
            m++;
        }
        metrics_confusion(truth, pred, m, k, cm);
        printf("rows: %zu", m);
        if (unknown)
            printf(" (%zu rows with labels the model never saw are left out)", unknown);
        printf("\naccuracy: %.4f\nbalanced accuracy: %.4f\nmacro F1: %.4f\nconfusion matrix "
               "(rows = true, columns = predicted):\n",
               metrics_accuracy(cm, k), metrics_balanced_accuracy(cm, k), metrics_macro_f1(cm, k));
        cn_buf b;
        cn_buf_init(&b);
        metrics_format_confusion(cm, k, cv, &b);
        if (b.data)
            fputs(b.data, stdout);
        cn_buf_fini(&b);
        free(truth);
        free(cm);
    }
done:
    free(pred);
    free(proba);
    ds_dataset_free(ds);
    rf_forest_free(f);
    return rc;
}

// ---------------------------------------------------------------------------

// print_cv_json prints the result of forest cv as one JSON object (cJSON
// escapes the file name and every other string). Returns false on OOM.
static bool print_cv_json(const char *data, const ds_dataset *ds, const cv_result *r,
                          const rf_params *p, bool shuffle, int64_t seed)
{
    cn_buf pb;
    cn_buf_init(&pb);
    rf_params_format(p, &pb);
    cJSON *o = cJSON_CreateObject();
    cJSON *folds = cJSON_CreateArray();
    cJSON *params = pb.oom ? NULL : cJSON_Parse(pb.data);
    bool ok = o && folds && params;
    if (ok) {
        cJSON_AddStringToObject(o, "data", data);
        cJSON_AddNumberToObject(o, "rows", (double)ds->n_rows);
        cJSON_AddNumberToObject(o, "folds", r->k);
        cJSON_AddBoolToObject(o, "shuffle", shuffle);
        cJSON_AddNumberToObject(o, "seed", (double)seed);
        cJSON_AddItemToObject(o, "params", params);
        params = NULL;
        for (int f = 0; f < r->k && ok; f++) {
            const cv_fold_result *fr = &r->folds[f];
            cJSON *x = cJSON_CreateObject();
            ok = x != NULL;
            cJSON_AddItemToArray(folds, x);
            cJSON_AddNumberToObject(x, "fold", f);
            cJSON_AddNumberToObject(x, "accuracy", fr->accuracy);
            cJSON_AddNumberToObject(x, "balanced_accuracy", fr->balanced_accuracy);
            cJSON_AddNumberToObject(x, "macro_f1", fr->macro_f1);
            cJSON_AddNumberToObject(x, "fit_seconds", fr->fit_seconds);
            cJSON_AddNumberToObject(x, "predict_seconds", fr->predict_seconds);
            cJSON_AddNumberToObject(x, "n_train", (double)fr->n_train);
            cJSON_AddNumberToObject(x, "n_test", (double)fr->n_test);
        }
        cJSON_AddItemToObject(o, "fold_results", folds);
        folds = NULL;
        cJSON_AddNumberToObject(o, "mean_accuracy", r->mean_accuracy);
        cJSON_AddNumberToObject(o, "std_accuracy", r->std_accuracy);
        cJSON_AddNumberToObject(o, "mean_balanced_accuracy", r->mean_balanced_accuracy);
        cJSON_AddNumberToObject(o, "mean_macro_f1", r->mean_macro_f1);
        cJSON_AddNumberToObject(o, "wall_seconds", r->wall_seconds);
    }
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    if (text)
        printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(params);
    cJSON_Delete(folds);
    cJSON_Delete(o);
    cn_buf_fini(&pb);
    return text != NULL;
}

static int forest_cv(int argc, char **argv)
{
    data_opts d;
    data_opts_default(&d);
    char params_file[CN_OPT_STRLEN] = "";
    int64_t folds = 5, seed = 0, threads = -1;
    bool shuffle = true, json = false;
    cn_opt opts[] = {
        {"folds", CN_OPT_INT, &folds, "number of folds", 2, 1000, NULL},
        {"seed", CN_OPT_INT, &seed, "seed of the fold shuffle", 0, 9.0e18, NULL},
        {"shuffle", CN_OPT_BOOL, &shuffle,
         "shuffle rows within each class (--no-shuffle: file order, as sklearn's cv=5)", 0, 0,
         NULL},
        {"params", CN_OPT_STRING, params_file, "JSON object of forest parameters", 0, 0, NULL},
        {"threads", CN_OPT_INT, &threads, "threads (0 = all CPUs; default: the parameters')", -1,
         4096, NULL},
        {"json", CN_OPT_BOOL, &json, "print one JSON object instead of text", 0, 0, NULL},
        DATA_OPTS(d),
        CN_OPT_END,
    };
    argv_work w;
    char msg[CN_ERRBUF_LEN], err[CN_ERRBUF_LEN];
    cn_args a;
    if (rewrite(argc, argv, &w, msg, sizeof msg) != 0 ||
        cn_config_parse(opts, w.argc, w.argv, &a, msg, sizeof msg) != CN_OK)
        return cli_usage_error("forest cv", msg);
    if (a.help) {
        print_help("canopy forest cv [--folds 5] [--seed 0] [--no-shuffle] [--params P.json] "
                   "[--threads N] [--json] DATA.csv",
                   "Stratified k-fold cross-validation of a random forest on DATA.csv.", opts);
        return CLI_EXIT_OK;
    }
    if (a.npos != 1)
        return cli_usage_error("forest cv", "expected one data file");
    rf_params p = rf_params_default();
    int rc = load_params("cv", params_file, &w, &p);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (threads >= 0)
        p.threads = (int)threads;
    csv_options co;
    if ((rc = csv_opts_from("cv", &d, NULL, false, &co)) != CLI_EXIT_OK)
        return rc;
    ds_dataset *ds = NULL;
    if ((rc = load_data("cv", a.pos[0], &co, &ds)) != CLI_EXIT_OK)
        return rc;
    cv_result *r = NULL;
    cn_err e = cv_run(&p, ds, (int)folds, shuffle, (uint64_t)seed, &r, err, sizeof err);
    if (e != CN_OK) {
        fprintf(stderr, "canopy forest cv: %s\n", err);
        ds_dataset_free(ds);
        return e == CN_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
    }
    if (json) {
        if (!print_cv_json(a.pos[0], ds, r, &p, shuffle, seed)) {
            fprintf(stderr, "canopy forest cv: out of memory writing JSON\n");
            cv_result_free(r);
            ds_dataset_free(ds);
            return CLI_EXIT_FAILURE;
        }
    } else {
        printf("%d-fold %s stratified CV of %d %s on %s (%zu %s, %zu %s, %d classes)\n", r->k,
               shuffle ? "shuffled" : "unshuffled", p.n_estimators,
               cn_plural((unsigned)p.n_estimators, "tree", "trees"), a.pos[0], ds->n_rows,
               cn_plural(ds->n_rows, "row", "rows"), ds->n_features,
               cn_plural(ds->n_features, "feature", "features"), ds->n_classes);
        for (int f = 0; f < r->k; f++) {
            const cv_fold_result *fr = &r->folds[f];
            printf("fold %d/%d: accuracy %.4f  balanced %.4f  macro-F1 %.4f  fit %.2f s  "
                   "(%zu train / %zu test)\n",
                   f + 1, r->k, fr->accuracy, fr->balanced_accuracy, fr->macro_f1, fr->fit_seconds,
                   fr->n_train, fr->n_test);
        }
        printf("accuracy %.4f ± %.4f  balanced %.4f  macro-F1 %.4f  wall %.2f s\n",
               r->mean_accuracy, r->std_accuracy, r->mean_balanced_accuracy, r->mean_macro_f1,
               r->wall_seconds);
    }
    cv_result_free(r);
    ds_dataset_free(ds);
    return CLI_EXIT_OK;
}

int cmd_forest(int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
        strcmp(argv[0], "help") == 0) {
        FILE *o = argc < 1 ? stderr : stdout;
        fprintf(o, "usage: canopy forest fit|predict|cv [options] ...\n\n"
                   "  fit      train a random forest on a CSV file and save it\n"
                   "  predict  predict a CSV file with a saved model (Id,label output)\n"
                   "  cv       stratified k-fold cross-validation\n\n"
                   "Run `canopy forest <subcommand> --help` for its options.\n");
        return argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    // The forest does no BLAS work: stop OpenBLAS's threads, which would
    // spin beside the forest's for the first 0.1 s (ml/blas_info.h).
    blas_stop_threads();
    if (strcmp(argv[0], "fit") == 0)
        return forest_fit(argc - 1, argv + 1);
    if (strcmp(argv[0], "predict") == 0)
        return forest_predict(argc - 1, argv + 1);
    if (strcmp(argv[0], "cv") == 0)
        return forest_cv(argc - 1, argv + 1);
    char msg[160];
    snprintf(msg, sizeof msg, "unknown subcommand \"%s\" (expected fit, predict or cv)", argv[0]);
    return cli_usage_error("forest", msg);
}
