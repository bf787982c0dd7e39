// test_common.c: errors, configuration (flags and JSON files), files, SHA-256,
// the PRNG, the text buffer and log escaping.
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "common/cn_buf.h"
#include "common/cn_config.h"
#include "common/cn_err.h"
#include "common/cn_file.h"
#include "common/cn_jsonl.h"
#include "common/cn_log.h"
#include "common/cn_rand.h"
#include "tests/support/support.h"

typedef struct cfg {
    char listen[CN_OPT_STRLEN];
    char mode[CN_OPT_STRLEN];
    int64_t threads;
    double lr;
    bool verbose;
} cfg;

static void cfg_table(cfg *c, cn_opt *opts)
{
    memset(c, 0, sizeof *c);
    strcpy(c->listen, "tcp://127.0.0.1:7070");
    strcpy(c->mode, "bsp");
    c->threads = 4;
    c->lr = 0.1;
    cn_opt t[] = {
        {"listen", CN_OPT_STRING, c->listen, "where", 0, 0, NULL},
        {"mode", CN_OPT_CHOICE, c->mode, "consistency", 0, 0, "bsp|asp|ssp"},
        {"threads", CN_OPT_INT, &c->threads, "threads", 1, 256, NULL},
        {"lr", CN_OPT_DOUBLE, &c->lr, "learning rate", 0, 10, NULL},
        {"verbose", CN_OPT_BOOL, &c->verbose, "chatty", 0, 0, NULL},
        CN_OPT_END,
    };
    memcpy(opts, t, sizeof t);
}

START_TEST(test_cn_strerror_names_every_code)
{
    ck_assert_str_eq(cn_strerror(CN_OK), "success");
    ck_assert_str_eq(cn_strerror(CN_ENOTFOUND), "not found");
    ck_assert_str_eq(cn_err_name(CN_EFORMAT), "CN_EFORMAT");
    ck_assert_str_eq(cn_strerror((cn_err)9999), "unknown error");
    char buf[64];
    ck_assert_int_eq(cn_errf(buf, sizeof buf, CN_ERANGE, "x=%d", 3), CN_ERANGE);
    ck_assert_str_eq(buf, "x=3");
}
END_TEST

START_TEST(test_cn_config_flags_set_values)
{
    cfg c;
    cn_opt opts[6];
    cfg_table(&c, opts);
    char *argv[] = {"--listen",  "ipc:///tmp/x", "--mode=ssp", "--threads", "8",
                    "--lr=0.01", "--verbose",    "job.json",   NULL};
    cn_args a;
    char err[256] = "";
    ck_assert_int_eq(cn_config_parse(opts, 8, argv, &a, err, sizeof err), CN_OK);
    ck_assert_str_eq(c.listen, "ipc:///tmp/x");
    ck_assert_str_eq(c.mode, "ssp");
    ck_assert_int_eq(c.threads, 8);
    ck_assert_double_eq_tol(c.lr, 0.01, 1e-12);
    ck_assert(c.verbose);
    ck_assert_int_eq(a.npos, 1);
    ck_assert_str_eq(a.pos[0], "job.json");
}
END_TEST

