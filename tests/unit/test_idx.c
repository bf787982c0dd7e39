// test_idx.c: IDX images and labels, raw and gzip, written at test time;
// header and size mismatches by code and text.
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ml/idx.h"
#include "tests/support/support.h"

static char dir[512];

static void setup(void)
{
    ts_tmpdir(dir, sizeof dir);
}
static void teardown(void)
{
    ts_rmtree(dir);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

// write_idx writes a header (magic, dims) and data_len bytes of data, raw or
// gzip, to dir/name, and returns the path in out.
static void write_idx(const char *name, uint32_t magic, const uint32_t *dims, int ndim,
                      const uint8_t *data, size_t data_len, int gz, char *out, size_t n)
{
    uint8_t hdr[16];
    put32(hdr, magic);
    for (int i = 0; i < ndim; i++)
        put32(hdr + 4 + 4 * i, dims[i]);
    snprintf(out, n, "%s/%s", dir, name);
    size_t hl = 4 + 4 * (size_t)ndim;
    if (gz) {
        gzFile f = gzopen(out, "wb");
        ck_assert_ptr_nonnull(f);
        gzwrite(f, hdr, (unsigned)hl);
        if (data_len)
            gzwrite(f, data, (unsigned)data_len);
        gzclose(f);
    } else {
        FILE *f = fopen(out, "wb");
        ck_assert_ptr_nonnull(f);
        fwrite(hdr, 1, hl, f);
        fwrite(data, 1, data_len, f);
        fclose(f);
    }
}

static const uint8_t px[12] = {0, 255, 51, 102, 1, 2, 3, 4, 5, 6, 7, 8};
static const uint8_t lab[3] = {7, 0, 2};

START_TEST(test_load_raw_and_gzip_pairs)
{
    for (int gz = 0; gz < 2; gz++) {
        char ip[600], lp[600], err[CN_ERRBUF_LEN] = "";
        uint32_t idims[3] = {3, 2, 2}, ldims[1] = {3};
        write_idx("tiny-images-idx3-ubyte", IDX_MAGIC_IMAGES, idims, 3, px, 12, gz, ip, sizeof ip);
        write_idx("tiny-labels-idx1-ubyte", IDX_MAGIC_LABELS, ldims, 1, lab, 3, gz, lp, sizeof lp);
        ds_dataset *d = NULL;
        ck_assert_int_eq(idx_load(ip, lp, 0, &d, err, sizeof err), CN_OK);
        ck_assert_uint_eq(d->n_rows, 3);
        ck_assert_uint_eq(d->n_features, 4);
        ck_assert(d->x[0] == 0.0f);
        ck_assert(d->x[1] == 1.0f);
        ck_assert_double_eq_tol(d->x[2], 0.2, 1e-7);
        ck_assert_double_eq_tol(d->x[11], 8.0 / 255.0, 1e-7);
        ck_assert_int_eq(d->y[0], 7);
        ck_assert_int_eq(d->y[2], 2);
        ck_assert_int_eq(d->n_classes, 8);
        ck_assert_int_eq(d->class_values[7], 7);
        ds_dataset_free(d);
        ck_assert_int_eq(idx_load(ip, lp, 2, &d, err, sizeof err), CN_OK);
        ck_assert_uint_eq(d->n_rows, 2);
        ck_assert_int_eq(d->n_classes, 8);
        ds_dataset_free(d);
        ck_assert_int_eq(idx_load_images(ip, 1, &d, err, sizeof err), CN_OK);
        ck_assert_uint_eq(d->n_rows, 1);
        ck_assert_ptr_null(d->y);
        ds_dataset_free(d);
    }
}
END_TEST

START_TEST(test_size_mismatch_names_the_file)
{
    char ip[600], err[CN_ERRBUF_LEN] = "";
    uint32_t idims[3] = {3, 2, 2};
    ds_dataset *d = NULL;
    write_idx("t10k-images-idx3-ubyte.gz", IDX_MAGIC_IMAGES, idims, 3, px, 11, 1, ip, sizeof ip);
    ck_assert_int_eq(idx_load_images(ip, 0, &d, err, sizeof err), CN_EFORMAT);
    ck_assert_str_eq(err, "t10k-images: header says 3x2x2 = 28 bytes, file has 27");
    ck_assert_ptr_null(d);
    write_idx("extra-images", IDX_MAGIC_IMAGES, idims, 3, px, 12, 0, ip, sizeof ip);
    idims[0] = 2;
    write_idx("extra-images", IDX_MAGIC_IMAGES, idims, 3, px, 12, 0, ip, sizeof ip);
    ck_assert_int_eq(idx_load_images(ip, 0, &d, err, sizeof err), CN_EFORMAT);
    ck_assert_str_eq(err, "extra-images: header says 2x2x2 = 24 bytes, file has 28");
    idims[1] = 0;
    write_idx("zero-images", IDX_MAGIC_IMAGES, idims, 3, px, 0, 0, ip, sizeof ip);
    ck_assert_int_eq(idx_load_images(ip, 0, &d, err, sizeof err), CN_EFORMAT);
    ck_assert_str_eq(err, "zero-images: header dimension 1 is zero");
    // 2^22 x 2^21 x 2^21 wraps to 0 in 64 bits: with no pixels the file's
    // size would match.
    uint32_t wrap[3] = {1u << 22, 1u << 21, 1u << 21};
    write_idx("wrap-images", IDX_MAGIC_IMAGES, wrap, 3, px, 0, 0, ip, sizeof ip);
    ck_assert_int_eq(idx_load_images(ip, 0, &d, err, sizeof err), CN_EFORMAT);
    ck_assert_str_eq(err, "wrap-images: header says 4194304x2097152x2097152, more bytes than the "
                          "file's 16");
    ck_assert_ptr_null(d);
    // The cell count of a data set is checked the same way.
    ck_assert_ptr_null(ds_dataset_new((size_t)1 << 62, 8, 0));
    FILE *f = fopen(ip, "wb");
    fwrite("\0\0", 1, 2, f);
    fclose(f);
    ck_assert_int_eq(idx_load_images(ip, 0, &d, err, sizeof err), CN_EFORMAT);
    ck_assert_str_eq(err, "wrap-images: file has 2 bytes, too short for an IDX header");
}
END_TEST

START_TEST(test_wrong_magic_and_missing_file)
{
    char ip[600], lp[600], err[CN_ERRBUF_LEN] = "";
    uint32_t ldims[1] = {3};
    int32_t *y = NULL;
    size_t n = 99;
    ds_dataset *d = NULL;
    write_idx("train-labels-idx1-ubyte", IDX_MAGIC_LABELS, ldims, 1, lab, 3, 0, lp, sizeof lp);
    // A label file where images are expected.
    ck_assert_int_eq(idx_load_images(lp, 0, &d, err, sizeof err), CN_EFORMAT);
    ck_assert_str_eq(err, "train-labels: bad IDX magic 0x00000801 (expected 0x00000803, uint8 "
                          "images; is this the right file?)");
    ck_assert_int_eq(idx_load_labels(lp, 0, &y, &n, err, sizeof err), CN_OK);
    ck_assert_uint_eq(n, 3);
    free(y);
    snprintf(ip, sizeof ip, "%s/nope-images-idx3-ubyte.gz", dir);
    ck_assert_int_eq(idx_load_images(ip, 0, &d, err, sizeof err), CN_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "nope-images-idx3-ubyte.gz"));
    ck_assert_int_eq(idx_load_labels(ip, 0, &y, &n, err, sizeof err), CN_ENOTFOUND);
    ck_assert_ptr_null(y);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_label_count_must_match_images)
{
    char ip[600], lp[600], err[CN_ERRBUF_LEN] = "";
    uint32_t idims[3] = {3, 2, 2}, ldims[1] = {2};
    write_idx("a-images-idx3-ubyte", IDX_MAGIC_IMAGES, idims, 3, px, 12, 0, ip, sizeof ip);
    write_idx("b-labels-idx1-ubyte", IDX_MAGIC_LABELS, ldims, 1, lab, 2, 0, lp, sizeof lp);
    ds_dataset *d = NULL;
    ck_assert_int_eq(idx_load(ip, lp, 0, &d, err, sizeof err), CN_EFORMAT);
    ck_assert_str_eq(err,
                     "b-labels has 2 labels but a-images has 3 images (use the matching pair of "
                     "files)");
    ck_assert_ptr_null(d);
    // Even when max_rows would hide the difference.
    ck_assert_int_eq(idx_load(ip, lp, 1, &d, err, sizeof err), CN_EFORMAT);
}
END_TEST

START_TEST(test_fashion_mnist_test_set_if_installed)
{
    const char *ip = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    const char *lp = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
    FILE *f = fopen(ip, "rb");
    if (f == NULL)
        return; // the dataset package is optional for unit tests
    fclose(f);
    char err[CN_ERRBUF_LEN] = "";
    ds_dataset *d = NULL;
    ck_assert_int_eq(idx_load(ip, lp, 0, &d, err, sizeof err), CN_OK);
    ck_assert_uint_eq(d->n_rows, 10000);
    ck_assert_uint_eq(d->n_features, 784);
    ck_assert_int_eq(d->n_classes, 10);
    size_t counts[10];
    ds_class_counts(d, counts);
    for (int c = 0; c < 10; c++)
        ck_assert_uint_eq(counts[c], 1000);
    ds_dataset_free(d);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("idx");
    TCase *t = tcase_create("core");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_load_raw_and_gzip_pairs);
    tcase_add_test(t, test_size_mismatch_names_the_file);
    tcase_add_test(t, test_wrong_magic_and_missing_file);
    tcase_add_test(t, test_label_count_must_match_images);
    tcase_add_test(t, test_fashion_mnist_test_set_if_installed);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
