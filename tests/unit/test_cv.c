// test_cv.c: stratified fold assignment (proportions, partition, order,
// seeds), fold indices, errors, and a quick cross-validation on real data.
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ml/csv.h"
#include "ml/cv.h"
#include "tests/support/support.h"

// 103 rows in 3 unbalanced classes, interleaved.
static void labels(int32_t *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = i % 7 == 0 ? 2 : (i % 3 == 0 ? 1 : 0);
}

START_TEST(test_cv_folds_keep_class_ratios_within_one)
{
    enum { N = 103, K = 5, C = 3 };
    int32_t y[N];
    labels(y, N);
    size_t total[C] = {0};
    for (int i = 0; i < N; i++)
        total[y[i]]++;
    for (int shuffle = 0; shuffle <= 1; shuffle++) {
        int fold_of[N];
        ck_assert_int_eq(cv_assign_folds(y, N, C, K, shuffle, 1, fold_of), CN_OK);
        size_t per[K][C];
        memset(per, 0, sizeof per);
        for (int i = 0; i < N; i++) {
            ck_assert_int_ge(fold_of[i], 0);
            ck_assert_int_lt(fold_of[i], K);
            per[fold_of[i]][y[i]]++;
        }
        for (int f = 0; f < K; f++)
            for (int c = 0; c < C; c++)
                ck_assert_double_le(fabs((double)per[f][c] - (double)total[c] / K), 1.0);
    }
}
END_TEST

