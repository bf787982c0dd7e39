// test_csv.c: CSV loading: values, label mapping, id columns, and every
// error with its exact file:line:column text.
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ml/csv.h"
#include "tests/support/support.h"

static ds_dataset *parse(const char *text, const csv_options *o, cn_err *e, char *err)
{
    ds_dataset *d = NULL;
    *e = ds_parse_csv(text, strlen(text), "t.csv", o, &d, err, CN_ERRBUF_LEN);
    return d;
}

// Features are matched by name: reordered to the order asked for, extras
// reported, and every missing name listed with d left as it was.
START_TEST(test_ds_select_features_matches_by_name_and_names_the_missing)
{
    csv_options o = csv_options_default();
    char err[CN_ERRBUF_LEN];
    cn_err e;
    ds_dataset *d = parse("c,x,a,b,label\n3,9,1,2,0\n6,8,4,5,1\n", &o, &e, err);
    ck_assert_int_eq(e, CN_OK);
    const char *want[] = {"a", "b", "c"};
    cn_buf extra;
    cn_buf_init(&extra);
    ck_assert_int_eq(ds_dataset_select_features(d, want, 3, &extra, "t.csv", err, sizeof err),
                     CN_OK);
    ck_assert_uint_eq(d->n_features, 3);
    ck_assert_str_eq(d->feature_names[0], "a");
    ck_assert_str_eq(d->feature_names[2], "c");
    const float expect[] = {1, 2, 3, 4, 5, 6};
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(d->x[i], expect[i]);
    ck_assert_str_eq(extra.data, "x");
    cn_buf_fini(&extra);
    ck_assert_int_eq(d->y[1], 1);
    const char *more[] = {"a", "q", "b", "r"};
    ck_assert_int_eq(ds_dataset_select_features(d, more, 4, NULL, "t.csv", err, sizeof err),
                     CN_ENOTFOUND);
    ck_assert_str_eq(err, "t.csv: no columns named q, r (2 of the 4 needed)");
    ck_assert_uint_eq(d->n_features, 3);
    ck_assert_float_eq(d->x[5], 6);
    ds_dataset_free(d);
    o.has_header = false;
    d = parse("1,2,0\n3,4,1\n", &o, &e, err);
    ck_assert_int_eq(e, CN_OK);
    ck_assert_int_eq(ds_dataset_select_features(d, want, 1, NULL, "t.csv", err, sizeof err),
                     CN_EINVAL);
    ck_assert_str_eq(err, "t.csv: the columns have no names, so they cannot be matched by name");
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_csv_header_label_last_maps_classes_ascending)
{
    csv_options o = csv_options_default();
    char err[CN_ERRBUF_LEN];
    cn_err e;
    ds_dataset *d = parse("Id,a,b,Cover_Type\n10,1.5,2,7\n11,3,-4,3\n12,5,6e1,5\n", &o, &e, err);
    ck_assert_int_eq(e, CN_OK);
    ck_assert_uint_eq(d->n_rows, 3);
    ck_assert_uint_eq(d->n_features, 2);
    ck_assert_int_eq(d->n_classes, 3);
    ck_assert_int_eq(d->class_values[0], 3);
    ck_assert_int_eq(d->class_values[1], 5);
    ck_assert_int_eq(d->class_values[2], 7);
    ck_assert_int_eq(d->y[0], 2);
    ck_assert_int_eq(d->y[1], 0);
    ck_assert_int_eq(d->y[2], 1);
    ck_assert_float_eq(d->x[0], 1.5f);
    ck_assert_float_eq(d->x[3], -4.0f);
    ck_assert_float_eq(d->x[5], 60.0f);
    ck_assert_ptr_nonnull(d->ids);
    ck_assert_int_eq(d->ids[2], 12);
    ck_assert_str_eq(d->feature_names[0], "a");
    ck_assert_str_eq(d->feature_names[1], "b");
    ck_assert_str_eq(d->label_name, "Cover_Type");
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_csv_label_by_name_in_the_middle)
{
    csv_options o = csv_options_default();
    o.label_mode = CSV_LABEL_NAME;
    o.label_name = "y";
    char err[CN_ERRBUF_LEN];
    cn_err e;
    ds_dataset *d = parse("a,y,b\n1,0,2\n3,1,4\n", &o, &e, err);
    ck_assert_int_eq(e, CN_OK);
    ck_assert_uint_eq(d->n_features, 2);
    ck_assert_float_eq(d->x[1], 2.0f);
    ck_assert_int_eq(d->y[1], 1);
    ck_assert_ptr_null(d->ids);
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_csv_ragged_row_names_line_and_counts)
{
    csv_options o = csv_options_default();
    char err[CN_ERRBUF_LEN];
    cn_err e;
    ds_dataset *d = parse("a,b,c\n1,2,0\n3,4,1\n5,6\n", &o, &e, err);
    ck_assert_ptr_null(d);
    ck_assert_int_eq(e, CN_EFORMAT);
    ck_assert_msg(strncmp(err, "t.csv:4: expected 3 fields, found 2", 35) == 0, "%s", err);
}
END_TEST

