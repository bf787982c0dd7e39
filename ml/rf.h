// rf.h: CART random forests for classification, with scikit-learn's
// parameter names, meanings and defaults.
//
// A forest is fitted on a ds_dataset (optionally on a subset of its rows, so
// a cross-validation fold needs no copy), predicts class probabilities by
// averaging the leaf class distributions of its trees (soft vote), and can be
// saved to and loaded from a versioned binary file (rf_io.c). Trees are built
// in parallel on a thread pool; the result depends only on the parameters
// and the seed, never on the number of threads or on scheduling.
//
// Split search is exact: each feature is mapped once to the ranks of its
// distinct values, and a node either counts class histograms per distinct
// value (large nodes) or sorts its ranks (small nodes). Thresholds lie at the
// midpoint between adjacent distinct values, as in scikit-learn.
#ifndef CANOPY_RF_H
#define CANOPY_RF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cn_buf.h"
#include "common/cn_err.h"
#include "ml/ds.h"

struct cJSON;

typedef enum { RF_GINI, RF_ENTROPY } rf_criterion;
typedef enum { RF_SPLIT_BEST, RF_SPLIT_RANDOM } rf_splitter;
typedef enum {
    RF_MAXF_SQRT,     // floor(sqrt(p)), at least 1 (sklearn "sqrt", the default)
    RF_MAXF_LOG2,     // floor(log2(p)), at least 1
    RF_MAXF_INT,      // max_features_n features (must be <= p)
    RF_MAXF_FRACTION, // floor(max_features_frac * p), at least 1
    RF_MAXF_ALL,      // all p features (sklearn None)
} rf_max_features;
typedef enum { RF_CW_NONE, RF_CW_BALANCED, RF_CW_BALANCED_SUBSAMPLE } rf_class_weight;

// rf_params holds every knob of a forest. Start from rf_params_default().
// Thread rule: plain data, copied into the forest at fit time.
typedef struct rf_params {
    int n_estimators;             // number of trees (100)
    rf_criterion criterion;       // RF_GINI
    int max_depth;                // 0 = unlimited (sklearn None)
    int min_samples_split;        // 2: a node with fewer samples is a leaf
    int min_samples_leaf;         // 1: each child keeps at least this many samples
    double min_impurity_decrease; // 0: split only if N_t/N * (imp - N_l/N_t imp_l - N_r/N_t imp_r)
                                  // >= this
    rf_max_features max_features; // RF_MAXF_SQRT
    int max_features_n;           // for RF_MAXF_INT
    double max_features_frac;     // for RF_MAXF_FRACTION, in (0, 1]
    bool bootstrap;               // true: each tree sees a bootstrap sample
    size_t max_samples_n;         // bootstrap draws per tree; 0 = use max_samples_frac or n
    double max_samples_frac;      // fraction of n in (0, 1]; 0 = unset
    rf_class_weight class_weight; // RF_CW_NONE
    rf_splitter splitter;         // RF_SPLIT_BEST; RF_SPLIT_RANDOM = extremely randomized trees
    double ccp_alpha;             // 0: minimal cost-complexity pruning strength
    bool oob_score;               // false: compute the out-of-bag accuracy (needs bootstrap)
    uint64_t seed;                // 0: tree t uses the PRNG stream (seed, t)
    int threads;                  // 0 = number of online CPUs
} rf_params;

// rf_params_default returns scikit-learn's RandomForestClassifier defaults
// (plus seed 0 and threads 0).
rf_params rf_params_default(void);

// rf_params_set sets one parameter from its string form. Keys (sklearn
// names): n_estimators, criterion (gini|entropy|log_loss), max_depth (int,
// 0|none|null = unlimited), min_samples_split, min_samples_leaf,
// min_impurity_decrease, max_features (sqrt|log2|all|none|auto|INT|FRACTION),
// bootstrap (true|false), max_samples (INT|FRACTION|none), class_weight
// (none|balanced|balanced_subsample), splitter (best|random), ccp_alpha,
// oob_score, seed (alias random_state), threads (alias n_jobs; -1 = all).
// Errors: CN_EINVAL with err naming the key, the value and what is allowed;
// p is unchanged then.
cn_err rf_params_set(rf_params *p, const char *key, const char *value, char *err, size_t errlen);

// rf_params_from_json applies every member of the JSON object obj (numbers,
// strings, booleans, null) through rf_params_set. An integral JSON number
// reads as an integer, so write a fraction of 1 as "1.0" (a string) or "all". Errors as
// rf_params_set, plus CN_EINVAL if obj is not an object or a member has an array/object value. On
// error p may hold the members applied before the bad one.
cn_err rf_params_from_json(rf_params *p, const struct cJSON *obj, char *err, size_t errlen);

