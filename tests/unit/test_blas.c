// test_blas.c: the OpenBLAS core decision (cpuid level against the core's
// level, the user's setting, the re-execution marker), the re-execution
// itself against a stand-in openblas_get_corename that reports the Prescott
// fallback, and the MLP's BLAS kernel against the naive reference under the
// core this process ends up with; stopping OpenBLAS's threads and the next
// product starting them again.
//
// main() calls blas_fit_core first, as canopy does, so every test here runs
// under the chosen core. Run as "test_blas --probe", the executable only
// prints blas_describe(): the re-execution test starts it that way.
#include <cblas.h>
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/cn_rand.h"
#include "ml/blas_info.h"
#include "ml/mlp.h"
#include "ml/mlp_impl.h"
#include "tests/support/support.h"

static blas_cpu cpu_of(const char *vendor, bool avx, bool avx2, bool fma, bool avx512)
{
    blas_cpu c = {.avx = avx, .avx2 = avx2, .fma = fma, .avx512 = avx512};
    snprintf(c.vendor, sizeof c.vendor, "%s", vendor);
    return c;
}

START_TEST(test_core_level_knows_openblas_names_in_any_case)
{
    ck_assert_int_eq(blas_core_level("Prescott"), BLAS_LEVEL_SSE);
    ck_assert_int_eq(blas_core_level("Nehalem"), BLAS_LEVEL_SSE);
    ck_assert_int_eq(blas_core_level("no such core"), BLAS_LEVEL_SSE);
    ck_assert_int_eq(blas_core_level(NULL), BLAS_LEVEL_SSE);
    ck_assert_int_eq(blas_core_level("Sandybridge"), BLAS_LEVEL_AVX);
    ck_assert_int_eq(blas_core_level("haswell"), BLAS_LEVEL_AVX2);
    ck_assert_int_eq(blas_core_level("ZEN"), BLAS_LEVEL_AVX2);
    ck_assert_int_eq(blas_core_level("SkylakeX"), BLAS_LEVEL_AVX512);
    ck_assert_int_eq(blas_core_level("cooperlake"), BLAS_LEVEL_AVX512);
}
END_TEST

START_TEST(test_cpu_level_needs_fma_with_avx2)
{
    blas_cpu c = cpu_of("GenuineIntel", true, true, true, true);
    ck_assert_int_eq(blas_cpu_level(&c), BLAS_LEVEL_AVX512);
    c = cpu_of("GenuineIntel", true, true, true, false);
    ck_assert_int_eq(blas_cpu_level(&c), BLAS_LEVEL_AVX2);
    c = cpu_of("GenuineIntel", true, true, false, false);
    ck_assert_int_eq(blas_cpu_level(&c), BLAS_LEVEL_AVX);
    c = cpu_of("GenuineIntel", false, false, false, false);
    ck_assert_int_eq(blas_cpu_level(&c), BLAS_LEVEL_SSE);
    ck_assert_ptr_null(blas_core_best(&c, BLAS_LEVEL_SSE));
}
END_TEST

START_TEST(test_plan_reexecutes_a_fallback_core_with_the_best_one)
{
    blas_plan p;
    blas_cpu intel512 = cpu_of("GenuineIntel", true, true, true, true);
    blas_plan_make(&p, &intel512, "Prescott", NULL, NULL);
    ck_assert_str_eq(p.reexec_core, "SkylakeX");
    blas_cpu amd2 = cpu_of("AuthenticAMD", true, true, true, false);
    blas_plan_make(&p, &amd2, "Prescott", NULL, NULL);
    ck_assert_str_eq(p.reexec_core, "Zen");
    blas_cpu intel2 = cpu_of("GenuineIntel", true, true, true, false);
    blas_plan_make(&p, &intel2, "Sandybridge", NULL, "");
    ck_assert_str_eq(p.reexec_core, "Haswell");
    ck_assert_str_eq(p.why, "chosen by OpenBLAS; the CPU has AVX2 and FMA: slow kernels, set "
                            "OPENBLAS_CORETYPE=Haswell");
}
END_TEST

START_TEST(test_plan_keeps_a_fitting_core_and_never_overrides_the_user)
{
    blas_plan p;
    blas_cpu amd512 = cpu_of("AuthenticAMD", true, true, true, true);
    blas_plan_make(&p, &amd512, "Cooperlake", NULL, NULL);
    ck_assert_ptr_null(p.reexec_core);
    ck_assert_str_eq(p.why, "chosen by OpenBLAS, fits the CPU: AVX-512");
    blas_plan_make(&p, &amd512, "Prescott", "Prescott", NULL);
    ck_assert_ptr_null(p.reexec_core);
    ck_assert_str_eq(p.why, "OPENBLAS_CORETYPE=Prescott set by the user");
    // After the one re-execution: never again, and say who set it.
    blas_plan_make(&p, &amd512, "SkylakeX", "SkylakeX", "Prescott");
    ck_assert_ptr_null(p.reexec_core);
    ck_assert_str_eq(p.why, "set by canopy: OpenBLAS chose Prescott, the CPU has AVX-512");
    blas_plan_make(&p, &amd512, "Prescott", "SkylakeX", "Prescott");
    ck_assert_ptr_null(p.reexec_core);
    ck_assert_str_eq(p.why, "set by canopy: OpenBLAS chose Prescott, the CPU has AVX-512, but this "
                            "OpenBLAS did not take the better core");
    blas_cpu old = cpu_of("GenuineIntel", false, false, false, false);
    blas_plan_make(&p, &old, "Prescott", NULL, NULL);
    ck_assert_ptr_null(p.reexec_core);
}
END_TEST