START_TEST(test_csv_non_number_names_line_column_and_header)
{
    csv_options o = csv_options_default();
    char err[CN_ERRBUF_LEN];
    cn_err e;
    ds_dataset *d = parse("Id,a,Slope,c\n1,1,2,0\n2,3,4,1\n3,5,abc,1\n", &o, &e, err);
    ck_assert_ptr_null(d);
    ck_assert_int_eq(e, CN_EFORMAT);
    ck_assert_msg(strncmp(err, "t.csv:4:3 (Slope): \"abc\" is not a number", 40) == 0, "%s", err);
}
END_TEST

START_TEST(test_csv_value_too_large_for_a_float_is_an_error)
{
    csv_options o = csv_options_default();
    char err[CN_ERRBUF_LEN];
    cn_err e;
    ds_dataset *d = parse("Id,a,Slope,c\n1,1,2,0\n2,3,-1e39,1\n", &o, &e, err);
    ck_assert_ptr_null(d);
    ck_assert_int_eq(e, CN_EFORMAT);
    ck_assert_str_eq(err, "t.csv:3:3 (Slope): \"-1e39\" is not a finite number as a 32-bit float "
                          "(|x| <= 3.4e38) (fix or remove this value)");
    d = parse("Id,a,Slope,c\n1,1,3e38,0\n2,3,-1,1\n", &o, &e, err);
    ck_assert_ptr_nonnull(d);
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_csv_non_integer_label_is_an_error)
{
    csv_options o = csv_options_default();
    char err[CN_ERRBUF_LEN];
    cn_err e;
    ds_dataset *d = parse("a,y\n1,0\n2,1.5\n", &o, &e, err);
    ck_assert_ptr_null(d);
    ck_assert_int_eq(e, CN_EFORMAT);
    ck_assert_msg(strncmp(err, "t.csv:3:2 (y): \"1.5\" is not an integer", 38) == 0, "%s", err);
}
END_TEST

START_TEST(test_csv_empty_file_and_header_only)
{
    csv_options o = csv_options_default();
    char err[CN_ERRBUF_LEN];
    cn_err e;
    ck_assert_ptr_null(parse("", &o, &e, err));
    ck_assert_int_eq(e, CN_EFORMAT);
    ck_assert_msg(strncmp(err, "t.csv: the file is empty", 24) == 0, "%s", err);
    ck_assert_ptr_null(parse("\n  \n", &o, &e, err));
    ck_assert_int_eq(e, CN_EFORMAT);
    ck_assert_ptr_null(parse("a,b\n", &o, &e, err));
    ck_assert_int_eq(e, CN_EFORMAT);
    ck_assert_str_eq(err, "t.csv: no data rows after the header");
}
END_TEST

