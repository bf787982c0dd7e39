// test_partition.c: every scheme puts every row in exactly one part, is
// deterministic for a seed, and has its scheme's shape (balanced IID, <= k
// labels, skew for small alpha, quantity skew sizes).
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_rand.h"
#include "ml/partition.h"
#include "tests/support/support.h"

#define N 2000
#define C 10

static int32_t y[N];

static void make_labels(void)
{
    cn_rng r;
    cn_rng_seed(&r, 77, 0);
    for (int i = 0; i < N; i++)
        y[i] = (int32_t)cn_rng_below(&r, C);
}

// covers_once checks that the parts hold every row exactly once, ascending.
static void assert_covers_once(const part_set *p, size_t n)
{
    unsigned char *seen = calloc(n, 1);
    size_t total = 0;
    for (int k = 0; k < p->n_parts; k++) {
        for (size_t i = 0; i < p->sizes[k]; i++) {
            size_t r = p->rows[k][i];
            ck_assert_uint_lt(r, n);
            ck_assert_int_eq(seen[r], 0);
            seen[r] = 1;
            if (i > 0)
                ck_assert_uint_lt(p->rows[k][i - 1], r);
        }
        total += p->sizes[k];
    }
    ck_assert_uint_eq(total, n);
    ck_assert_uint_eq(p->n_rows, n);
    free(seen);
}

static int same(const part_set *a, const part_set *b)
{
    if (a->n_parts != b->n_parts)
        return 0;
    for (int k = 0; k < a->n_parts; k++)
        if (a->sizes[k] != b->sizes[k] ||
            memcmp(a->rows[k], b->rows[k], a->sizes[k] * sizeof(size_t)) != 0)
            return 0;
    return 1;
}

static part_set *split(const part_cfg *c)
{
    part_set *p = NULL;
    char err[CN_ERRBUF_LEN] = "";
    cn_err rc = part_split(c, y, N, C, &p, err, sizeof err);
    ck_assert_msg(rc == CN_OK, "%s", err);
    return p;
}

START_TEST(test_every_scheme_covers_each_row_once_deterministically)
{
    make_labels();
    for (int kind = PART_IID; kind <= PART_CONTIGUOUS; kind++) {
        part_cfg c;
        part_cfg_default(&c, (part_kind)kind, 7);
        c.seed = 5;
        c.k = 3;
        part_set *a = split(&c), *b = split(&c);
        assert_covers_once(a, N);
        ck_assert_msg(same(a, b), "%s is not deterministic", part_kind_name((part_kind)kind));
        if (kind != PART_CONTIGUOUS) {
            c.seed = 6;
            part_set *d = split(&c);
            ck_assert_msg(!same(a, d), "%s ignores the seed", part_kind_name((part_kind)kind));
            part_set_free(d);
        }
        part_set_free(a);
        part_set_free(b);
    }
}
END_TEST

START_TEST(test_iid_sizes_differ_by_at_most_one)
{
    make_labels();
    part_cfg c;
    part_cfg_default(&c, PART_IID, 7);
    part_set *p = split(&c);
    for (int k = 0; k < 7; k++)
        ck_assert(p->sizes[k] == N / 7 || p->sizes[k] == N / 7 + 1);
    part_set_free(p);
    // No labels needed.
    part_set *q = NULL;
    ck_assert_int_eq(part_split(&c, NULL, 10, 0, &q, NULL, 0), CN_OK);
    assert_covers_once(q, 10);
    part_set_free(q);
}
END_TEST

