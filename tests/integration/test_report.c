// test_report.c: `canopy report` on the fixture results directory
// (tests/fixtures/results: a sweep, a parameter-server job, two federated
// jobs, the sweep scaling and model-size measurements): every section is
// there, its numbers are the fixture's, 2.1 and 2.2 keep to 250 words,
// every figure parses as XML, missing results are named with their
// command, and prose over the limit fails the command.
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/support.h"

static char dir[256], out[300], log_path[400], fixture[512];

static void setup(void)
{
    ts_tmpdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/report", dir);
    snprintf(log_path, sizeof log_path, "%s/report.log", dir);
    ts_source_path("tests/fixtures/results", fixture, sizeof fixture);
}

static void teardown(void)
{
    ts_reap_all();
    ts_rmtree(dir);
}

// report runs `canopy report in... -o out` and returns its exit code.
static int report(const char *in1, const char *in2)
{
    char *argv[] = {(char *)ts_canopy_bin(), "report", (char *)in1, "-o", out, (char *)in2, NULL};
    if (in2 == NULL)
        argv[5] = NULL;
    pid_t pid = ts_spawn(argv, log_path);
    int st = 0;
    ck_assert(ts_wait_exit(pid, 60000, &st));
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *read_out(const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", out, name);
    char *s = ts_read_file(path);
    ck_assert_msg(s != NULL, "%s was not written", path);
    return s;
}

// section_words counts the prose words of the section that starts at
// heading: paragraphs only, not figures, captions or tables.
static size_t section_words(const char *md, const char *heading)
{
    const char *p = strstr(md, heading);
    ck_assert_ptr_nonnull(p);
    p = strchr(p, '\n');
    const char *end = strstr(p, "\n## ");
    size_t words = 0;
    while (p && p < end) {
        p++;
        const char *nl = strchr(p, '\n');
        bool prose = *p && *p != '!' && *p != '*' && *p != '|' && *p != '#' && *p != '>';
        bool in = false;
        for (const char *q = p; prose && q < (nl ? nl : end); q++) {
            bool w = *q != ' ';
            words += w && !in;
            in = w;
        }
        p = nl;
    }
    return words;
}

START_TEST(test_report_has_every_section_with_the_fixture_numbers)
{
    ck_assert_int_eq(report(fixture, NULL), 0);
    char *md = read_out("REPORT.md");
    static const char *const sections[] = {"## 1.1 ",
                                           "### Leaderboard",
                                           "### Time on 1, 2 and 3 VMs",
                                           "### Held-back check",
                                           "## 1.2 ",
                                           "## 2.1 ",
                                           "## 2.2 ",
                                           "## Dashboard snapshot",
                                           "## How each figure was produced"};
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        ck_assert_msg(strstr(md, sections[i]), "no section %s", sections[i]);
    // 1.1: best, default, their fold deviations and the difference.
    ck_assert_ptr_nonnull(strstr(md, "a mean CV accuracy of 0.8456 (standard deviation over "
                                     "folds 0.0032)"));
    ck_assert_ptr_nonnull(strstr(md, "score 0.8123 (standard deviation 0.0041)"));
    ck_assert_ptr_nonnull(strstr(md, "The difference, +0.0333, is larger than"));
    ck_assert_ptr_nonnull(strstr(md, "| 4 | 0 (default) |"));
    // A trial ASHA stopped ranks after every full score, however high its
    // partial one, and says so; trials.csv's columns are found by name.
    ck_assert_ptr_nonnull(strstr(md, "| 1 | 1 | {\"n_estimators\":100,\"max_features\":0.3} | "
                                     "0.8456 | 0.0032 | 2.5 |"));
    ck_assert_ptr_nonnull(strstr(md, "| 5 | 4 (stopped at rung 0, 1 folds) |"));
    ck_assert_ptr_nonnull(strstr(md, "| 3 | 11.5 | 2.61 | 87 % |"));
    // 1.2: the model-size runs, the sweep against training comparison.
    ck_assert_ptr_nonnull(strstr(md, "With 50890 parameters a step spent 0.90 ms computing and "
                                     "0.40 ms communicating (ratio 2.25)"));
    ck_assert_ptr_nonnull(strstr(md, "ran 2.61 times faster than on one (efficiency 87 %)"));
    // ... against the newest training job that finished (fx-cut-0002 is
    // newer but was cut short: it has no summary).
    ck_assert_ptr_nonnull(strstr(md, "Training one network on 2 workers (job `fx-ps-0001`)"));
    // 1.2 measured: trial-parallel against data-parallel and the mix, per
    // model; a failed run is left out of the table and of the comparison.
    ck_assert_ptr_nonnull(strstr(md, "| small (784-64-32-10) | 52650 | trial-parallel | 1 | 2.0 | "
                                     "1.5 | 0.8000 | validation |"));
    ck_assert_ptr_nonnull(strstr(md, "The small model (52650 parameters): trial-parallel "
                                     "finished all configurations first, in 2.0 s, 5.0 times "
                                     "sooner than the next way."));
    ck_assert_ptr_nonnull(strstr(md, "The large model (1863690 parameters): data-parallel "
                                     "finished all configurations first, in 40.0 s, 1.2 times "
                                     "sooner than the next way."));
    ck_assert_ptr_null(strstr(md, "| large (784-1024-1024-10) | 1863690 | trial-parallel"));
    ck_assert_ptr_nonnull(strstr(md, "](exp-trials-vs-data.svg)"));
    ck_assert_ptr_nonnull(strstr(md, "| trials-vs-data | experiment | "
                                     "deploy/experiments/trials-vs-data.sh |"));
    // 2.1 and 2.2: per partitioning, dropouts, the parameter server's run.
    ck_assert_ptr_nonnull(strstr(md, "`fx-fed-iid (iid)`: accuracy 0.8500 after 5 rounds"));
    ck_assert_ptr_nonnull(
        strstr(md, "`fx-fed-dirichlet (dirichlet 0.3)`: accuracy 0.7000 after 5 rounds"));
    ck_assert_ptr_nonnull(strstr(md, "20 client-rounds were selected, 1 dropped out and 1 "
                                     "missed the round's deadline"));
    ck_assert_ptr_nonnull(strstr(md, "It reached accuracy 0.8600 in 4.3 s after moving 1.6e+07 "
                                     "bytes"));
    ck_assert_ptr_nonnull(strstr(md, "0.7000 after 5 rounds in 10.0 s and 4.5e+06 bytes"));
    size_t w21 = section_words(md, "## 2.1 "), w22 = section_words(md, "## 2.2 ");
    ck_assert_uint_le(w21, 250);
    ck_assert_uint_le(w22, 250);
    ck_assert_uint_gt(w21, 50);
    ck_assert_uint_gt(w22, 50);
    // Provenance names every source, with its seed.
    ck_assert_ptr_nonnull(strstr(md, "| fx-sweep-0123 | sweep | canopy tune "
                                     "deploy/sweeps/forest-cover.json | 7 |"));
    ck_assert_ptr_nonnull(strstr(md, "| fx-ps-0001 | train | canopy train "
                                     "deploy/jobs/fashion-mlp.json | 11 |"));
    // Every figure is a file beside REPORT.md, linked, inline in index.html
    // and well-formed.
    char *html = read_out("index.html");
    DIR *d = opendir(out);
    ck_assert_ptr_nonnull(d);
    size_t svgs = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".svg") != 0)
            continue;
        svgs++;
        char link[300], path[600];
        snprintf(link, sizeof link, "](%s)", e->d_name);
        ck_assert_msg(strstr(md, link), "%s is not linked from REPORT.md", e->d_name);
        snprintf(path, sizeof path, "%s/%s", out, e->d_name);
        ck_assert_msg(ts_xml_parses(path), "%s does not parse", e->d_name);
    }
    closedir(d);
    ck_assert_uint_ge(svgs, 13);
    size_t inline_svgs = 0;
    for (const char *p = html; (p = strstr(p, "<svg ")) != NULL; p++)
        inline_svgs++;
    ck_assert_uint_eq(inline_svgs, svgs);
    ck_assert_ptr_null(strstr(html, "<img src=\"sweep")); // figures inline, not linked
    free(html);
    free(md);
}
END_TEST