// probe runs this executable with --probe under a stand-in
// openblas_get_corename (Prescott unless OPENBLAS_CORETYPE is set) and
// writes its output into out.
static void probe(const char *user_core, char *out, size_t n)
{
    const char *shim = getenv("CANOPY_FAKE_CORENAME_LIB");
    ck_assert_msg(shim && *shim, "CANOPY_FAKE_CORENAME_LIB is not set (meson sets it)");
    char dir[512], log[600], self[512];
    ts_tmpdir(dir, sizeof dir);
    snprintf(log, sizeof log, "%s/probe.out", dir);
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_int_gt(len, 0);
    self[len] = 0;
    setenv("LD_PRELOAD", shim, 1);
    // The sanitizer runtime must come first unless told not to check.
    setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1);
    unsetenv(BLAS_REEXEC_ENV);
    if (user_core)
        setenv("OPENBLAS_CORETYPE", user_core, 1);
    else
        unsetenv("OPENBLAS_CORETYPE");
    char probe_arg[] = "--probe";
    char *argv[] = {self, probe_arg, NULL};
    pid_t pid = ts_spawn(argv, log);
    unsetenv("LD_PRELOAD");
    ck_assert_int_gt(pid, 0);
    int status;
    ck_assert(ts_wait_exit(pid, 30000, &status));
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    FILE *f = fopen(log, "r");
    ck_assert_ptr_nonnull(f);
    size_t got = fread(out, 1, n - 1, f);
    out[got] = 0;
    fclose(f);
    ts_rmtree(dir);
}

START_TEST(test_fit_core_reexecutes_once_from_a_fallback_core)
{
    blas_cpu cpu;
    blas_cpu_detect(&cpu);
    const char *best = blas_core_best(&cpu, blas_cpu_level(&cpu));
    char out[1024], want[256];
    probe(NULL, out, sizeof out);
    if (best == NULL) {
        // Nothing better than SSE on this CPU: no re-execution.
        ck_assert_msg(strstr(out, "runs=1 ") && strstr(out, "core Prescott (chosen by OpenBLAS"),
                      "%s", out);
        return;
    }
    snprintf(want, sizeof want, "core %s (set by canopy: OpenBLAS chose Prescott", best);
    ck_assert_msg(strstr(out, "runs=2 ") && strstr(out, want), "want runs=2 and \"%s\" in: %s",
                  want, out);
}
END_TEST

START_TEST(test_fit_core_keeps_the_users_core)
{
    char out[1024];
    probe("Prescott", out, sizeof out);
    ck_assert_msg(strstr(out, "runs=1 ") &&
                      strstr(out, "core Prescott (OPENBLAS_CORETYPE=Prescott set by the user)"),
                  "%s", out);
}
END_TEST

