// test_chart.c: the SVG chart module against its promised structure (axes
// with ticks, legends, empty, single-point and NaN series; the output parses
// as XML) and the figures drawn from a job's result files.
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/sched_figures.h"
#include "scheduler/svg_chart.h"
#include "tests/support/support.h"

static char dir[256];

static void setup(void)
{
    ts_tmpdir(dir, sizeof dir);
}
static void teardown(void)
{
    ts_rmtree(dir);
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

// render draws c and checks that the output is well-formed XML.
static char *render(const svg_chart *c)
{
    cn_buf b;
    cn_buf_init(&b);
    ck_assert_int_eq(svg_chart_render(c, &b), CN_OK);
    char path[300];
    snprintf(path, sizeof path, "%s/chart.svg", dir);
    ts_write_file(path, b.data);
    ck_assert_msg(ts_xml_parses(path), "not well-formed XML:\n%s", b.data);
    return b.data; // the caller frees
}

START_TEST(test_svg_line_has_axes_ticks_legend_and_parses)
{
    double x[] = {0, 1, 2, 3}, y1[] = {0.5, 0.6, 0.7, 0.8}, y2[] = {0.4, 0.5, 0.55, 0.6};
    svg_series s[] = {{.name = "bsp", .x = x, .y = y1, .n = 4},
                      {.name = "a<s>p & co", .x = x, .y = y2, .n = 4}};
    svg_chart c = {.kind = SVG_LINE,
                   .title = "acc",
                   .xlabel = "s",
                   .ylabel = "accuracy",
                   .series = s,
                   .n_series = 2};
    char *out = render(&c);
    ck_assert_ptr_nonnull(strstr(out, "<g class=\"axis x\""));
    ck_assert_ptr_nonnull(strstr(out, "<g class=\"axis y\""));
    ck_assert_uint_ge(count(out, "<g class=\"tick\">"), 6);
    ck_assert_ptr_nonnull(strstr(out, "<g class=\"legend\""));
    ck_assert_ptr_nonnull(strstr(out, ">bsp</text>"));
    ck_assert_ptr_nonnull(strstr(out, ">a&lt;s&gt;p &amp; co</text>")); // escaped
    ck_assert_uint_eq(count(out, "data-points=\"4\""), 2);
    ck_assert_uint_eq(count(out, "<path "), 2);
    ck_assert_ptr_null(strstr(out, "no data"));
    ck_assert_ptr_null(strstr(out, "style=")); // inline styles would break the CSP
    free(out);
}
END_TEST

START_TEST(test_svg_empty_series_draws_axes_and_says_no_data)
{
    svg_series s[] = {{.name = "nothing", .x = NULL, .y = NULL, .n = 0}};
    svg_chart c = {.kind = SVG_LINE, .series = s, .n_series = 1};
    char *out = render(&c);
    ck_assert_ptr_nonnull(strstr(out, "<g class=\"axis x\""));
    ck_assert_ptr_nonnull(strstr(out, ">no data</text>"));
    ck_assert_ptr_nonnull(strstr(out, "data-points=\"0\""));
    free(out);
    svg_chart none = {.kind = SVG_SCATTER};
    out = render(&none);
    ck_assert_ptr_nonnull(strstr(out, ">no data</text>"));
    ck_assert_ptr_null(strstr(out, "class=\"legend\"")); // nothing to name
    free(out);
}
END_TEST

START_TEST(test_svg_single_point_is_drawn_inside_the_plot)
{
    double x[] = {5}, y[] = {0.9};
    svg_series s[] = {{.name = "", .x = x, .y = y, .n = 1}};
    svg_chart c = {.kind = SVG_LINE, .series = s, .n_series = 1};
    char *out = render(&c);
    ck_assert_uint_eq(count(out, "<circle class=\"point\""), 1);
    ck_assert_ptr_null(strstr(out, "<path ")); // one point is no line
    ck_assert_ptr_null(strstr(out, "nan"));
    ck_assert_ptr_null(strstr(out, "inf"));
    // The point sits in the middle of the widened range: x = 64 + 560/2.
    ck_assert_ptr_nonnull(strstr(out, "cx=\"344.0\""));
    free(out);
}
END_TEST

START_TEST(test_svg_nan_points_are_skipped_and_break_the_line)
{
    double x[] = {0, 1, 2, 3, 4}, y[] = {1, 2, NAN, 4, INFINITY};
    svg_series s[] = {{.name = "gappy", .x = x, .y = y, .n = 5}};
    svg_chart c = {.kind = SVG_LINE, .series = s, .n_series = 1};
    char *out = render(&c);
    ck_assert_ptr_nonnull(strstr(out, "data-points=\"3\""));
    ck_assert_uint_eq(count(out, "<circle class=\"point\""), 3);
    // Two runs of the pen: "M.. L.." before the gap, "M.." after it.
    const char *d = strstr(out, " d=\"");
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(count(d, "M"), 2);
    ck_assert_ptr_null(strstr(out, "nan"));
    free(out);
}
END_TEST

START_TEST(test_svg_bar_and_histogram_draw_one_rect_per_value)
{
    const char *cats[] = {"0", "1", "2"};
    double a[] = {10, 50, 5}, b[] = {1, 2, NAN};
    svg_series s[] = {{.name = "sent", .y = a, .n = 3}, {.name = "received", .y = b, .n = 3}};
    svg_chart c = {
        .kind = SVG_BAR, .series = s, .n_series = 2, .categories = cats, .n_categories = 3};
    char *out = render(&c);
    ck_assert_uint_eq(count(out, "<rect class=\"bar\""), 5); // the NaN bar is skipped
    ck_assert_ptr_nonnull(strstr(out, ">received</text>"));
    free(out);
    svg_chart h = {
        .kind = SVG_HIST, .series = s, .n_series = 1, .categories = cats, .n_categories = 3};
    out = render(&h);
    ck_assert_uint_eq(count(out, "<rect class=\"bar\""), 3);
    ck_assert_ptr_nonnull(strstr(out, ">sent</text>"));
    free(out);
}
END_TEST

START_TEST(test_svg_ticks_are_round_numbers_with_compact_labels)
{
    double first, step;
    int n = svg_nice_ticks(0.8123, 0.8456, 5, &first, &step);
    ck_assert_double_eq_tol(step, 0.005, 1e-12);
    ck_assert_double_eq_tol(first, 0.815, 1e-12);
    ck_assert_int_eq(n, 7); // 0.815 .. 0.845
    n = svg_nice_ticks(0, 16e6, 6, &first, &step);
    ck_assert_double_eq_tol(step, 2e6, 1e-3);
    ck_assert_int_eq(n, 9);
    char buf[32];
    svg_format_tick(12e6, 2e6, buf, sizeof buf);
    ck_assert_str_eq(buf, "12M");
    svg_format_tick(1500, 500, buf, sizeof buf);
    ck_assert_str_eq(buf, "1500");
    svg_format_tick(25000, 5000, buf, sizeof buf);
    ck_assert_str_eq(buf, "25k");
    svg_format_tick(0.25, 0.05, buf, sizeof buf);
    ck_assert_str_eq(buf, "0.25");
    svg_format_tick(1e-17, 0.1, buf, sizeof buf); // a rounding residue is zero
    ck_assert_str_eq(buf, "0.0");
}
END_TEST

// A federated job's results log written here, read as the dashboard does.
START_TEST(test_figures_draw_round_records_and_tolerate_their_absence)
{
    char job[400], path[500];
    snprintf(job, sizeof job, "%s/fed", dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", job);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/spec.json", job);
    ts_write_file(path, "{\"name\": \"fed\", \"mode\": \"federated\", \"partition\": \"iid\"}");
    snprintf(path, sizeof path, "%s/results.jsonl", job);
    ts_write_file(path, "");
    sched_results *r;
    char err[256];
    ck_assert_int_eq(sched_results_load(job, &r, err, sizeof err), CN_OK);
    ck_assert_int_eq(r->kind, FIG_FEDERATED);
    ck_assert_str_eq(r->label, "fed (iid)");
    cn_buf b;
    cn_buf_init(&b);
    const sched_results *one = r;
    ck_assert_int_eq(sched_fig_render(&one, 1, "round-accuracy", &b), CN_OK);
    ck_assert_ptr_nonnull(strstr(b.data, ">no data</text>"));
    sched_results_free(r);
    ts_write_file(path, "{\"type\":\"round\",\"round\":1,\"t\":2,\"accuracy\":0.5,\"selected\":4,"
                        "\"finished\":3,\"dropped\":1,\"late\":0,\"bytes_up\":10,\"bytes_down\":20,"
                        "\"train_seconds\":1.5,\"wait_seconds\":0.5}\n"
                        "{\"type\":\"round\",\"round\":2,\"t\":4,\"accuracy\":0.6,\"selected\":4,"
                        "\"finished\":4,\"dropped\":0,\"late\":1,\"bytes_up\":10,\"bytes_down\":20,"
                        "\"train_seconds\":1.2,\"wait_seconds\":0.7}\n"
                        "{\"type\":\"round\",\"round\":3,\"t\":6,\"accur"); // torn tail
    ck_assert_int_eq(sched_results_load(job, &r, err, sizeof err), CN_OK);
    ck_assert_uint_eq(sched_results_count(r, "round"), 2);
    one = r;
    cn_buf_reset(&b);
    ck_assert_int_eq(sched_fig_render(&one, 1, "round-accuracy", &b), CN_OK);
    ck_assert_ptr_nonnull(strstr(b.data, "data-points=\"2\""));
    cn_buf_reset(&b);
    ck_assert_int_eq(sched_fig_render(&one, 1, "round-clients", &b), CN_OK);
    ck_assert_uint_eq(count(b.data, "data-points=\"2\""), 4); // selected..late
    ck_assert_ptr_nonnull(strstr(b.data, ">dropped</text>"));
    cn_buf_reset(&b);
    ck_assert_int_eq(sched_fig_render(&one, 1, "round-time", &b), CN_OK);
    ck_assert_ptr_nonnull(strstr(b.data, ">train_seconds</text>"));
    ck_assert_ptr_nonnull(strstr(b.data, ">wait_seconds</text>"));
    ck_assert_int_eq(sched_fig_render(&one, 1, "staleness", &b), CN_ENOTFOUND);
    cn_buf_fini(&b);
    sched_results_free(r);
    snprintf(path, sizeof path, "%s/none", dir);
    ck_assert_int_eq(sched_results_load(path, &r, err, sizeof err), CN_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "not a job's results"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("chart");
    TCase *tc = tcase_create("svg");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_svg_line_has_axes_ticks_legend_and_parses);
    tcase_add_test(tc, test_svg_empty_series_draws_axes_and_says_no_data);
    tcase_add_test(tc, test_svg_single_point_is_drawn_inside_the_plot);
    tcase_add_test(tc, test_svg_nan_points_are_skipped_and_break_the_line);
    tcase_add_test(tc, test_svg_bar_and_histogram_draw_one_rect_per_value);
    tcase_add_test(tc, test_svg_ticks_are_round_numbers_with_compact_labels);
    tcase_add_test(tc, test_figures_draw_round_records_and_tolerate_their_absence);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