START_TEST(test_report_names_the_command_of_each_missing_result)
{
    char sweep[700];
    snprintf(sweep, sizeof sweep, "%s/state/sweeps", fixture);
    ck_assert_int_eq(report(sweep, NULL), 0);
    char *md = read_out("REPORT.md");
    ck_assert_ptr_nonnull(strstr(md, "The best trial (1)")); // the sweep is still read
    ck_assert_ptr_nonnull(strstr(md, "no sweep scaling measurement (sweep-scaling.json) in "
                                     "RESULTS. Produce them with `bench/sweep.sh`."));
    ck_assert_ptr_nonnull(strstr(md, "Produce them with `deploy/experiments/run.sh "
                                     "deploy/experiments/model-size.json`"));
    ck_assert_ptr_nonnull(strstr(md, "Produce them with `deploy/experiments/trials-vs-data.sh`"));
    ck_assert_ptr_nonnull(strstr(md, "no federated training job with round records in RESULTS"));
    ck_assert_ptr_nonnull(
        strstr(md, "Produce them with `canopy local --ps 1 --workers 4 train FEDERATED_JOB.json`"));
    ck_assert_ptr_nonnull(strstr(md, "no finished parameter-server training job in RESULTS"));
    ck_assert_ptr_nonnull(strstr(md, "no dashboard screenshot. Produce them with `canopy report "
                                     "--screenshot"));
    free(md);
}
END_TEST