// rf_params_from_json_text parses text as a JSON object and applies it.
// origin names the source in messages. Errors: CN_EFORMAT (not JSON), as
// rf_params_from_json otherwise.
cn_err rf_params_from_json_text(rf_params *p, const char *text, const char *origin, char *err,
                                size_t errlen);

// rf_params_format appends p as a one-line JSON object with sklearn names.
cn_err rf_params_format(const rf_params *p, cn_buf *out);

// rf_params_validate checks ranges that rf_params_set cannot see when a
// caller fills the struct directly. Errors: CN_EINVAL with err set.
cn_err rf_params_validate(const rf_params *p, char *err, size_t errlen);

// A fitted forest. Opaque; immutable after rf_forest_fit or rf_forest_load,
// so any number of threads may predict with it concurrently.
typedef struct rf_forest rf_forest;

// rf_forest_fit trains a forest with parameters p on the rows rows[0..n_rows)
// of d (rows NULL = all rows of d, n_rows ignored). d must be labelled and is
// borrowed for the call only. The forest keeps d's class values, label name
// and feature names, so n_classes is d->n_classes even if a class is absent
// from the chosen rows. Blocks until all trees are built; uses p->threads
// threads. Errors: CN_EINVAL (unlabelled data, no rows, bad parameters, e.g.
// max_features larger than the number of features; err says which),
// CN_ERANGE (a row index out of bounds), CN_ENOMEM.
cn_err rf_forest_fit(const rf_params *p, const ds_dataset *d, const size_t *rows, size_t n_rows,
                     rf_forest **out, char *err, size_t errlen);

// rf_forest_fit_predict is rf_forest_fit plus predicting eval_rows[0..n_eval)
// of d into pred (class indices), done tree by tree right after each tree is
// built, while it is still in cache: the fast path for cross-validation.
// The predictions equal rf_forest_predict_rows' (class probabilities are
// sums of floats in double, exact in any order). Errors: as rf_forest_fit,
// plus CN_ERANGE for an evaluation row out of bounds. With out NULL the
// trees are not kept: each worker rebuilds one tree in the same memory,
// which saves allocating and faulting in every tree when only the
// predictions count (cross-validation); the predictions are the same.
cn_err rf_forest_fit_predict(const rf_params *p, const ds_dataset *d, const size_t *rows,
                             size_t n_rows, const size_t *eval_rows, size_t n_eval, int32_t *pred,
                             rf_forest **out, char *err, size_t errlen);

// rf_fold is one training set of rf_forest_fit_predict_folds (a fold of a
// cross-validation): fit on rows[0..n_rows) of d (rows NULL = all rows,
// n_rows ignored), predict eval_rows[0..n_eval) of d into pred.
typedef struct rf_fold {
    const size_t *rows;
    size_t n_rows;
    const size_t *eval_rows;
    size_t n_eval;
    int32_t *pred;      // OUT: (n_eval) class indices
    double fit_seconds; // OUT: wall time from taking the fold's first tree to finishing its last
} rf_fold;

// rf_forest_fit_predict_folds does rf_forest_fit_predict(p, d, rows,
// n_rows, eval_rows, n_eval, pred, NULL, ...) for each of folds[0..n_folds),
// with the same predictions, in one job on one pool of p->threads threads:
// workers take the trees of all folds in order, so no thread waits at the
// end of a fold, and a fold's data is prepared by the worker that reaches it
// first while the others go on with the trees of the fold before (a worker
// that would wait prepares the next fold meanwhile). A fold's prepared data
// is freed when its last tree is done, so usually two or three folds' data
// are in memory at once, not n_folds. Folds run concurrently, so their
// fit_seconds overlap. Errors: as rf_forest_fit_predict, err naming the
// fold; CN_EINVAL also for n_folds < 1.
cn_err rf_forest_fit_predict_folds(const rf_params *p, const ds_dataset *d, rf_fold *folds,
                                   int n_folds, char *err, size_t errlen);

// Randomness contract (tests and distributed workers rely on it): tree t
// draws from cn_rng_seed(&rng, seed, t) only. With bootstrap, its first
// n_draws values of cn_rng_below(&rng, n_rows) pick the sample (row i gets
// weight = number of times it was drawn, indices relative to rows[]); the
// same stream then drives feature draws. Tree t of every fold of
// rf_forest_fit_predict_folds draws from the same stream (seed, t), as a
// separate fit of the fold would. Trees are therefore identical for any
// thread count and for folds fitted together or one by one.

