// test_mlp_fit.c: one MLP trial of a search (ml/mlp_fit.h): the
// hyper-parameters read from a trial's JSON with exact errors, a held-out
// split that is disjoint, complete and seeded, and a short training run that
// learns a separable problem (scored on the held-out rows only).
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_rand.h"
#include "ml/mlp_fit.h"
#include "tests/support/support.h"

static cn_err hp_from(const char *text, mlp_hparams *h, char *err, size_t n)
{
    cJSON *o = cJSON_Parse(text);
    ck_assert_ptr_nonnull(o);
    mlp_hparams_default(h);
    cn_err e = mlp_hparams_from_json(h, o, "trial 3", err, n);
    cJSON_Delete(o);
    return e;
}

START_TEST(test_mlp_hparams_read_a_trial_and_name_bad_keys)
{
    mlp_hparams h;
    char err[512] = "";
    ck_assert_int_eq(hp_from("{\"hidden\": [32, 16], \"lr\": 0.01, \"optimizer\": \"adam\","
                             " \"batch\": 16, \"epochs\": 3, \"seed\": 9}",
                             &h, err, sizeof err),
                     CN_OK);
    ck_assert_int_eq(h.n_hidden, 2);
    ck_assert_int_eq(h.hidden[0], 32);
    ck_assert_int_eq(h.hidden[1], 16);
    ck_assert_int_eq(h.batch, 16);
    ck_assert_int_eq(h.epochs, 3);
    ck_assert_uint_eq(h.seed, 9);
    ck_assert_int_eq(h.optim.kind, OPTIM_ADAM);
    ck_assert_float_eq_tol(h.optim.lr, 0.01f, 1e-7f);
    ck_assert_int_eq(hp_from("{\"hidden\": [32, 0]}", &h, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "trial 3: key \"hidden\": element 1 is not a width in 1..65536");
    ck_assert_int_eq(hp_from("{\"lrr\": 0.1}", &h, err, sizeof err), CN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "did you mean \"lr\""));
    ck_assert_int_eq(hp_from("{\"batch\": 0}", &h, err, sizeof err), CN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "batch"));
}
END_TEST

// blobs: n rows of 2 well separated Gaussian classes in 4 features.
static ds_dataset *blobs(size_t n)
{
    ds_dataset *d = ds_dataset_new(n, 4, 1);
    cn_rng r;
    cn_rng_seed(&r, 7, 0);
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i % 2);
        d->y[i] = c;
        for (int f = 0; f < 4; f++)
            d->x[i * 4 + f] = (float)((c ? 2.0 : -2.0) + 0.5 * cn_rng_normal(&r));
    }
    d->n_classes = 2;
    return d;
}

START_TEST(test_mlp_holdout_is_disjoint_complete_and_seeded)
{
    ds_dataset *d = blobs(100), *val = NULL, *val2 = NULL;
    size_t *rows = NULL, *rows2 = NULL, n = 0, n2 = 0;
    char err[256];
    ck_assert_int_eq(mlp_holdout(d, 0.2, 5, &rows, &n, &val, err, sizeof err), CN_OK);
    ck_assert_uint_eq(n, 80);
    ck_assert_uint_eq(val->n_rows, 20);
    // Every validation row is a training-set row that is not in rows: the
    // held-out features match exactly one row outside the training indices.
    int seen[100] = {0};
    for (size_t i = 0; i < n; i++)
        seen[rows[i]]++;
    size_t outside = 0;
    for (int i = 0; i < 100; i++) {
        ck_assert_int_le(seen[i], 1);
        outside += seen[i] == 0;
    }
    ck_assert_uint_eq(outside, 20);
    for (size_t v = 0; v < val->n_rows; v++) {
        int match = 0;
        for (int i = 0; i < 100; i++)
            match +=
                !seen[i] && memcmp(&val->x[v * 4], &d->x[(size_t)i * 4], 4 * sizeof(float)) == 0;
        ck_assert_int_eq(match, 1);
    }
    ck_assert_int_eq(mlp_holdout(d, 0.2, 5, &rows2, &n2, &val2, err, sizeof err), CN_OK);
    ck_assert_mem_eq(rows, rows2, n * sizeof *rows); // the same seed, the same split
    ds_dataset_free(val2);
    free(rows2);
    ck_assert_int_eq(mlp_holdout(d, 1.0, 5, &rows2, &n2, &val2, err, sizeof err), CN_EINVAL);
    ck_assert_ptr_null(val2);
    ck_assert_str_eq(err, "validation split: 1 of 100 rows leaves no training or no validation "
                          "row (use a fraction in (0, 1) and at least 2 rows)");
    ds_dataset_free(val);
    free(rows);
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_mlp_fit_eval_learns_separable_blobs_on_held_out_rows)
{
    ds_dataset *d = blobs(400), *val = NULL;
    size_t *rows = NULL, n = 0;
    char err[256];
    ck_assert_int_eq(mlp_holdout(d, 0.25, 1, &rows, &n, &val, err, sizeof err), CN_OK);
    mlp_hparams h;
    mlp_hparams_default(&h);
    h.hidden[0] = 8;
    h.n_hidden = 1;
    h.batch = 16;
    mlp_fit_result r;
    ck_assert_int_eq(mlp_fit_eval(&h, 3, 2, d, rows, n, val, 1, &r, err, sizeof err), CN_OK);
    ck_assert_double_ge(r.accuracy, 0.98); // the classes are 8 standard deviations apart
    ck_assert_double_ge(r.balanced_accuracy, 0.98);
    ck_assert_double_lt(r.train_loss, 0.2);
    h.hidden[0] = 0; // a width of 0 breaks the shape
    ck_assert_int_eq(mlp_fit_eval(&h, 1, 2, d, rows, n, val, 1, &r, err, sizeof err), CN_EINVAL);
    ck_assert_int_eq(mlp_fit_eval(&h, 1, 2, d, rows, 0, val, 1, &r, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "no training rows");
    ds_dataset_free(val);
    free(rows);
    ds_dataset_free(d);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("mlp_fit");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_mlp_hparams_read_a_trial_and_name_bad_keys);
    tcase_add_test(t, test_mlp_holdout_is_disjoint_complete_and_seeded);
    tcase_add_test(t, test_mlp_fit_eval_learns_separable_blobs_on_held_out_rows);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