START_TEST(test_cn_config_errors_name_key_value_and_allowed)
{
    cfg c;
    cn_opt opts[6];
    cfg_table(&c, opts);
    cn_args a;
    char err[256];
    char *bad_int[] = {"--threads", "abc"};
    ck_assert_int_eq(cn_config_parse(opts, 2, bad_int, &a, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "--threads: \"abc\" is not an integer (allowed: 1..256)");
    char *range[] = {"--threads=0"};
    ck_assert_int_eq(cn_config_parse(opts, 1, range, &a, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "--threads: 0 is out of range (allowed: 1..256)");
    char *choice[] = {"--mode=fast"};
    ck_assert_int_eq(cn_config_parse(opts, 1, choice, &a, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "--mode: \"fast\" is not one of bsp|asp|ssp (did you mean \"asp\"?)");
    char *typo[] = {"--listne=x"};
    ck_assert_int_eq(cn_config_parse(opts, 1, typo, &a, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "--listne: unknown option \"listne\" (did you mean \"listen\"?)");
    char *missing[] = {"--lr"};
    ck_assert_int_eq(cn_config_parse(opts, 1, missing, &a, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "--lr: missing value (learning rate)");
}
END_TEST

START_TEST(test_cn_config_json_file_then_flags_override)
{
    char dir[256], path[300];
    ts_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/node.json", dir);
    ts_write_file(path, "{\"threads\": 16, \"mode\": \"asp\", \"verbose\": true, \"lr\": 0.5}");
    cfg c;
    cn_opt opts[6];
    cfg_table(&c, opts);
    char *argv[] = {"--config", path, "--threads=2"};
    cn_args a;
    char err[256] = "";
    ck_assert_int_eq(cn_config_parse(opts, 3, argv, &a, err, sizeof err), CN_OK);
    ck_assert_int_eq(c.threads, 2);
    ck_assert_str_eq(c.mode, "asp");
    ck_assert(c.verbose);
    ck_assert_double_eq_tol(c.lr, 0.5, 1e-12);
    ts_rmtree(dir);
}
END_TEST

START_TEST(test_cn_config_json_errors_name_file_and_key)
{
    cfg c;
    cn_opt opts[6];
    cfg_table(&c, opts);
    char err[256];
    ck_assert_int_eq(cn_config_load_json(opts, "{\"thread\": 3}", "n.json", err, sizeof err),
                     CN_EINVAL);
    ck_assert_str_eq(err, "n.json: unknown key \"thread\" (did you mean \"threads\"?)");
    ck_assert_int_eq(
        cn_config_load_json(opts, "{\"threads\": \"many\"}", "n.json", err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "n.json: key \"threads\": expected an integer, got the string \"many\"");
    ck_assert_int_eq(cn_config_load_json(opts, "{\"threads\": 2.5}", "n.json", err, sizeof err),
                     CN_EINVAL);
    ck_assert_str_eq(err, "n.json: key \"threads\": 2.5 is not an integer");
    ck_assert_int_eq(cn_config_load_json(opts, "{\"lr\": 99}", "n.json", err, sizeof err),
                     CN_EINVAL);
    ck_assert_str_eq(err, "n.json: key \"lr\": 99 is out of range (allowed: 0..10)");
    ck_assert_int_eq(cn_config_load_json(opts, "{\n\"lr\": ,}", "n.json", err, sizeof err),
                     CN_EFORMAT);
    ck_assert_str_eq(err, "n.json:2: invalid JSON (fix the syntax near here)");
    ck_assert_int_eq(cn_config_load_json(opts, "[1]", "n.json", err, sizeof err), CN_EFORMAT);
}
END_TEST

// A key with no storage is one a shared config file may hold: ignored there,
// refused as a flag, and listed apart in --help.
START_TEST(test_cn_config_ignored_key_loads_from_json_and_is_refused_as_flag)
{
    char listen[CN_OPT_STRLEN] = "a";
    cn_opt opts[] = {
        {"listen", CN_OPT_STRING, listen, "where", 0, 0, NULL},
        {"scheduler", CN_OPT_STRING, NULL, "not for this role", 0, 0, NULL},
        CN_OPT_END,
    };
    char err[CN_ERRBUF_LEN] = "";
    ck_assert_int_eq(cn_config_load_json(opts, "{\"scheduler\": \"tcp://x:1\", \"listen\": \"b\"}",
                                         "c.json", err, sizeof err),
                     CN_OK);
    ck_assert_str_eq(listen, "b");
    char *argv[] = {"--scheduler", "tcp://x:1"};
    cn_args a;
    ck_assert_int_eq(cn_config_parse(opts, 2, argv, &a, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "--scheduler: not an option of this command (not for this role)");
    char *help = NULL;
    size_t hlen = 0;
    FILE *f = open_memstream(&help, &hlen);
    cn_config_print_help(opts, f);
    fclose(f);
    ck_assert_ptr_null(strstr(help, "--scheduler"));
    ck_assert_ptr_nonnull(strstr(help, "ignores (a --config file shared by every role may hold "
                                       "them):\n  scheduler "));
    free(help);
}
END_TEST

START_TEST(test_cn_file_reads_plain_and_gzip_and_reports_missing)
{
    char dir[256], plain[300], gz[300];
    ts_tmpdir(dir, sizeof dir);
    snprintf(plain, sizeof plain, "%s/a.txt", dir);
    snprintf(gz, sizeof gz, "%s/a.txt.gz", dir);
    ts_write_file(plain, "hello,world\n");
    gzFile g = gzopen(gz, "wb");
    gzputs(g, "hello,world\n");
    gzclose(g);
    uint8_t *data;
    size_t len;
    char err[256];
    ck_assert_int_eq(cn_file_read_all(plain, 0, &data, &len, err, sizeof err), CN_OK);
    ck_assert_uint_eq(len, 12);
    ck_assert_str_eq((char *)data, "hello,world\n");
    free(data);
    ck_assert_int_eq(cn_file_read_all(gz, 0, &data, &len, err, sizeof err), CN_OK);
    ck_assert_uint_eq(len, 12);
    ck_assert_str_eq((char *)data, "hello,world\n");
    free(data);
    ck_assert_int_eq(cn_file_read_all(gz, 4, &data, &len, err, sizeof err), CN_ETOOBIG);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    ck_assert_int_eq(cn_file_read_all(missing, 0, &data, &len, err, sizeof err), CN_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "nope: cannot open: No such file or directory"));
    ts_rmtree(dir);
}
END_TEST

// Every cut of a gzip file, from its first byte to just before its last,
// must fail as truncated: never load the rows before the cut as if whole.
START_TEST(test_cn_file_gzip_cut_anywhere_is_truncated)
{
    char dir[256], gz[300], cut[300];
    ts_tmpdir(dir, sizeof dir);
    snprintf(gz, sizeof gz, "%s/rows.csv.gz", dir);
    snprintf(cut, sizeof cut, "%s/cut.csv.gz", dir);
    gzFile g = gzopen(gz, "wb");
    gzputs(g, "a,b,label\n");
    for (int i = 0; i < 200; i++)
        gzprintf(g, "%d,%d,%d\n", i * 7919 % 1000, i * 104729 % 997, i % 3);
    gzclose(g);
    uint8_t *whole, *data;
    size_t wlen, len;
    char err[CN_ERRBUF_LEN];
    ck_assert_int_eq(cn_file_read_all(gz, 0, &whole, &wlen, err, sizeof err), CN_OK);
    free(whole);
    FILE *f = fopen(gz, "rb");
    ck_assert_ptr_nonnull(f);
    uint8_t raw[1 << 14];
    size_t n = fread(raw, 1, sizeof raw, f);
    fclose(f);
    ck_assert_uint_gt(n, 100);
    ck_assert_uint_lt(n, sizeof raw);
    for (size_t at = 1; at < n; at++) {
        f = fopen(cut, "wb");
        ck_assert_uint_eq(fwrite(raw, 1, at, f), at);
        fclose(f);
        err[0] = 0;
        data = (uint8_t *)"unchanged";
        ck_assert_msg(cn_file_read_all(cut, 0, &data, &len, err, sizeof err) == CN_EFORMAT,
                      "cut at %zu of %zu loaded", at, n);
        ck_assert_ptr_null(data);
        ck_assert_msg(strstr(err, "cut.csv.gz: the file is truncated") != NULL, "cut at %zu: %s",
                      at, err);
    }
    ts_rmtree(dir);
}
END_TEST

START_TEST(test_cn_errf_marks_a_cut_message_and_keeps_a_fitting_one_whole)
{
    char small[16];
    ck_assert_int_eq(cn_errf(small, sizeof small, CN_EFORMAT, "%s", "0123456789abcdefghij"),
                     CN_EFORMAT);
    ck_assert_str_eq(small, "0123456789ab...");
    // A message naming every column of a wide file fits a CN_ERRBUF_LEN buffer.
    char names[3000] = "", err[CN_ERRBUF_LEN];
    for (int i = 1; i <= 40; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "Soil_Type%d, ", i);
    cn_errf(err, sizeof err, CN_ENOTFOUND, "f.csv: the columns are: %s(choose one)", names);
    ck_assert_ptr_nonnull(strstr(err, "Soil_Type40, (choose one)"));
}
END_TEST

// A log line far longer than the formatting buffer reaches stderr whole.
START_TEST(test_cn_log_writes_long_lines_whole)
{
    char dir[256], path[300];
    ts_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/log.txt", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    static char line[6001];
    memset(line, 'x', sizeof line - 1);
    memcpy(line + sizeof line - 6, "(end)", 5);
    CN_ERROR("start %s", line);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    ck_assert(ts_file_contains(path, "xxxxx(end)\n"));
    ts_rmtree(dir);
}
END_TEST

START_TEST(test_cn_file_write_atomic_replaces_content)
{
    char dir[256], path[300], err[256];
    ts_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/ckpt", dir);
    ck_assert_int_eq(cn_file_write_atomic(path, "one", 3, err, sizeof err), CN_OK);
    ck_assert_int_eq(cn_file_write_atomic(path, "second", 6, err, sizeof err), CN_OK);
    uint8_t *data;
    size_t len;
    ck_assert_int_eq(cn_file_read_all(path, 0, &data, &len, err, sizeof err), CN_OK);
    ck_assert_str_eq((char *)data, "second");
    free(data);
    char bad[300];
    snprintf(bad, sizeof bad, "%s/no/such/dir/f", dir);
    ck_assert_int_eq(cn_file_write_atomic(bad, "x", 1, err, sizeof err), CN_EIO);
    ts_rmtree(dir);
}
END_TEST

START_TEST(test_cn_sha256_known_vectors)
{
    char hex[65];
    cn_file_sha256_hex("", 0, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cn_file_sha256_hex("abc", 3, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    cn_file_sha256_hex(m, strlen(m), hex);
    ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}
END_TEST

START_TEST(test_cn_rng_is_deterministic_and_bounded)
{
    cn_rng a, b, c;
    cn_rng_seed(&a, 42, 1);
    cn_rng_seed(&b, 42, 1);
    cn_rng_seed(&c, 42, 2);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = cn_rng_next(&a), y = cn_rng_next(&b), z = cn_rng_next(&c);
        ck_assert_uint_eq(x, y);
        differ += x != z;
    }
    ck_assert_int_gt(differ, 990);
    size_t hist[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t v = cn_rng_below(&a, 7);
        ck_assert_uint_lt(v, 7);
        hist[v]++;
    }
    for (int i = 0; i < 7; i++) // 10000 expected each; 5 sigma is about 480
        ck_assert(hist[i] > 9500 && hist[i] < 10500);
    double mean = 0;
    for (int i = 0; i < 20000; i++)
        mean += cn_rng_gamma(&a, 2.5);
    mean /= 20000;
    ck_assert_double_eq_tol(mean, 2.5, 0.08); // sd of the mean is about 0.011
}
END_TEST

typedef struct replay_count {
    int records, warnings;
} replay_count;

static void count_rec(const cJSON *rec, size_t lineno, void *arg)
{
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(rec, "i")));
    ck_assert_uint_eq(lineno, (size_t)((replay_count *)arg)->records + 1);
    ((replay_count *)arg)->records++;
}

static void count_warn(const char *msg, void *arg)
{
    ck_assert_ptr_nonnull(strstr(msg, "bytes"));
    ((replay_count *)arg)->warnings++;
}

// The results log: appends count their write time apart (the durable
// write is reported beside the scheduler's own overhead), and a reopen
// replays every whole record and cuts a torn, zero-filled tail.
START_TEST(test_cn_jsonl_times_its_writes_and_replays_past_a_torn_tail)
{
    char dir[256], path[300], err[256];
    ts_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/results.jsonl", dir);
    cn_jsonl *l;
    ck_assert_int_eq(cn_jsonl_open(&l, path, NULL, NULL, NULL, err, sizeof err), CN_OK);
    ck_assert_uint_eq(cn_jsonl_write_ns(l), 0);
    uint64_t last = 0;
    for (int i = 0; i < 3; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "i", i);
        ck_assert_int_eq(cn_jsonl_append(l, o), CN_OK);
        cJSON_Delete(o);
        ck_assert_uint_gt(cn_jsonl_write_ns(l), last);
        last = cn_jsonl_write_ns(l);
    }
    ck_assert_uint_eq(cn_jsonl_records(l), 3);
    cn_jsonl_close(l);
    ck_assert_uint_eq(cn_jsonl_write_ns(NULL), 0);
    FILE *f = fopen(path, "a");
    ck_assert_ptr_nonnull(f);
    fputs("{\"i\": 3, \"torn", f);
    fwrite("\0\0\0\0", 1, 4, f);
    fclose(f);
    replay_count rc = {0, 0};
    ck_assert_int_eq(cn_jsonl_open(&l, path, count_rec, &rc, count_warn, err, sizeof err), CN_OK);
    ck_assert_int_eq(rc.records, 3);
    ck_assert_int_ge(rc.warnings, 1);
    ck_assert_uint_eq(cn_jsonl_records(l), 3);
    cn_jsonl_close(l);
    ts_rmtree(dir);
}
END_TEST

START_TEST(test_cn_buf_grows)
{
    cn_buf b;
    cn_buf_init(&b);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(cn_buf_printf(&b, "%d,", i % 10), CN_OK);
    ck_assert_uint_eq(b.len, 2000);
    ck_assert_int_eq(strncmp(b.data, "0,1,2,", 6), 0);
    cn_buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    cn_buf_fini(&b);
}
END_TEST

START_TEST(test_cn_log_escapes_control_characters_of_names)
{
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    fflush(stderr);
    int saved = dup(2);
    ck_assert_int_ge(dup2(fileno(tmp), 2), 0);
    // A node name that would forge a second log line.
    CN_WARN("node %s joined", "w1\n2026-01-01T00:00:00.000Z ERROR [scheduler] forged\x1b[2J");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char line[512] = "";
    rewind(tmp);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, tmp));
    ck_assert_ptr_nonnull(strstr(line, "node w1\\x0a2026-01-01T00:00:00.000Z ERROR [scheduler] "
                                       "forged\\x1b[2J joined\n"));
    ck_assert_ptr_null(fgets(line, sizeof line, tmp)); // one line only
    fclose(tmp);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("common");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_cn_strerror_names_every_code);
    tcase_add_test(t, test_cn_config_flags_set_values);
    tcase_add_test(t, test_cn_config_errors_name_key_value_and_allowed);
    tcase_add_test(t, test_cn_config_json_file_then_flags_override);
    tcase_add_test(t, test_cn_config_json_errors_name_file_and_key);
    tcase_add_test(t, test_cn_config_ignored_key_loads_from_json_and_is_refused_as_flag);
    tcase_add_test(t, test_cn_file_reads_plain_and_gzip_and_reports_missing);
    tcase_add_test(t, test_cn_file_gzip_cut_anywhere_is_truncated);
    tcase_add_test(t, test_cn_errf_marks_a_cut_message_and_keeps_a_fitting_one_whole);
    tcase_add_test(t, test_cn_log_writes_long_lines_whole);
    tcase_add_test(t, test_cn_file_write_atomic_replaces_content);
    tcase_add_test(t, test_cn_sha256_known_vectors);
    tcase_add_test(t, test_cn_rng_is_deterministic_and_bounded);
    tcase_add_test(t, test_cn_buf_grows);
    tcase_add_test(t, test_cn_jsonl_times_its_writes_and_replays_past_a_torn_tail);
    tcase_add_test(t, test_cn_log_escapes_control_characters_of_names);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