// rf_forest_free frees f. Accepts NULL.
void rf_forest_free(rf_forest *f);

// rf_forest_predict_proba writes the averaged class probabilities of rows
// x[0..n) ((n, n_features) row-major) into proba ((n, n_classes)); each row
// sums to 1 up to rounding.
void rf_forest_predict_proba(const rf_forest *f, const float *x, size_t n, double *proba);

// rf_forest_predict writes the class index (argmax of the probabilities,
// lowest index on ties, as numpy) of each row of x into out (n entries).
// Map an index to the original label with rf_forest_class_values().
void rf_forest_predict(const rf_forest *f, const float *x, size_t n, int32_t *out);

// rf_forest_predict_rows predicts rows[0..n) of d (rows NULL = all rows),
// writing class indices into out. d must have f's number of features.
// Errors: CN_EINVAL (feature count differs), CN_ERANGE (row out of bounds).
cn_err rf_forest_predict_rows(const rf_forest *f, const ds_dataset *d, const size_t *rows, size_t n,
                              int32_t *out);

// Accessors. The arrays returned are owned by f.
size_t rf_forest_n_features(const rf_forest *f);
int rf_forest_n_classes(const rf_forest *f);
const int32_t *rf_forest_class_values(const rf_forest *f);        // (n_classes) ascending
const char *rf_forest_label_name(const rf_forest *f);             // "" if unknown
const char *rf_forest_feature_name(const rf_forest *f, size_t j); // NULL if unknown
int rf_forest_n_trees(const rf_forest *f);
size_t rf_forest_n_nodes(const rf_forest *f); // total over trees
const rf_params *rf_forest_params(const rf_forest *f);

// rf_forest_oob_score writes the out-of-bag accuracy (over rows that were
// out of bag for at least one tree) into *out. Errors: CN_ESTATE if the
// forest was not fitted with oob_score and bootstrap.
cn_err rf_forest_oob_score(const rf_forest *f, double *out);

// rf_forest_feature_importances writes the impurity-based importances
// (mean decrease in impurity, each tree normalized, then the mean
// normalized to sum 1, as sklearn) into out (n_features entries).
void rf_forest_feature_importances(const rf_forest *f, double *out);

// rf_node_info describes one node of one tree, for inspection and tests.
typedef struct rf_node_info {
    int feature;        // split feature, -1 for a leaf
    double threshold;   // samples with x[feature] <= threshold go left
    int left, right;    // child node indices, -1 for a leaf
    size_t n_samples;   // distinct training rows that reached the node
    double weighted_n;  // their total weight (bootstrap counts x class weights)
    double impurity;    // gini or entropy (bits) of the node
    const float *value; // (n_classes) class probabilities at the node
} rf_node_info;

// rf_forest_tree_n_nodes returns the node count of tree t (0 <= t < n_trees).
int rf_forest_tree_n_nodes(const rf_forest *f, int t);
// rf_forest_tree_node fills info for node i of tree t; node 0 is the root and
// nodes are numbered depth-first, left child first. Errors: CN_ERANGE.
cn_err rf_forest_tree_node(const rf_forest *f, int t, int i, rf_node_info *info);

// rf_forest_encode appends the binary model (see docs/forest.md: magic
// "CNRF", version, payload, CRC-32) to out. Errors: CN_ENOMEM.
cn_err rf_forest_encode(const rf_forest *f, cn_buf *out);

// rf_forest_decode parses a model produced by rf_forest_encode. data is
// borrowed. Errors: CN_EFORMAT (wrong magic, truncated, checksum mismatch,
// inconsistent content), CN_EVERSION (a version this build cannot read),
// CN_ENOMEM; err says which and how to fix.
cn_err rf_forest_decode(const void *data, size_t len, rf_forest **out, char *err, size_t errlen);

// rf_forest_save writes f to path atomically (rf_forest_encode + write,
// fsync, rename). Errors: CN_EIO, CN_ENOMEM.
cn_err rf_forest_save(const rf_forest *f, const char *path, char *err, size_t errlen);

// rf_forest_load reads a model file written by rf_forest_save. Errors:
// CN_ENOTFOUND, CN_EIO, and those of rf_forest_decode, with err naming path.
cn_err rf_forest_load(const char *path, rf_forest **out, char *err, size_t errlen);

#endif
