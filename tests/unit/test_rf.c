// test_rf.c: the random forest: split search on hand-computed data, each
// stopping rule, probabilities, determinism across thread counts, OOB score
// against a brute-force count, cost-complexity pruning, parameters, and the
// model file (round trip and every load error).
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/cn_rand.h"
#include "ml/rf.h"
#include "tests/support/support.h"

// Toy data: x0 = 1..8, y = 0 0 1 0 1 1 1 1; x1 = 0 1 0 1 0 1 0 1.
// Gini: root 30/64 = 0.46875; the best split is x0 <= 4.5 with children
// (3,1) gini 0.375 and (0,4) gini 0, decrease 0.46875 - 4/8 * 0.375 =
// 0.28125. x1 only reaches a decrease of 0.03125 and x0 <= 2.5 0.260417.
// Entropy (bits): root 0.954434; x0 <= 4.5 gives 0.954434 - 0.5 * 0.811278
// = 0.548795, better than x0 <= 2.5 (0.466917).
static ds_dataset *toy(void)
{
    static const float x0[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const float x1[8] = {0, 1, 0, 1, 0, 1, 0, 1};
    static const int32_t y[8] = {0, 0, 1, 0, 1, 1, 1, 1};
    ds_dataset *d = ds_dataset_new(8, 2, 1);
    for (int i = 0; i < 8; i++) {
        d->x[i * 2] = x0[i];
        d->x[i * 2 + 1] = x1[i];
        d->y[i] = y[i];
    }
    d->n_classes = 2;
    d->class_values = malloc(2 * sizeof(int32_t));
    d->class_values[0] = 0;
    d->class_values[1] = 1;
    return d;
}

// random_data makes n rows of nf features in a few classes with signal.
static ds_dataset *random_data(size_t n, size_t nf, int k, uint64_t seed)
{
    ds_dataset *d = ds_dataset_new(n, nf, 1);
    cn_rng r;
    cn_rng_seed(&r, seed, 0);
    for (size_t i = 0; i < n; i++) {
        int c = (int)cn_rng_below(&r, (uint64_t)k);
        d->y[i] = c;
        for (size_t j = 0; j < nf; j++) {
            double v = cn_rng_normal(&r) + (j % (size_t)k == (size_t)c ? 1.5 : 0.0);
            d->x[i * nf + j] = j % 3 == 2 ? (float)floor(v * 2) : (float)v;
        }
    }
    d->n_classes = k;
    d->class_values = malloc((size_t)k * sizeof(int32_t));
    for (int c = 0; c < k; c++)
        d->class_values[c] = 10 + c;
    return d;
}

// one_hot makes n rows like the forest-cover data: a one-hot group of 4
// mixed columns (each about a quarter of the rows), a one-hot group of 20
// rare columns, and 2 continuous columns, in 3 classes with signal in all.
static ds_dataset *one_hot(size_t n, uint64_t seed)
{
    const size_t nf = 26;
    ds_dataset *d = ds_dataset_new(n, nf, 1);
    cn_rng r;
    cn_rng_seed(&r, seed, 0);
    for (size_t i = 0; i < n; i++) {
        int c = (int)cn_rng_below(&r, 3);
        d->y[i] = c;
        float *x = d->x + i * nf;
        memset(x, 0, nf * sizeof *x);
        x[(cn_rng_below(&r, 2) ? (uint64_t)c : cn_rng_below(&r, 4))] = 1;
        x[4 + (cn_rng_below(&r, 3) ? (uint64_t)(c * 3) : cn_rng_below(&r, 20))] = 1;
        x[24] = (float)(cn_rng_normal(&r) + c);
        x[25] = (float)floor(cn_rng_normal(&r) * 4);
    }
    d->n_classes = 3;
    d->class_values = malloc(3 * sizeof(int32_t));
    for (int c = 0; c < 3; c++)
        d->class_values[c] = c;
    return d;
}

static rf_params single_tree(void)
{
    rf_params p = rf_params_default();
    p.n_estimators = 1;
    p.bootstrap = false;
    p.max_features = RF_MAXF_ALL;
    p.threads = 1;
    return p;
}

static rf_forest *fit(const rf_params *p, const ds_dataset *d)
{
    char err[CN_ERRBUF_LEN];
    rf_forest *f = NULL;
    cn_err e = rf_forest_fit(p, d, NULL, 0, &f, err, sizeof err);
    ck_assert_msg(e == CN_OK, "%s", err);
    return f;
}

static double decrease(const rf_forest *f, int t, int node)
{
    rf_node_info n, l, r;
    ck_assert_int_eq(rf_forest_tree_node(f, t, node, &n), CN_OK);
    ck_assert_int_eq(rf_forest_tree_node(f, t, n.left, &l), CN_OK);
    ck_assert_int_eq(rf_forest_tree_node(f, t, n.right, &r), CN_OK);
    return n.impurity - l.weighted_n / n.weighted_n * l.impurity -
           r.weighted_n / n.weighted_n * r.impurity;
}

// Every node's sample count, weight and class probabilities equal a brute
// force over the training rows that reach it (fractional class weights, so
// the class sums of two-valued features are checked in every scan path:
// bit sets at large nodes, row by row at small ones).
START_TEST(test_rf_node_statistics_match_brute_force_on_one_hot_data)
{
    ds_dataset *d = one_hot(3000, 7);
    rf_params p = single_tree();
    p.class_weight = RF_CW_BALANCED;
    p.max_features = RF_MAXF_SQRT;
    rf_forest *f = fit(&p, d);
    int nn = rf_forest_tree_n_nodes(f, 0);
    size_t *cnt = calloc((size_t)nn, sizeof *cnt);
    double *cw = calloc((size_t)nn * 3, sizeof *cw);
    double n_c[3] = {0, 0, 0};
    for (size_t i = 0; i < d->n_rows; i++)
        n_c[d->y[i]]++;
    for (size_t i = 0; i < d->n_rows; i++) {
        const float *x = d->x + i * d->n_features;
        double w = (double)d->n_rows / (3.0 * n_c[d->y[i]]);
        int node = 0;
        for (;;) {
            rf_node_info in;
            ck_assert_int_eq(rf_forest_tree_node(f, 0, node, &in), CN_OK);
            cnt[node]++;
            cw[(size_t)node * 3 + (size_t)d->y[i]] += w;
            if (in.feature < 0)
                break;
            node = x[in.feature] <= in.threshold ? in.left : in.right;
        }
    }
    for (int i = 0; i < nn; i++) {
        rf_node_info in;
        rf_forest_tree_node(f, 0, i, &in);
        ck_assert_uint_eq(in.n_samples, cnt[i]);
        double tot = cw[i * 3] + cw[i * 3 + 1] + cw[i * 3 + 2];
        ck_assert_double_eq_tol(in.weighted_n, tot, 1e-9 * tot);
        for (int c = 0; c < 3; c++)
            ck_assert_double_eq_tol(in.value[c], cw[i * 3 + c] / tot, 1e-6);
    }
    free(cnt);
    free(cw);
    rf_forest_free(f);
    ds_dataset_free(d);
}
END_TEST

// The predictions made while fitting (rows routed down each tree by
// partitioning) equal predicting each row afterwards.
START_TEST(test_rf_fit_predict_equals_predict_rows)
{
    ds_dataset *d = one_hot(4000, 8);
    rf_params p = rf_params_default();
    p.n_estimators = 15;
    p.threads = 2;
    size_t train[3000], eval[1000];
    for (size_t i = 0; i < 3000; i++)
        train[i] = i;
    for (size_t i = 0; i < 1000; i++)
        eval[i] = 3999 - 4 * (i % 250) - i / 250; // not in order
    int32_t pred[1000], want[1000];
    rf_forest *f = NULL;
    char err[CN_ERRBUF_LEN];
    ck_assert_int_eq(
        rf_forest_fit_predict(&p, d, train, 3000, eval, 1000, pred, &f, err, sizeof err), CN_OK);
    ck_assert_int_eq(rf_forest_predict_rows(f, d, eval, 1000, want), CN_OK);
    for (size_t i = 0; i < 1000; i++)
        ck_assert_int_eq(pred[i], want[i]);
    rf_forest_free(f);
    ds_dataset_free(d);
}
END_TEST

// Without a forest to keep (out NULL), each worker rebuilds its trees in one
// reused tree; the predictions must equal those of the kept forest, at one
// and two threads and with pruning (which replaces the tree's arrays).
START_TEST(test_rf_fit_predict_without_keeping_trees_predicts_the_same)
{
    ds_dataset *d = random_data(3000, 10, 4, 7);
    size_t train[2000], eval[1000];
    for (size_t i = 0; i < 2000; i++)
        train[i] = i;
    for (size_t i = 0; i < 1000; i++)
        eval[i] = 2000 + i;
    char err[CN_ERRBUF_LEN];
    for (int threads = 1; threads <= 2; threads++)
        for (int pruned = 0; pruned <= 1; pruned++) {
            rf_params p = rf_params_default();
            p.n_estimators = 12;
            p.threads = threads;
            p.seed = 3;
            p.ccp_alpha = pruned ? 0.002 : 0.0;
            int32_t kept[1000], reused[1000];
            rf_forest *f = NULL;
            ck_assert_int_eq(
                rf_forest_fit_predict(&p, d, train, 2000, eval, 1000, kept, &f, err, sizeof err),
                CN_OK);
            ck_assert_int_eq(rf_forest_fit_predict(&p, d, train, 2000, eval, 1000, reused, NULL,
                                                   err, sizeof err),
                             CN_OK);
            ck_assert_mem_eq(kept, reused, sizeof kept);
            rf_forest_free(f);
        }
    ds_dataset_free(d);
}
END_TEST

// Fitting several folds in one job (workers taking trees across folds, each
// fold's data prepared by whichever worker reaches it) predicts exactly what
// a separate forest per fold predicts, at any thread count. The folds differ
// in size and in rows (so each needs its own prepared data and scratch), and
// 7 trees do not divide evenly among the workers.
START_TEST(test_rf_fit_predict_folds_equals_a_forest_per_fold)
{
    ds_dataset *d = random_data(3000, 9, 3, 11);
    enum { NF = 4 };
    static size_t rows[NF][2500], evals[NF][1000];
    size_t n_rows[NF] = {1500, 2500, 1000, 0}, n_eval[NF] = {500, 500, 1000, 300};
    for (size_t i = 0; i < 2500; i++) {
        rows[0][i] = i;
        rows[1][i] = 500 + i;
        rows[2][i] = 3 * i;
    }
    for (size_t i = 0; i < 1000; i++) {
        evals[0][i] = 1500 + i % 500;
        evals[1][i] = i;
        evals[2][i] = 3 * i + 1;
        evals[3][i] = 2999 - 7 * (i % 300);
    }
    char err[CN_ERRBUF_LEN];
    for (int variant = 0; variant < 2; variant++) {
        rf_params p = rf_params_default();
        p.n_estimators = 7;
        p.seed = 5;
        if (variant == 1) {
            p.class_weight = RF_CW_BALANCED; // class weights are per fold
            p.max_samples_frac = 0.7;
            p.ccp_alpha = 0.001;
        }
        static int32_t want[NF][1000];
        for (int f = 0; f < NF; f++) {
            rf_forest *forest = NULL;
            ck_assert_int_eq(
                rf_forest_fit(&p, d, f == 3 ? NULL : rows[f], n_rows[f], &forest, err, sizeof err),
                CN_OK);
            ck_assert_int_eq(rf_forest_predict_rows(forest, d, evals[f], n_eval[f], want[f]),
                             CN_OK);
            rf_forest_free(forest);
        }
        for (int threads = 1; threads <= 3; threads++) {
            p.threads = threads;
            static int32_t pred[NF][1000];
            memset(pred, 0xff, sizeof pred);
            rf_fold folds[NF];
            for (int f = 0; f < NF; f++)
                folds[f] =
                    (rf_fold){f == 3 ? NULL : rows[f], n_rows[f], evals[f], n_eval[f], pred[f], -1};
            ck_assert_int_eq(rf_forest_fit_predict_folds(&p, d, folds, NF, err, sizeof err), CN_OK);
            for (int f = 0; f < NF; f++) {
                ck_assert_msg(memcmp(pred[f], want[f], n_eval[f] * sizeof(int32_t)) == 0,
                              "variant %d, %d threads, fold %d", variant, threads, f);
                ck_assert(folds[f].fit_seconds > 0);
            }
        }
    }
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_rf_fit_predict_folds_errors_name_the_fold)
{
    ds_dataset *d = random_data(100, 3, 2, 1);
    rf_params p = rf_params_default();
    p.n_estimators = 3;
    size_t train[50], eval[2] = {60, 100};
    for (size_t i = 0; i < 50; i++)
        train[i] = i;
    int32_t pred[2];
    rf_fold folds[2] = {{train, 50, eval, 1, pred, 0}, {train, 50, eval, 2, pred, 0}};
    char err[CN_ERRBUF_LEN];
    ck_assert_int_eq(rf_forest_fit_predict_folds(&p, d, folds, 0, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "no folds to fit (at least 1)");
    ck_assert_int_eq(rf_forest_fit_predict_folds(&p, d, folds, 2, err, sizeof err), CN_ERANGE);
    ck_assert_str_eq(err, "fold 1: evaluation row 100 out of range (100 rows)");
    folds[1].n_eval = 1;
    folds[0].n_rows = 0;
    ck_assert_int_eq(rf_forest_fit_predict_folds(&p, d, folds, 2, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "fold 0: no rows or no features to train on");
    folds[0].n_rows = 50;
    train[7] = 100;
    ck_assert_int_eq(rf_forest_fit_predict_folds(&p, d, folds, 2, err, sizeof err), CN_ERANGE);
    ck_assert_str_eq(err, "fold 0: row index 100 out of range (100 rows)");
    train[7] = 7;
    p.max_samples_n = 51;
    ck_assert_int_eq(rf_forest_fit_predict_folds(&p, d, folds, 2, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "fold 0: max_samples=51 is larger than the 50 rows");
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_rf_gini_root_split_matches_hand_computation)
{
    ds_dataset *d = toy();
    rf_params p = single_tree();
    rf_forest *f = fit(&p, d);
    rf_node_info root;
    ck_assert_int_eq(rf_forest_tree_node(f, 0, 0, &root), CN_OK);
    ck_assert_int_eq(root.feature, 0);
    ck_assert_double_eq(root.threshold, 4.5);
    ck_assert_double_eq_tol(root.impurity, 0.46875, 1e-12);
    ck_assert_double_eq_tol(decrease(f, 0, 0), 0.28125, 1e-12);
    ck_assert_uint_eq(root.n_samples, 8);
    ck_assert_int_eq(root.left, 1); // depth-first, left first
    // The pure right child (x0 > 4.5) is a leaf.
    rf_node_info r;
    rf_forest_tree_node(f, 0, root.right, &r);
    ck_assert_int_eq(r.feature, -1);
    ck_assert_float_eq(r.value[1], 1.0f);
    ck_assert_int_eq(rf_forest_tree_node(f, 0, 99, &r), CN_ERANGE);
    rf_forest_free(f);
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_rf_entropy_root_split_matches_hand_computation)
{
    ds_dataset *d = toy();
    rf_params p = single_tree();
    p.criterion = RF_ENTROPY;
    rf_forest *f = fit(&p, d);
    rf_node_info root;
    rf_forest_tree_node(f, 0, 0, &root);
    ck_assert_int_eq(root.feature, 0);
    ck_assert_double_eq(root.threshold, 4.5);
    ck_assert_double_eq_tol(root.impurity, 0.954434002924965, 1e-12);
    ck_assert_double_eq_tol(decrease(f, 0, 0), 0.548794940695398, 1e-9);
    rf_forest_free(f);
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_rf_full_tree_fits_training_data)
{
    ds_dataset *d = toy();
    rf_params p = single_tree();
    rf_forest *f = fit(&p, d);
    int32_t pred[8];
    rf_forest_predict(f, d->x, 8, pred);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(pred[i], d->y[i]);
    rf_forest_free(f);
    ds_dataset_free(d);
}
END_TEST

static int max_depth_of(const rf_forest *f, int t, int node, int depth)
{
    rf_node_info n;
    rf_forest_tree_node(f, t, node, &n);
    if (n.feature < 0)
        return depth;
    int a = max_depth_of(f, t, n.left, depth + 1), b = max_depth_of(f, t, n.right, depth + 1);
    return a > b ? a : b;
}

START_TEST(test_rf_stopping_rules)
{
    ds_dataset *d = random_data(400, 6, 3, 7);
    rf_params p = rf_params_default();
    p.n_estimators = 5;
    p.threads = 1;
    // max_depth
    p.max_depth = 3;
    rf_forest *f = fit(&p, d);
    for (int t = 0; t < 5; t++)
        ck_assert_int_le(max_depth_of(f, t, 0, 0), 3);
    rf_forest_free(f);
    p.max_depth = 0;
    // min_samples_split: no node with fewer samples is split.
    p.min_samples_split = 40;
    f = fit(&p, d);
    for (int t = 0; t < 5; t++)
        for (int i = 0; i < rf_forest_tree_n_nodes(f, t); i++) {
            rf_node_info n;
            rf_forest_tree_node(f, t, i, &n);
            if (n.feature >= 0)
                ck_assert_uint_ge(n.n_samples, 40);
        }
    rf_forest_free(f);
    p.min_samples_split = 2;
    // min_samples_leaf: every leaf keeps at least that many samples.
    p.min_samples_leaf = 9;
    f = fit(&p, d);
    for (int t = 0; t < 5; t++)
        for (int i = 0; i < rf_forest_tree_n_nodes(f, t); i++) {
            rf_node_info n;
            rf_forest_tree_node(f, t, i, &n);
            ck_assert_uint_ge(n.n_samples, 9);
        }
    rf_forest_free(f);
    ds_dataset_free(d);
    // min_impurity_decrease on the toy data: the root's 0.28125 is the cut.
    d = toy();
    p = single_tree();
    p.min_impurity_decrease = 0.29;
    f = fit(&p, d);
    ck_assert_int_eq(rf_forest_tree_n_nodes(f, 0), 1);
    rf_forest_free(f);
    p.min_impurity_decrease = 0.28;
    f = fit(&p, d);
    ck_assert_int_gt(rf_forest_tree_n_nodes(f, 0), 1);
    // Each split of this tree has a weighted decrease >= 0.28.
    for (int i = 0; i < rf_forest_tree_n_nodes(f, 0); i++) {
        rf_node_info n;
        rf_forest_tree_node(f, 0, i, &n);
        if (n.feature >= 0)
            ck_assert_double_ge(n.weighted_n / 8.0 * decrease(f, 0, i), 0.28);
    }
    rf_forest_free(f);
    // min_samples_split larger than the data: a single leaf.
    p.min_impurity_decrease = 0;
    p.min_samples_split = 9;
    f = fit(&p, d);
    ck_assert_int_eq(rf_forest_tree_n_nodes(f, 0), 1);
    rf_forest_free(f);
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_rf_probabilities_sum_to_one)
{
    ds_dataset *d = random_data(300, 5, 4, 3);
    rf_params p = rf_params_default();
    p.n_estimators = 15;
    p.max_depth = 4;
    rf_forest *f = fit(&p, d);
    double *pr = malloc(300 * 4 * sizeof *pr);
    rf_forest_predict_proba(f, d->x, 300, pr);
    int32_t *pred = malloc(300 * sizeof *pred);
    rf_forest_predict(f, d->x, 300, pred);
    for (int i = 0; i < 300; i++) {
        double s = 0;
        int best = 0;
        for (int c = 0; c < 4; c++) {
            ck_assert_double_ge(pr[i * 4 + c], 0);
            s += pr[i * 4 + c];
            if (pr[i * 4 + c] > pr[i * 4 + best])
                best = c;
        }
        ck_assert_double_eq_tol(s, 1.0, 1e-6);
        ck_assert_int_eq(pred[i], best);
    }
    free(pr);
    free(pred);
    rf_forest_free(f);
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_rf_same_seed_same_forest_for_any_thread_count)
{
    ds_dataset *d = random_data(500, 8, 3, 11);
    int32_t a[500], b[500], c[500];
    rf_params p = rf_params_default();
    p.n_estimators = 12;
    p.seed = 42;
    p.threads = 1;
    rf_forest *f1 = fit(&p, d);
    p.threads = 3;
    rf_forest *f2 = fit(&p, d);
    rf_forest *f3 = fit(&p, d);
    rf_forest_predict(f1, d->x, 500, a);
    rf_forest_predict(f2, d->x, 500, b);
    rf_forest_predict(f3, d->x, 500, c);
    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert_mem_eq(a, c, sizeof a);
    for (int t = 0; t < 12; t++)
        ck_assert_int_eq(rf_forest_tree_n_nodes(f1, t), rf_forest_tree_n_nodes(f2, t));
    rf_forest_free(f3);
    // A different seed gives a different forest.
    p.seed = 43;
    f3 = fit(&p, d);
    ck_assert_uint_ne(rf_forest_n_nodes(f3), rf_forest_n_nodes(f1));
    rf_forest_free(f1);
    rf_forest_free(f2);
    rf_forest_free(f3);
    ds_dataset_free(d);
}
END_TEST

static int leaf_of(const rf_forest *f, int t, const float *x)
{
    rf_node_info n;
    int i = 0;
    for (;;) {
        rf_forest_tree_node(f, t, i, &n);
        if (n.feature < 0)
            return i;
        i = (double)x[n.feature] <= n.threshold ? n.left : n.right;
    }
}

START_TEST(test_rf_oob_score_matches_brute_force)
{
    size_t n = 300;
    int k = 3, trees = 10;
    ds_dataset *d = random_data(n, 6, k, 5);
    rf_params p = rf_params_default();
    p.n_estimators = trees;
    p.oob_score = true;
    p.seed = 9;
    rf_forest *f = fit(&p, d);
    double got;
    ck_assert_int_eq(rf_forest_oob_score(f, &got), CN_OK);
    // Replay each tree's bootstrap (rf.h's randomness contract) and vote.
    double *acc = calloc(n * (size_t)k, sizeof *acc);
    unsigned *cnt = malloc(n * sizeof *cnt);
    for (int t = 0; t < trees; t++) {
        cn_rng r;
        cn_rng_seed(&r, 9, (uint64_t)t);
        memset(cnt, 0, n * sizeof *cnt);
        for (size_t i = 0; i < n; i++)
            cnt[cn_rng_below(&r, n)]++;
        for (size_t i = 0; i < n; i++) {
            if (cnt[i])
                continue;
            rf_node_info leaf;
            rf_forest_tree_node(f, t, leaf_of(f, t, d->x + i * 6), &leaf);
            for (int c = 0; c < k; c++)
                acc[i * k + c] += leaf.value[c];
        }
    }
    size_t hit = 0, scored = 0;
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        int best = 0;
        for (int c = 0; c < k; c++) {
            s += acc[i * k + c];
            if (acc[i * k + c] > acc[i * k + best])
                best = c;
        }
        if (s > 0) {
            scored++;
            hit += best == d->y[i];
        }
    }
    ck_assert_uint_gt(scored, n / 2);
    ck_assert_double_eq_tol(got, (double)hit / (double)scored, 1e-12);
    free(acc);
    free(cnt);
    rf_forest_free(f);
    // Without oob_score, asking for it is a state error.
    p.oob_score = false;
    f = fit(&p, d);
    ck_assert_int_eq(rf_forest_oob_score(f, &got), CN_ESTATE);
    rf_forest_free(f);
    ds_dataset_free(d);
}
END_TEST

// Effective alpha of each internal node of tree 0 (sklearn's weakest link).
static double min_effective_alpha(const rf_forest *f, int *count_internal)
{
    int n = rf_forest_tree_n_nodes(f, 0);
    double *rn = malloc((size_t)n * sizeof *rn), *rb = malloc((size_t)n * sizeof *rb);
    int *lv = malloc((size_t)n * sizeof *lv);
    rf_node_info root;
    rf_forest_tree_node(f, 0, 0, &root);
    double best = INFINITY;
    *count_internal = 0;
    for (int i = n - 1; i >= 0; i--) {
        rf_node_info x;
        rf_forest_tree_node(f, 0, i, &x);
        rn[i] = x.impurity * x.weighted_n / root.weighted_n;
        if (x.feature < 0) {
            rb[i] = rn[i];
            lv[i] = 1;
        } else {
            rb[i] = rb[x.left] + rb[x.right];
            lv[i] = lv[x.left] + lv[x.right];
            double a = (rn[i] - rb[i]) / (lv[i] - 1);
            best = a < best ? a : best;
            (*count_internal)++;
        }
    }
    free(rn);
    free(rb);
    free(lv);
    return best;
}

START_TEST(test_rf_ccp_alpha_prunes_weakest_links)
{
    ds_dataset *d = random_data(200, 4, 2, 21);
    rf_params p = single_tree();
    rf_forest *full = fit(&p, d);
    int internal;
    double a1 = min_effective_alpha(full, &internal);
    ck_assert_int_gt(internal, 3);
    // alpha just below the weakest link: nothing is pruned.
    p.ccp_alpha = a1 * 0.999;
    rf_forest *same = fit(&p, d);
    ck_assert_int_eq(rf_forest_tree_n_nodes(same, 0), rf_forest_tree_n_nodes(full, 0));
    // alpha at the weakest link: it goes, and what remains has every
    // effective alpha above alpha.
    p.ccp_alpha = a1 * 1.001;
    rf_forest *pruned = fit(&p, d);
    ck_assert_int_lt(rf_forest_tree_n_nodes(pruned, 0), rf_forest_tree_n_nodes(full, 0));
    int internal2;
    double a2 = min_effective_alpha(pruned, &internal2);
    ck_assert_double_gt(a2, p.ccp_alpha);
    // The root of the pruned tree is the root of the full tree.
    rf_node_info r1, r2;
    rf_forest_tree_node(full, 0, 0, &r1);
    rf_forest_tree_node(pruned, 0, 0, &r2);
    ck_assert_int_eq(r1.feature, r2.feature);
    ck_assert_double_eq(r1.threshold, r2.threshold);
    // A huge alpha leaves only the root.
    p.ccp_alpha = 10;
    rf_forest *stump = fit(&p, d);
    ck_assert_int_eq(rf_forest_tree_n_nodes(stump, 0), 1);
    rf_forest_free(full);
    rf_forest_free(same);
    rf_forest_free(pruned);
    rf_forest_free(stump);
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_rf_feature_importances_normalized_and_informative)
{
    ds_dataset *d = toy();
    rf_params p = single_tree();
    p.max_depth = 1;
    rf_forest *f = fit(&p, d);
    double imp[2];
    rf_forest_feature_importances(f, imp);
    ck_assert_double_eq_tol(imp[0], 1.0, 1e-12);
    ck_assert_double_eq_tol(imp[1], 0.0, 1e-12);
    rf_forest_free(f);
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_rf_extra_trees_and_class_weights_train)
{
    ds_dataset *d = random_data(600, 6, 3, 17);
    char err[CN_ERRBUF_LEN];
    rf_params p = rf_params_default();
    p.n_estimators = 20;
    ck_assert_int_eq(rf_params_set(&p, "splitter", "random", err, sizeof err), CN_OK);
    ck_assert_int_eq(rf_params_set(&p, "class_weight", "balanced_subsample", err, sizeof err),
                     CN_OK);
    rf_forest *f = fit(&p, d);
    int32_t *pred = malloc(600 * sizeof *pred);
    rf_forest_predict(f, d->x, 600, pred);
    int hit = 0;
    for (int i = 0; i < 600; i++)
        hit += pred[i] == d->y[i];
    ck_assert_int_gt(hit, 500); // training accuracy of a deep forest
    free(pred);
    rf_forest_free(f);
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_rf_params_set_and_errors)
{
    rf_params p = rf_params_default();
    char err[CN_ERRBUF_LEN];
    ck_assert_int_eq(p.n_estimators, 100);
    ck_assert_int_eq(p.max_features, RF_MAXF_SQRT);
    ck_assert(p.bootstrap);
    ck_assert_int_eq(rf_params_set(&p, "max_depth", "none", err, sizeof err), CN_OK);
    ck_assert_int_eq(p.max_depth, 0);
    ck_assert_int_eq(rf_params_set(&p, "max_features", "0.5", err, sizeof err), CN_OK);
    ck_assert_int_eq(p.max_features, RF_MAXF_FRACTION);
    ck_assert_int_eq(rf_params_set(&p, "max_features", "7", err, sizeof err), CN_OK);
    ck_assert_int_eq(p.max_features_n, 7);
    ck_assert_int_eq(rf_params_set(&p, "max_samples", "0.8", err, sizeof err), CN_OK);
    ck_assert_int_eq(rf_params_set(&p, "criterion", "log_loss", err, sizeof err), CN_OK);
    ck_assert_int_eq(p.criterion, RF_ENTROPY);
    ck_assert_int_eq(rf_params_set(&p, "n_jobs", "-1", err, sizeof err), CN_OK);
    ck_assert_int_eq(p.threads, 0);
    rf_params before = p;
    ck_assert_int_eq(rf_params_set(&p, "max_depht", "3", err, sizeof err), CN_EINVAL);
    ck_assert_msg(strstr(err, "unknown forest parameter \"max_depht\"") != NULL, "%s", err);
    ck_assert_int_eq(rf_params_set(&p, "criterion", "gain", err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "forest parameter criterion: \"gain\" is not allowed (allowed: "
                          "gini|entropy|log_loss)");
    ck_assert_int_eq(rf_params_set(&p, "n_estimators", "0", err, sizeof err), CN_EINVAL);
    ck_assert_int_eq(rf_params_set(&p, "bootstrap", "maybe", err, sizeof err), CN_EINVAL);
    ck_assert_int_eq(rf_params_set(&p, "ccp_alpha", "-1", err, sizeof err), CN_EINVAL);
    ck_assert_int_eq(rf_params_set(&p, "max_features", "1.5", err, sizeof err), CN_EINVAL);
    ck_assert_mem_eq(&p, &before, sizeof p);
    // JSON: numbers, strings, booleans, null.
    rf_params q = rf_params_default();
    ck_assert_int_eq(rf_params_from_json_text(&q,
                                              "{\"n_estimators\": 300, \"max_depth\": null, "
                                              "\"bootstrap\": false, \"max_features\": \"log2\", "
                                              "\"ccp_alpha\": 0.001}",
                                              "p.json", err, sizeof err),
                     CN_OK);
    ck_assert_int_eq(q.n_estimators, 300);
    ck_assert(!q.bootstrap);
    ck_assert_int_eq(q.max_features, RF_MAXF_LOG2);
    ck_assert_double_eq(q.ccp_alpha, 0.001);
    ck_assert_int_eq(rf_params_from_json_text(&q, "{\"depth\": 3}", "p.json", err, sizeof err),
                     CN_EINVAL);
    ck_assert_msg(strncmp(err, "p.json: unknown forest parameter \"depth\"", 40) == 0, "%s", err);
    ck_assert_int_eq(
        rf_params_from_json_text(&q, "{\"max_depth\": [1]}", "p.json", err, sizeof err), CN_EINVAL);
    ck_assert_int_eq(rf_params_from_json_text(&q, "{nope", "p.json", err, sizeof err), CN_EFORMAT);
    cJSON *arr = cJSON_CreateArray();
    ck_assert_int_eq(rf_params_from_json(&q, arr, err, sizeof err), CN_EINVAL);
    cJSON_Delete(arr);
    // Formatting round-trips through JSON.
    cn_buf b;
    cn_buf_init(&b);
    rf_params_format(&q, &b);
    rf_params r = rf_params_default();
    ck_assert_int_eq(rf_params_from_json_text(&r, b.data, "fmt", err, sizeof err), CN_OK);
    ck_assert_int_eq(r.n_estimators, 300);
    ck_assert_int_eq(r.max_features, RF_MAXF_LOG2);
    ck_assert(!r.bootstrap);
    cn_buf_fini(&b);
    // A fraction of 1.0 stays a fraction (not one feature / one sample).
    ck_assert_int_eq(rf_params_set(&q, "max_features", "1.0", err, sizeof err), CN_OK);
    ck_assert_int_eq(rf_params_set(&q, "max_samples", "1.0", err, sizeof err), CN_OK);
    cn_buf_init(&b);
    rf_params_format(&q, &b);
    r = rf_params_default();
    ck_assert_int_eq(rf_params_from_json_text(&r, b.data, "fmt", err, sizeof err), CN_OK);
    ck_assert_int_eq(r.max_features, RF_MAXF_FRACTION);
    ck_assert_double_eq(r.max_features_frac, 1.0);
    ck_assert_double_eq(r.max_samples_frac, 1.0);
    ck_assert_uint_eq(r.max_samples_n, 0);
    cn_buf_fini(&b);
}
END_TEST

START_TEST(test_rf_fit_errors)
{
    ds_dataset *d = toy();
    rf_forest *f = NULL;
    char err[CN_ERRBUF_LEN];
    rf_params p = rf_params_default();
    p.max_features = RF_MAXF_INT;
    p.max_features_n = 3;
    ck_assert_int_eq(rf_forest_fit(&p, d, NULL, 0, &f, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "max_features=3 is larger than the number of features (2)");
    p = rf_params_default();
    size_t rows[2] = {0, 8};
    ck_assert_int_eq(rf_forest_fit(&p, d, rows, 2, &f, err, sizeof err), CN_ERANGE);
    p.n_estimators = 0;
    ck_assert_int_eq(rf_forest_fit(&p, d, NULL, 0, &f, err, sizeof err), CN_EINVAL);
    p = rf_params_default();
    p.max_samples_n = 9;
    ck_assert_int_eq(rf_forest_fit(&p, d, NULL, 0, &f, err, sizeof err), CN_EINVAL);
    ck_assert_ptr_null(f);
    free(d->y);
    d->y = NULL;
    p = rf_params_default();
    ck_assert_int_eq(rf_forest_fit(&p, d, NULL, 0, &f, err, sizeof err), CN_EINVAL);
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_rf_model_round_trip_and_load_errors)
{
    ds_dataset *d = random_data(300, 5, 3, 23);
    rf_params p = rf_params_default();
    p.n_estimators = 7;
    p.oob_score = true;
    rf_forest *f = fit(&p, d);
    char dir[256], path[400], err[CN_ERRBUF_LEN];
    ts_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/m.cnf", dir);
    ck_assert_int_eq(rf_forest_save(f, path, err, sizeof err), CN_OK);
    rf_forest *g = NULL;
    ck_assert_int_eq(rf_forest_load(path, &g, err, sizeof err), CN_OK);
    int32_t a[300], b[300];
    rf_forest_predict(f, d->x, 300, a);
    rf_forest_predict(g, d->x, 300, b);
    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert_uint_eq(rf_forest_n_nodes(f), rf_forest_n_nodes(g));
    ck_assert_int_eq(rf_forest_class_values(g)[2], 12);
    ck_assert_int_eq(rf_forest_params(g)->n_estimators, 7);
    double o1, o2;
    ck_assert_int_eq(rf_forest_oob_score(g, &o2), CN_OK);
    rf_forest_oob_score(f, &o1);
    ck_assert_double_eq(o1, o2);

    cn_buf buf;
    cn_buf_init(&buf);
    ck_assert_int_eq(rf_forest_encode(f, &buf), CN_OK);
    unsigned char *m = malloc(buf.len);
    rf_forest *h = NULL;
    // Wrong magic.
    memcpy(m, buf.data, buf.len);
    m[0] = 'X';
    ck_assert_int_eq(rf_forest_decode(m, buf.len, &h, err, sizeof err), CN_EFORMAT);
    ck_assert_msg(strstr(err, "not a canopy forest model") == err, "%s", err);
    // Unsupported version.
    memcpy(m, buf.data, buf.len);
    m[4] = 9;
    ck_assert_int_eq(rf_forest_decode(m, buf.len, &h, err, sizeof err), CN_EVERSION);
    ck_assert_msg(strstr(err, "model format version 9 is not supported") == err, "%s", err);
    // Truncated.
    memcpy(m, buf.data, buf.len);
    ck_assert_int_eq(rf_forest_decode(m, buf.len - 100, &h, err, sizeof err), CN_EFORMAT);
    ck_assert_msg(strstr(err, "truncated model") == err, "%s", err);
    ck_assert_int_eq(rf_forest_decode(m, 10, &h, err, sizeof err), CN_EFORMAT);
    ck_assert_msg(strstr(err, "truncated model") == err, "%s", err);
    // A flipped byte in the payload.
    m[buf.len / 2] ^= 0x40;
    ck_assert_int_eq(rf_forest_decode(m, buf.len, &h, err, sizeof err), CN_EFORMAT);
    ck_assert_msg(strstr(err, "model checksum mismatch") == err, "%s", err);
    ck_assert_ptr_null(h);
    // Missing file; a file that is not a model names the path.
    char p2[400];
    snprintf(p2, sizeof p2, "%s/none.cnf", dir);
    ck_assert_int_eq(rf_forest_load(p2, &h, err, sizeof err), CN_ENOTFOUND);
    snprintf(p2, sizeof p2, "%s/junk.cnf", dir);
    ts_write_file(p2, "Id,Cover_Type\n1,2\n");
    ck_assert_int_eq(rf_forest_load(p2, &h, err, sizeof err), CN_EFORMAT);
    ck_assert_msg(strstr(err, p2) == err, "%s", err);
    free(m);
    cn_buf_fini(&buf);
    rf_forest_free(f);
    rf_forest_free(g);
    ds_dataset_free(d);
    ts_rmtree(dir);
}
END_TEST

START_TEST(test_rf_fit_on_row_subset_equals_fit_on_copy)
{
    ds_dataset *d = random_data(200, 4, 2, 31);
    size_t rows[100];
    for (int i = 0; i < 100; i++)
        rows[i] = (size_t)(2 * i + 1);
    ds_dataset *s = NULL;
    ck_assert_int_eq(ds_dataset_subset(d, rows, 100, &s), CN_OK);
    rf_params p = rf_params_default();
    p.n_estimators = 5;
    char err[CN_ERRBUF_LEN];
    rf_forest *a = NULL, *b = NULL;
    ck_assert_int_eq(rf_forest_fit(&p, d, rows, 100, &a, err, sizeof err), CN_OK);
    ck_assert_int_eq(rf_forest_fit(&p, s, NULL, 0, &b, err, sizeof err), CN_OK);
    int32_t pa[200], pb[200];
    rf_forest_predict(a, d->x, 200, pa);
    rf_forest_predict(b, d->x, 200, pb);
    ck_assert_mem_eq(pa, pb, sizeof pa);
    ck_assert_int_eq(rf_forest_predict_rows(a, d, rows, 100, pb), CN_OK);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(pb[i], pa[rows[i]]);
    ck_assert_int_eq(rf_forest_predict_rows(a, d, (size_t[]){500}, 1, pb), CN_ERANGE);
    // Predicting while fitting gives the same classes as predicting after.
    size_t others[100];
    for (int i = 0; i < 100; i++)
        others[i] = (size_t)(2 * i);
    int32_t during[100], after[100];
    rf_forest *c = NULL;
    p.threads = 2;
    ck_assert_int_eq(
        rf_forest_fit_predict(&p, d, rows, 100, others, 100, during, &c, err, sizeof err), CN_OK);
    ck_assert_int_eq(rf_forest_predict_rows(c, d, others, 100, after), CN_OK);
    ck_assert_mem_eq(during, after, sizeof during);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(after[i], pa[others[i]]);
    rf_forest_free(c);
    ck_assert_int_eq(
        rf_forest_fit_predict(&p, d, rows, 100, (size_t[]){200}, 1, during, &c, err, sizeof err),
        CN_ERANGE);
    ck_assert_ptr_null(c);
    rf_forest_free(a);
    rf_forest_free(b);
    ds_dataset_free(s);
    ds_dataset_free(d);
}
END_TEST

// pixels makes random_data look like image data: most features become
// integers 0..255 with many zeros and ties (1-byte codes), every fourth
// stays continuous (wider codes), so each column layout and each scan path
// of the split search is used.
static ds_dataset *pixels(size_t n, size_t nf, int k, uint64_t seed)
{
    ds_dataset *d = random_data(n, nf, k, seed);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < nf; j++) {
            float *x = d->x + i * nf + j;
            double v = floor(*x * 60.0 + 60.0);
            if (j % 4 != 3)
                *x = v < 0 ? 0.0f : v > 255 ? 255.0f : (float)v;
        }
    return d;
}

typedef struct vcw {
    float v;
    int c;
    double w;
} vcw;

static int vcw_cmp(const void *a, const void *b)
{
    float x = ((const vcw *)a)->v, y = ((const vcw *)b)->v;
    return x < y ? -1 : x > y;
}

static double gini_of(const double *cw, int k, double w)
{
    double sq = 0;
    for (int c = 0; c < k; c++)
        sq += cw[c] * cw[c];
    return w > 0 ? 1.0 - sq / (w * w) : 0.0;
}

// best_decrease returns the largest weighted gini decrease of any threshold
// of any feature over the m rows in e (sorted by the caller per feature).
static double best_decrease(const ds_dataset *d, const size_t *rows, size_t m, const double *w,
                            int k, vcw *e)
{
    double tot[8] = {0}, wt = 0, best = 0;
    for (size_t i = 0; i < m; i++) {
        tot[d->y[rows[i]]] += w[rows[i]];
        wt += w[rows[i]];
    }
    double imp = gini_of(tot, k, wt);
    for (size_t j = 0; j < d->n_features; j++) {
        for (size_t i = 0; i < m; i++)
            e[i] = (vcw){d->x[rows[i] * d->n_features + j], d->y[rows[i]], w[rows[i]]};
        qsort(e, m, sizeof *e, vcw_cmp);
        double left[8] = {0}, right[8], wl = 0;
        for (size_t i = 0; i + 1 < m; i++) {
            left[e[i].c] += e[i].w;
            wl += e[i].w;
            if (e[i].v == e[i + 1].v)
                continue;
            for (int c = 0; c < k; c++)
                right[c] = tot[c] - left[c];
            double dec =
                imp - wl / wt * gini_of(left, k, wl) - (wt - wl) / wt * gini_of(right, k, wt - wl);
            if (dec > best)
                best = dec;
        }
    }
    return best;
}

// check_every_split_is_best grows one tree on all features of d (k
// classes), without and then with balanced class weights, and checks that
// every split's gini decrease equals a brute force over every threshold of
// every feature on the rows that reach its node.
static void check_every_split_is_best(const ds_dataset *d, int k)
{
    const size_t n = d->n_rows;
    size_t *rows = malloc(n * sizeof *rows);
    double *w = malloc(n * sizeof *w);
    vcw *e = malloc(n * sizeof *e);
    double n_c[8] = {0};
    for (size_t i = 0; i < n; i++)
        n_c[d->y[i]]++;
    for (int weighted = 0; weighted < 2; weighted++) {
        rf_params p = single_tree();
        if (weighted)
            p.class_weight = RF_CW_BALANCED;
        for (size_t i = 0; i < n; i++)
            w[i] = weighted ? (double)n / (k * n_c[d->y[i]]) : 1.0;
        rf_forest *f = fit(&p, d);
        int nn = rf_forest_tree_n_nodes(f, 0), splits = 0;
        // Each row's path, once: the rows of node q are those whose path
        // passes through q.
        size_t *first = calloc((size_t)nn + 1, sizeof *first);
        for (int pass = 0; pass < 2; pass++) {
            size_t *fill = pass ? calloc((size_t)nn, sizeof *fill) : NULL;
            for (size_t i = 0; i < n; i++) {
                int q = 0;
                for (;;) {
                    if (pass)
                        rows[first[q] + fill[q]++] = i;
                    else
                        first[q + 1]++;
                    rf_node_info a;
                    rf_forest_tree_node(f, 0, q, &a);
                    if (a.feature < 0)
                        break;
                    q = d->x[i * d->n_features + (size_t)a.feature] <= a.threshold ? a.left
                                                                                   : a.right;
                }
            }
            if (pass == 0) {
                for (int q = 0; q < nn; q++)
                    first[q + 1] += first[q];
                rows = realloc(rows, (first[nn] ? first[nn] : 1) * sizeof *rows);
            }
            free(fill);
        }
        for (int node = 0; node < nn; node++) {
            rf_node_info in;
            ck_assert_int_eq(rf_forest_tree_node(f, 0, node, &in), CN_OK);
            size_t m = first[node + 1] - first[node];
            ck_assert_uint_eq(m, in.n_samples);
            if (in.feature < 0)
                continue;
            double want = best_decrease(d, rows + first[node], m, w, k, e);
            ck_assert_double_eq_tol(decrease(f, 0, node), want, 1e-9);
            splits++;
        }
        ck_assert_int_gt(splits, 100);
        free(first);
        rf_forest_free(f);
    }
    free(rows);
    free(w);
    free(e);
}

// Small nodes whose rows lie far apart read the row-major copy of the 1-byte
// codes, large ones the columns or class histograms; a code read from the
// wrong place would give a worse split.
START_TEST(test_rf_every_split_is_the_best_on_pixel_like_data)
{
    ds_dataset *d = pixels(2000, 10, 4, 5);
    check_every_split_is_best(d, 4);
    ds_dataset_free(d);
}
END_TEST

// Continuous features with more than 4,096 distinct values: nodes of up to
// 24 rows rank their keys, those of 25 to 32 rows sort them when the codes
// span 4,096 or more, larger ones count them over their range or sort them
// when it is wider than 65,535.
START_TEST(test_rf_every_split_is_the_best_on_wide_continuous_data)
{
    // Two informative columns and two of noise: a noise column keeps codes
    // far apart in every node, small ones included.
    ds_dataset *d = random_data(9000, 4, 3, 11);
    cn_rng r;
    cn_rng_seed(&r, 12, 0);
    for (size_t i = 0; i < d->n_rows; i++) {
        float *x = d->x + i * 4;
        x[2] = (float)cn_rng_normal(&r);
        x[3] = (float)cn_rng_normal(&r) * 100.0f;
    }
    check_every_split_is_best(d, 3);
    ds_dataset_free(d);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("rf");
    TCase *t = tcase_create("rf");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_rf_gini_root_split_matches_hand_computation);
    tcase_add_test(t, test_rf_entropy_root_split_matches_hand_computation);
    tcase_add_test(t, test_rf_full_tree_fits_training_data);
    tcase_add_test(t, test_rf_stopping_rules);
    tcase_add_test(t, test_rf_probabilities_sum_to_one);
    tcase_add_test(t, test_rf_same_seed_same_forest_for_any_thread_count);
    tcase_add_test(t, test_rf_oob_score_matches_brute_force);
    tcase_add_test(t, test_rf_ccp_alpha_prunes_weakest_links);
    tcase_add_test(t, test_rf_feature_importances_normalized_and_informative);
    tcase_add_test(t, test_rf_extra_trees_and_class_weights_train);
    tcase_add_test(t, test_rf_params_set_and_errors);
    tcase_add_test(t, test_rf_fit_errors);
    tcase_add_test(t, test_rf_model_round_trip_and_load_errors);
    tcase_add_test(t, test_rf_fit_on_row_subset_equals_fit_on_copy);
    tcase_add_test(t, test_rf_node_statistics_match_brute_force_on_one_hot_data);
    tcase_add_test(t, test_rf_fit_predict_equals_predict_rows);
    tcase_add_test(t, test_rf_fit_predict_without_keeping_trees_predicts_the_same);
    tcase_add_test(t, test_rf_fit_predict_folds_equals_a_forest_per_fold);
    tcase_add_test(t, test_rf_fit_predict_folds_errors_name_the_fold);
    tcase_add_test(t, test_rf_every_split_is_the_best_on_pixel_like_data);
    tcase_add_test(t, test_rf_every_split_is_the_best_on_wide_continuous_data);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