START_TEST(test_csv_missing_label_lists_columns)
{
    csv_options o = csv_options_default();
    o.label_mode = CSV_LABEL_NAME;
    o.label_name = "Cover_Type";
    char err[CN_ERRBUF_LEN];
    cn_err e;
    ck_assert_ptr_null(parse("Id,Elevation,Slope\n1,2,3\n", &o, &e, err));
    ck_assert_int_eq(e, CN_ENOTFOUND);
    ck_assert_msg(strstr(err, "t.csv: no label column named \"Cover_Type\"; the columns are: Id, "
                              "Elevation, Slope") == err,
                  "%s", err);
    // Optional label: loads unlabelled.
    o.label_optional = true;
    ds_dataset *d = parse("Id,Elevation,Slope\n1,2,3\n", &o, &e, err);
    ck_assert_int_eq(e, CN_OK);
    ck_assert_ptr_null(d->y);
    ck_assert_uint_eq(d->n_features, 2);
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_csv_single_class_is_an_error_unless_allowed)
{
    csv_options o = csv_options_default();
    char err[CN_ERRBUF_LEN];
    cn_err e;
    ck_assert_ptr_null(parse("a,y\n1,4\n2,4\n", &o, &e, err));
    ck_assert_int_eq(e, CN_EINVAL);
    ck_assert_msg(
        strncmp(err, "t.csv: the label column \"y\" has a single class (4) in 2 rows", 60) == 0,
        "%s", err);
    o.allow_single_class = true;
    ds_dataset *d = parse("a,y\n1,4\n2,4\n", &o, &e, err);
    ck_assert_int_eq(e, CN_OK);
    ck_assert_int_eq(d->n_classes, 1);
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_csv_headerless_negative_label_col)
{
    csv_options o = csv_options_default();
    o.has_header = false;
    o.label_index = -1;
    char err[CN_ERRBUF_LEN];
    cn_err e;
    ds_dataset *d = parse("1,2,3,2\n4,5,6,1\n", &o, &e, err);
    ck_assert_int_eq(e, CN_OK);
    ck_assert_uint_eq(d->n_rows, 2);
    ck_assert_uint_eq(d->n_features, 3);
    ck_assert_int_eq(d->class_values[0], 1);
    ck_assert_int_eq(d->y[0], 1);
    ck_assert_float_eq(d->x[5], 6.0f);
    ck_assert_ptr_null(d->feature_names);
    ds_dataset_free(d);
    // Label at position -2 (second to last); error positions have no names.
    o.label_index = -2;
    d = parse("1,2,0,9\n4,5,1,8\n", &o, &e, err);
    ck_assert_int_eq(e, CN_OK);
    ck_assert_int_eq(d->class_values[1], 1);
    ck_assert_float_eq(d->x[2], 9.0f);
    ds_dataset_free(d);
    ck_assert_ptr_null(parse("1,2,0\n4,x,1\n", &o, &e, err));
    ck_assert_int_eq(e, CN_EFORMAT);
    ck_assert_msg(strncmp(err, "t.csv:2:2: \"x\" is not a number", 30) == 0, "%s", err);
    o.label_index = 5;
    ck_assert_ptr_null(parse("1,2,0\n", &o, &e, err));
    ck_assert_int_eq(e, CN_EINVAL);
    // By name without a header.
    o.label_mode = CSV_LABEL_NAME;
    o.label_name = "y";
    ck_assert_ptr_null(parse("1,2,0\n", &o, &e, err));
    ck_assert_int_eq(e, CN_EINVAL);
}
END_TEST