START_TEST(test_cv_fold_indices_partition_the_rows)
{
    enum { N = 103, K = 4 };
    int32_t y[N];
    labels(y, N);
    int seen[N] = {0};
    for (int f = 0; f < K; f++) {
        size_t *tr, *te, ntr, nte;
        ck_assert_int_eq(cv_fold_indices(y, N, 3, K, f, true, 7, &tr, &ntr, &te, &nte), CN_OK);
        ck_assert_uint_eq(ntr + nte, N);
        for (size_t i = 0; i < nte; i++) {
            seen[te[i]]++;
            if (i > 0)
                ck_assert_uint_gt(te[i], te[i - 1]);
        }
        // Train = complement of test.
        char in_test[N] = {0};
        for (size_t i = 0; i < nte; i++)
            in_test[te[i]] = 1;
        for (size_t i = 0; i < ntr; i++)
            ck_assert(!in_test[tr[i]]);
        free(tr);
        free(te);
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(seen[i], 1);
}
END_TEST

START_TEST(test_cv_unshuffled_puts_first_rows_of_each_class_in_fold_zero)
{
    // Class 0: rows 0..9, class 1: rows 10..19 (as sklearn, shuffle=False).
    int32_t y[20];
    for (int i = 0; i < 20; i++)
        y[i] = i < 10 ? 0 : 1;
    int fold_of[20];
    ck_assert_int_eq(cv_assign_folds(y, 20, 2, 5, false, 0, fold_of), CN_OK);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(fold_of[i], (i % 10) / 2);
}
END_TEST

START_TEST(test_cv_shuffle_depends_on_seed_only)
{
    enum { N = 103 };
    int32_t y[N];
    labels(y, N);
    int a[N], b[N], c[N];
    cv_assign_folds(y, N, 3, 5, true, 3, a);
    cv_assign_folds(y, N, 3, 5, true, 3, b);
    cv_assign_folds(y, N, 3, 5, true, 4, c);
    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert(memcmp(a, c, sizeof a) != 0);
}
END_TEST

START_TEST(test_cv_errors)
{
    int32_t y[6] = {0, 1, 0, 1, 0, 1};
    int fold_of[6];
    size_t *tr, *te, ntr, nte;
    ck_assert_int_eq(cv_assign_folds(y, 6, 2, 1, true, 0, fold_of), CN_EINVAL);
    ck_assert_int_eq(cv_assign_folds(y, 6, 2, 7, true, 0, fold_of), CN_EINVAL);
    y[3] = 2;
    ck_assert_int_eq(cv_assign_folds(y, 6, 2, 2, true, 0, fold_of), CN_ERANGE);
    y[3] = 1;
    ck_assert_int_eq(cv_fold_indices(y, 6, 2, 3, 3, true, 0, &tr, &ntr, &te, &nte), CN_ERANGE);
    ck_assert_ptr_null(tr);
    ck_assert_ptr_null(te);
    ck_assert_int_eq(cv_fold_indices(y, 6, 2, 3, -1, true, 0, &tr, &ntr, &te, &nte), CN_ERANGE);
    ds_dataset *d = ds_dataset_new(6, 1, 0);
    for (int i = 0; i < 6; i++)
        d->x[i] = (float)i;
    rf_params p = rf_params_default();
    cv_result *r = NULL;
    char err[CN_ERRBUF_LEN];
    ck_assert_int_eq(cv_run(&p, d, 3, true, 0, &r, err, sizeof err), CN_EINVAL);
    ck_assert_ptr_null(r);
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_cv_run_on_3000_kaggle_rows)
{
    char path[512], err[CN_ERRBUF_LEN];
    ts_source_path("data/covertype-kaggle-train.csv.gz", path, sizeof path);
    csv_options o = csv_options_default();
    ds_dataset *all = NULL;
    ck_assert_int_eq(ds_load_csv(path, &o, &all, err, sizeof err), CN_OK);
    // The file is in UCI spatial order: take every 5th row for 3,024 rows.
    size_t rows[3024];
    for (size_t i = 0; i < 3024; i++)
        rows[i] = i * 5;
    ds_dataset *d = NULL;
    ck_assert_int_eq(ds_dataset_subset(all, rows, 3024, &d), CN_OK);
    ds_dataset_free(all);
    rf_params p = rf_params_default();
    p.n_estimators = 20;
    p.threads = 1;
    cv_result *r = NULL;
    ck_assert_int_eq(cv_run(&p, d, 3, true, 0, &r, err, sizeof err), CN_OK);
    ck_assert_int_eq(r->k, 3);
    // scikit-learn with these settings scores 0.748; require 0.72.
    ck_assert_msg(r->mean_accuracy > 0.72, "mean accuracy %.4f", r->mean_accuracy);
    for (int f = 0; f < 3; f++) {
        uint64_t total = 0;
        for (int i = 0; i < 49; i++)
            total += r->folds[f].confusion[i];
        ck_assert_uint_eq(total, r->folds[f].n_test);
        ck_assert_uint_eq(r->folds[f].n_train + r->folds[f].n_test, 3024);
        ck_assert_double_le(r->folds[f].balanced_accuracy, 1.0);
    }
    // cv_run fits all folds in one job; each (trial, fold) unit fitted on its
    // own gives the same confusion matrix, and so does cv_run on 2 threads.
    p.threads = 2;
    cv_result *r2 = NULL;
    ck_assert_int_eq(cv_run(&p, d, 3, true, 0, &r2, err, sizeof err), CN_OK);
    for (int f = 0; f < 3; f++) {
        cv_fold_result one;
        ck_assert_int_eq(cv_eval_fold(&p, d, 3, f, true, 0, &one, err, sizeof err), CN_OK);
        ck_assert_mem_eq(one.confusion, r->folds[f].confusion, 49 * sizeof(uint64_t));
        ck_assert_mem_eq(r2->folds[f].confusion, r->folds[f].confusion, 49 * sizeof(uint64_t));
        ck_assert_uint_eq(one.n_train, r->folds[f].n_train);
        ck_assert_uint_eq(one.n_test, r->folds[f].n_test);
        free(one.confusion);
    }
    cv_result_free(r2);
    cv_result_free(r);
    ds_dataset_free(d);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cv");
    TCase *t = tcase_create("cv");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_cv_folds_keep_class_ratios_within_one);
    tcase_add_test(t, test_cv_fold_indices_partition_the_rows);
    tcase_add_test(t, test_cv_unshuffled_puts_first_rows_of_each_class_in_fold_zero);
    tcase_add_test(t, test_cv_shuffle_depends_on_seed_only);
    tcase_add_test(t, test_cv_errors);
    tcase_add_test(t, test_cv_run_on_3000_kaggle_rows);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