START_TEST(test_report_fails_when_prose_outgrows_the_word_limit)
{
    // Four federated jobs whose names are 50 words each: the section names
    // each partitioning, so its prose outgrows 250 words.
    char in[400], job[500], path[600], cmd[1700];
    snprintf(in, sizeof in, "%s/in", dir);
    char spec[400] = "{\"mode\": \"federated\", \"name\": \"";
    for (int i = 0; i < 50; i++)
        strcat(spec, "word ");
    strcat(spec, "\"}");
    for (int j = 0; j < 4; j++) {
        snprintf(job, sizeof job, "%s/fed-long-%d", in, j);
        snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/state/train/fx-fed-iid/results.jsonl %s/",
                 job, fixture, job);
        ck_assert_int_eq(system(cmd), 0);
        snprintf(path, sizeof path, "%s/spec.json", job);
        ts_write_file(path, spec);
        snprintf(path, sizeof path, "%s/job.json", job);
        ts_write_file(path, "{\"kind\": \"train\"}");
    }
    ck_assert_int_eq(report(in, NULL), 1);
    ck_assert(ts_file_contains(log_path, "canopy report: section 2.1 has "));
    ck_assert(ts_file_contains(log_path, " words; the limit is 250"));
}
END_TEST

START_TEST(test_report_refuses_a_missing_results_path)
{
    char missing[400];
    snprintf(missing, sizeof missing, "%s/nothing-here", dir);
    ck_assert_int_eq(report(missing, NULL), 3);
    ck_assert(ts_file_contains(log_path, "nothing-here: No such file or directory"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("report");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_report_has_every_section_with_the_fixture_numbers);
    tcase_add_test(tc, test_report_names_the_command_of_each_missing_result);
    tcase_add_test(tc, test_report_fails_when_prose_outgrows_the_word_limit);
    tcase_add_test(tc, test_report_refuses_a_missing_results_path);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