START_TEST(test_klabels_parts_hold_at_most_k_labels)
{
    make_labels();
    for (int k = 1; k <= 3; k++) {
        part_cfg c;
        part_cfg_default(&c, PART_KLABELS, 10);
        c.k = k;
        part_set *p = split(&c);
        assert_covers_once(p, N);
        size_t counts[10 * C];
        part_class_counts(p, y, C, counts);
        for (int q = 0; q < 10; q++) {
            int labels = 0;
            for (int j = 0; j < C; j++)
                labels += counts[q * C + j] > 0;
            ck_assert_int_le(labels, k);
            ck_assert_int_ge(labels, 1);
        }
        part_set_free(p);
    }
    part_cfg c;
    part_cfg_default(&c, PART_KLABELS, 4);
    c.k = 2;
    part_set *p = NULL;
    char err[CN_ERRBUF_LEN];
    ck_assert_int_eq(part_split(&c, y, N, C, &p, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "klabels: 4 parts x 2 labels < 10 classes, so some rows would have no "
                          "part (raise k or the number of parts)");
    c.k = 11;
    ck_assert_int_eq(part_split(&c, y, N, C, &p, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "klabels: k=11 is not allowed (1..10 classes)");
    ck_assert_ptr_null(p);
}
END_TEST

// mean over parts of the largest class share: 1/C for perfectly IID parts.
static double mean_top_share(const part_set *p)
{
    size_t counts[10 * C];
    part_class_counts(p, y, C, counts);
    double s = 0.0;
    for (int q = 0; q < p->n_parts; q++) {
        size_t top = 0;
        for (int j = 0; j < C; j++)
            if (counts[q * C + j] > top)
                top = counts[q * C + j];
        s += (double)top / (double)p->sizes[q];
    }
    return s / p->n_parts;
}

START_TEST(test_dirichlet_small_alpha_is_skewed)
{
    make_labels();
    part_cfg c;
    part_cfg_default(&c, PART_DIRICHLET, 10);
    c.alpha = 0.1;
    c.min_size = 20;
    part_set *skewed = split(&c);
    for (int q = 0; q < 10; q++)
        ck_assert_uint_ge(skewed->sizes[q], 20);
    c.alpha = 1000.0;
    part_set *flat = split(&c);
    double s1 = mean_top_share(skewed), s2 = mean_top_share(flat);
    ck_assert_msg(s1 > 0.5, "alpha 0.1: mean top-class share %g", s1);
    ck_assert_msg(s2 < 0.2, "alpha 1000: mean top-class share %g", s2);
    part_set_free(skewed);
    part_set_free(flat);

    part_set *p = NULL;
    char err[CN_ERRBUF_LEN];
    c.min_size = 300;
    ck_assert_int_eq(part_split(&c, y, N, C, &p, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "dirichlet partition: 10 parts x min_size 300 > 2000 rows (lower "
                          "min_size)");
    c.alpha = 0.01;
    c.min_size = 200; // every part exactly N/n: strong skew cannot meet it
    c.max_tries = 3;
    ck_assert_int_eq(part_split(&c, y, N, C, &p, err, sizeof err), CN_ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "no draw in 3 tries gave every part >= 200 rows"));
    c.alpha = 0.0;
    ck_assert_int_eq(part_split(&c, y, N, C, &p, err, sizeof err), CN_EINVAL);
    ck_assert_int_eq(part_split(&c, NULL, N, C, &p, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "dirichlet partition needs labels");
    y[3] = C;
    c.alpha = 1.0;
    ck_assert_int_eq(part_split(&c, y, N, C, &p, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "partition: row 3 has class 10, outside [0, 10)");
    ck_assert_ptr_null(p);
}
END_TEST

START_TEST(test_quantity_skew_sizes)
{
    make_labels();
    part_cfg c;
    part_cfg_default(&c, PART_QUANTITY, 8);
    c.power = 1.5;
    c.min_size = 30;
    part_set *p = split(&c);
    size_t lo = N, hi = 0;
    for (int q = 0; q < 8; q++) {
        ck_assert_uint_ge(p->sizes[q], 30);
        lo = p->sizes[q] < lo ? p->sizes[q] : lo;
        hi = p->sizes[q] > hi ? p->sizes[q] : hi;
    }
    ck_assert_msg(hi > 4 * lo, "power law sizes %zu..%zu are not skewed", lo, hi);
    part_set_free(p);
    c.power = 0.0;
    c.alpha = 0.3;
    p = split(&c);
    assert_covers_once(p, N);
    part_set_free(p);
}
END_TEST

START_TEST(test_contiguous_ranges_and_summary)
{
    size_t lo, hi;
    part_range(10, 3, 0, &lo, &hi);
    ck_assert_uint_eq(lo, 0);
    ck_assert_uint_eq(hi, 4);
    part_range(10, 3, 1, &lo, &hi);
    ck_assert_uint_eq(lo, 4);
    ck_assert_uint_eq(hi, 7);
    part_range(10, 3, 2, &lo, &hi);
    ck_assert_uint_eq(lo, 7);
    ck_assert_uint_eq(hi, 10);
    make_labels();
    part_cfg c;
    part_cfg_default(&c, PART_CONTIGUOUS, 3);
    part_set *p = split(&c);
    ck_assert_uint_eq(p->rows[1][0], 667);
    cn_buf b;
    cn_buf_init(&b);
    ck_assert_int_eq(part_summary(p, y, C, &b), CN_OK);
    ck_assert_ptr_nonnull(strstr(b.data, "part       rows labels"));
    ck_assert_ptr_nonnull(strstr(b.data, "\n2           666     10"));
    cn_buf_fini(&b);
    part_set_free(p);
    part_kind k;
    ck_assert_int_eq(part_kind_parse("dirichlet", &k), CN_OK);
    ck_assert_int_eq(k, PART_DIRICHLET);
    ck_assert_int_eq(part_kind_parse("shards", &k), CN_EINVAL);
    c.n_parts = 0;
    char err[CN_ERRBUF_LEN];
    ck_assert_int_eq(part_split(&c, y, N, C, &p, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "partition: 0 parts is not allowed (>= 1)");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("partition");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_every_scheme_covers_each_row_once_deterministically);
    tcase_add_test(t, test_iid_sizes_differ_by_at_most_one);
    tcase_add_test(t, test_klabels_parts_hold_at_most_k_labels);
    tcase_add_test(t, test_dirichlet_small_alpha_is_skewed);
    tcase_add_test(t, test_quantity_skew_sizes);
    tcase_add_test(t, test_contiguous_ranges_and_summary);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return ts_run_suite(suite()); }
