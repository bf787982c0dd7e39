// test_train_spec.c: training job specs: defaults, errors that name the bad
// key, and every shipped experiment (base spec + each run's overrides)
// parses.
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_file.h"
#include "scheduler/train_spec.h"
#include "tests/support/support.h"

START_TEST(test_train_spec_defaults)
{
    train_spec s;
    char err[512];
    ck_assert_int_eq(train_spec_parse("{}", "job.json", &s, err, sizeof err), CN_OK);
    ck_assert_int_eq(s.mode, PS_BSP);
    ck_assert_int_eq(s.n_hidden, 2);
    ck_assert_int_eq(s.hidden[0], 256);
    ck_assert_int_eq(s.hidden[1], 128);
    ck_assert_uint_eq(s.batch, 64);
    ck_assert_uint_eq(s.shards, 1);
    ck_assert_uint_eq(s.workers, 1);
    ck_assert_int_eq(s.optim.kind, OPTIM_SGD);
    ck_assert_ptr_nonnull(strstr(s.train_images, "fashion-mnist/train-images"));
}
END_TEST

START_TEST(test_train_spec_reads_every_field_kind)
{
    train_spec s;
    char err[512];
    const char *j = "{\"name\": \"x1\", \"hidden\": [10, 20, 30], \"optimizer\": \"adamw\","
                    " \"lr\": 0.002, \"consistency\": \"ssp\", \"staleness\": 4, \"shards\": 3,"
                    " \"workers\": 5, \"partition\": \"dirichlet\", \"alpha\": 0.3,"
                    " \"nesterov\": true, \"schedule\": \"cosine\", \"train_rows\": 500}";
    ck_assert_int_eq(train_spec_parse(j, "job.json", &s, err, sizeof err), CN_OK);
    ck_assert_str_eq(s.name, "x1");
    ck_assert_int_eq(s.n_hidden, 3);
    ck_assert_int_eq(s.hidden[2], 30);
    ck_assert_int_eq(s.optim.kind, OPTIM_ADAM);
    ck_assert_int_eq(s.optim.decoupled_wd, 1);
    ck_assert_float_eq_tol(s.optim.lr, 0.002f, 1e-9);
    ck_assert_int_eq(s.mode, PS_SSP);
    ck_assert_uint_eq(s.staleness, 4);
    ck_assert_uint_eq(s.shards, 3);
    ck_assert_uint_eq(s.workers, 5);
    ck_assert_int_eq(s.partition, PART_DIRICHLET);
    ck_assert_int_eq(s.optim.schedule, OPTIM_SCHED_COSINE);
    ck_assert_uint_eq(s.train_rows, 500);
}
END_TEST

START_TEST(test_train_spec_errors_name_the_key)
{
    train_spec s;
    char err[512];
    ck_assert_int_eq(train_spec_parse("{\"lrr\": 0.1}", "job.json", &s, err, sizeof err),
                     CN_EINVAL);
    ck_assert_str_eq(err, "job.json: unknown key \"lrr\" (did you mean \"lr\"?)");
    ck_assert_int_eq(
        train_spec_parse("{\"consistency\": \"sync\"}", "job.json", &s, err, sizeof err),
        CN_EINVAL);
    ck_assert_str_eq(err, "job.json: key \"consistency\": \"sync\" is not one of bsp|asp|ssp");
    ck_assert_int_eq(train_spec_parse("{\"batch\": 0}", "job.json", &s, err, sizeof err),
                     CN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "key \"batch\""));
    ck_assert_int_eq(train_spec_parse("{\"hidden\": [64, -1]}", "job.json", &s, err, sizeof err),
                     CN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "key \"hidden\": element 1"));
    ck_assert_int_eq(train_spec_parse("{\"name\": \"a b\"}", "job.json", &s, err, sizeof err),
                     CN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "key \"name\""));
    ck_assert_int_eq(train_spec_parse("[1]", "job.json", &s, err, sizeof err), CN_EFORMAT);
    ck_assert_str_eq(err, "job.json: not a JSON object");
}
END_TEST

START_TEST(test_train_spec_every_shipped_experiment_parses)
{
    char dir[1024];
    ts_source_path("deploy/experiments", dir, sizeof dir);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int files = 0, runs = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        char path[1400], err[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        uint8_t *text;
        size_t len;
        ck_assert_int_eq(cn_file_read_all(path, 0, &text, &len, err, sizeof err), CN_OK);
        cJSON *o = cJSON_Parse((const char *)text);
        ck_assert_msg(o != NULL, "%s is not JSON", path);
        const cJSON *base = cJSON_GetObjectItem(o, "base");
        const cJSON *rs = cJSON_GetObjectItem(o, "runs");
        ck_assert(cJSON_IsObject(base) && cJSON_IsArray(rs));
        const cJSON *r;
        cJSON_ArrayForEach(r, rs)
        {
            cJSON *spec = cJSON_Duplicate(base, 1);
            const cJSON *kv;
            cJSON_ArrayForEach(kv, r)
            {
                cJSON_DeleteItemFromObject(spec, kv->string);
                cJSON_AddItemToObject(spec, kv->string, cJSON_Duplicate(kv, 1));
            }
            char *txt = cJSON_PrintUnformatted(spec);
            train_spec s;
            ck_assert_msg(train_spec_parse(txt, path, &s, err, sizeof err) == CN_OK, "%s", err);
            cJSON_free(txt);
            cJSON_Delete(spec);
            runs++;
        }
        cJSON_Delete(o);
        free(text);
        files++;
    }
    closedir(d);
    ck_assert_int_ge(files, 3);
    ck_assert_int_ge(runs, 15);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("train_spec");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_train_spec_defaults);
    tcase_add_test(t, test_train_spec_reads_every_field_kind);
    tcase_add_test(t, test_train_spec_errors_name_the_key);
    tcase_add_test(t, test_train_spec_every_shipped_experiment_parses);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return ts_run_suite(suite()); }