START_TEST(test_csv_unlabelled_and_max_rows)
{
    csv_options o = csv_options_default();
    o.label_mode = CSV_LABEL_NONE;
    o.max_rows = 2;
    char err[CN_ERRBUF_LEN];
    cn_err e;
    ds_dataset *d = parse("Id,a,b\n1,1,2\n2,3,4\n3,5,x\n", &o, &e, err);
    ck_assert_int_eq(e, CN_OK);
    ck_assert_uint_eq(d->n_rows, 2);
    ck_assert_uint_eq(d->n_features, 2);
    ck_assert_ptr_null(d->y);
    ck_assert_int_eq(d->n_classes, 0);
    ds_dataset_free(d);
    // Only id and label: no features.
    o = csv_options_default();
    ck_assert_ptr_null(parse("Id,y\n1,0\n2,1\n", &o, &e, err));
    ck_assert_int_eq(e, CN_EINVAL);
}
END_TEST

START_TEST(test_csv_quoted_fields_and_crlf)
{
    csv_options o = csv_options_default();
    char err[CN_ERRBUF_LEN];
    cn_err e;
    ds_dataset *d = parse("\"a\",\"b\",y\r\n\"1\",2,0\r\n3,\"4\",1\r\n", &o, &e, err);
    ck_assert_msg(e == CN_OK, "%s", err);
    ck_assert_uint_eq(d->n_rows, 2);
    ck_assert_float_eq(d->x[3], 4.0f);
    ds_dataset_free(d);
}
END_TEST

START_TEST(test_csv_load_files_gzip_and_missing)
{
    char path[512], err[CN_ERRBUF_LEN];
    ds_dataset *d = NULL;
    csv_options o = csv_options_default();
    ts_source_path("data/covertype-kaggle-train.csv.gz", path, sizeof path);
    o.max_rows = 500;
    ck_assert_int_eq(ds_load_csv(path, &o, &d, err, sizeof err), CN_OK);
    ck_assert_uint_eq(d->n_rows, 500);
    ck_assert_uint_eq(d->n_features, 54);
    ck_assert_str_eq(d->label_name, "Cover_Type");
    ck_assert_str_eq(d->feature_names[0], "Elevation");
    ck_assert_int_eq(d->ids[0], 1);
    ds_dataset_free(d);
    char dir[256], p2[400];
    ts_tmpdir(dir, sizeof dir);
    snprintf(p2, sizeof p2, "%s/missing.csv", dir);
    ck_assert_int_eq(ds_load_csv(p2, &o, &d, err, sizeof err), CN_ENOTFOUND);
    ck_assert_ptr_null(d);
    snprintf(p2, sizeof p2, "%s/small.csv", dir);
    ts_write_file(p2, "a,y\n1,0\n2,1\n3\n");
    ck_assert_int_eq(ds_load_csv(p2, &o, &d, err, sizeof err), CN_EFORMAT);
    char want[512];
    snprintf(want, sizeof want, "%s:4: expected 2 fields, found 1", p2);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
    ts_rmtree(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("csv");
    TCase *t = tcase_create("csv");
    tcase_add_test(t, test_csv_header_label_last_maps_classes_ascending);
    tcase_add_test(t, test_csv_label_by_name_in_the_middle);
    tcase_add_test(t, test_csv_ragged_row_names_line_and_counts);
    tcase_add_test(t, test_csv_non_number_names_line_column_and_header);
    tcase_add_test(t, test_csv_value_too_large_for_a_float_is_an_error);
    tcase_add_test(t, test_csv_non_integer_label_is_an_error);
    tcase_add_test(t, test_csv_empty_file_and_header_only);
    tcase_add_test(t, test_csv_missing_label_lists_columns);
    tcase_add_test(t, test_csv_single_class_is_an_error_unless_allowed);
    tcase_add_test(t, test_csv_headerless_negative_label_col);
    tcase_add_test(t, test_csv_unlabelled_and_max_rows);
    tcase_add_test(t, test_csv_quoted_fields_and_crlf);
    tcase_add_test(t, test_csv_load_files_gzip_and_missing);
    tcase_add_test(t, test_ds_select_features_matches_by_name_and_names_the_missing);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