// The shapes of the 784-256-128-10 MLP's products at batch 64, forward and
// both backward forms, through mlp_gemm with each kernel.
START_TEST(test_mlp_blas_kernel_equals_naive_under_the_chosen_core)
{
    blas_cpu cpu;
    blas_cpu_detect(&cpu);
    const char *user = getenv("OPENBLAS_CORETYPE");
    if (user == NULL || getenv(BLAS_REEXEC_ENV) != NULL)
        ck_assert_msg(blas_core_level(blas_core_name()) >= blas_cpu_level(&cpu),
                      "core %s is slower than the CPU allows", blas_core_name());
    const int dims[][3] = {{64, 256, 784}, {784, 256, 64}, {64, 784, 256},
                           {64, 128, 256}, {256, 128, 64}, {64, 10, 128}};
    const int trans[][2] = {{0, 0}, {1, 0}, {0, 1}};
    cn_rng r;
    cn_rng_seed(&r, 5, 0);
    for (size_t t = 0; t < sizeof dims / sizeof dims[0]; t++) {
        int m = dims[t][0], n = dims[t][1], k = dims[t][2];
        int ta = trans[t % 3][0], tb = trans[t % 3][1];
        float *a = malloc((size_t)m * k * sizeof(float)),
              *b = malloc((size_t)k * n * sizeof(float));
        float *c1 = malloc((size_t)m * n * sizeof(float)),
              *c2 = malloc((size_t)m * n * sizeof(float));
        double asum = 0.0;
        for (size_t i = 0; i < (size_t)m * k; i++)
            a[i] = (float)cn_rng_normal(&r);
        for (size_t i = 0; i < (size_t)k * n; i++)
            b[i] = (float)cn_rng_normal(&r);
        int lda = ta ? m : k, ldb = tb ? k : n;
        mlp_gemm(MLP_KERNEL_BLAS, ta, tb, m, n, k, a, lda, b, ldb, c1, n);
        mlp_gemm(MLP_KERNEL_NAIVE, ta, tb, m, n, k, a, lda, b, ldb, c2, n);
        // Single-precision accumulation of k products of unit normals: the
        // error grows like sqrt(k) ulp; 1e-5 * k absolute is a loose bound
        // that still catches a wrong kernel (errors of order 1).
        for (size_t i = 0; i < (size_t)m * n; i++) {
            double d = fabs((double)c1[i] - c2[i]);
            asum += d;
            ck_assert_msg(d <= 1e-5 * k, "%s: shape %d,%d,%d ta=%d tb=%d: |%g - %g| > %g",
                          blas_core_name(), m, n, k, ta, tb, c1[i], c2[i], 1e-5 * k);
        }
        ck_assert(asum / ((double)m * n) < 1e-4);
        free(a);
        free(b);
        free(c1);
        free(c2);
    }
}
END_TEST

// threads_now returns the number of threads of this process (/proc).
static int threads_now(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    ck_assert_ptr_nonnull(f);
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

// big_gemm_matches_naive multiplies two 384 x 384 matrices (large enough for
// OpenBLAS to use its threads) with each kernel and compares.
static void big_gemm_matches_naive(void)
{
    enum { N = 384 };
    float *a = malloc(N * N * sizeof(float)), *b = malloc(N * N * sizeof(float));
    float *c1 = malloc(N * N * sizeof(float)), *c2 = malloc(N * N * sizeof(float));
    cn_rng r;
    cn_rng_seed(&r, 9, 0);
    for (size_t i = 0; i < (size_t)N * N; i++) {
        a[i] = (float)cn_rng_normal(&r);
        b[i] = (float)cn_rng_normal(&r);
    }
    mlp_gemm(MLP_KERNEL_BLAS, 0, 0, N, N, N, a, N, b, N, c1, N);
    mlp_gemm(MLP_KERNEL_NAIVE, 0, 0, N, N, N, a, N, b, N, c2, N);
    for (size_t i = 0; i < (size_t)N * N; i++) // tolerance as in the test above
        ck_assert_msg(fabs((double)c1[i] - c2[i]) <= 1e-5 * N, "|%g - %g|", c1[i], c2[i]);
    free(a);
    free(b);
    free(c1);
    free(c2);
}

// blas_stop_threads leaves the process with its own thread only, and the
// next product starts OpenBLAS's threads again and is still right.
START_TEST(test_blas_stop_threads_stops_them_until_the_next_product)
{
    big_gemm_matches_naive();
    int before = threads_now();
    if (openblas_get_num_threads() > 1)
        ck_assert_int_gt(before, 1);
    blas_stop_threads();
    ck_assert_int_eq(threads_now(), 1);
    big_gemm_matches_naive();
    ck_assert_int_eq(threads_now(), before);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("blas");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_core_level_knows_openblas_names_in_any_case);
    tcase_add_test(t, test_cpu_level_needs_fma_with_avx2);
    tcase_add_test(t, test_plan_reexecutes_a_fallback_core_with_the_best_one);
    tcase_add_test(t, test_plan_keeps_a_fitting_core_and_never_overrides_the_user);
    tcase_add_test(t, test_fit_core_reexecutes_once_from_a_fallback_core);
    tcase_add_test(t, test_fit_core_keeps_the_users_core);
    tcase_add_test(t, test_mlp_blas_kernel_equals_naive_under_the_chosen_core);
    tcase_add_test(t, test_blas_stop_threads_stops_them_until_the_next_product);
    suite_add_tcase(s, t);
    return s;
}

int main(int argc, char **argv)
{
    // Count the runs of main across the re-execution: it must be one or two.
    const char *prev = getenv("CANOPY_TEST_BLAS_RUNS");
    char runs[16];
    snprintf(runs, sizeof runs, "%d", prev ? atoi(prev) + 1 : 1);
    setenv("CANOPY_TEST_BLAS_RUNS", runs, 1);
    blas_fit_core(argv);
    if (argc > 1 && strcmp(argv[1], "--probe") == 0) {
        char line[256];
        blas_describe(line, sizeof line);
        printf("runs=%s %s\n", runs, line);
        return 0;
    }
    unsetenv("CANOPY_TEST_BLAS_RUNS");
    return ts_run_suite(suite());
}
