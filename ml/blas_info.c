// blas_info.c: cpuid against the core OpenBLAS chose, and the one-time
// re-execution with OPENBLAS_CORETYPE when OpenBLAS fell back to a generic
// core the CPU outgrows (see blas_info.h).
#include "ml/blas_info.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

// xcr0 reads the register of OS-enabled state components (XGETBV, ECX=0).
static unsigned long long xcr0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

void blas_cpu_detect(blas_cpu *cpu)
{
    memset(cpu, 0, sizeof *cpu);
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d))
        return;
    unsigned max_leaf = a;
    memcpy(cpu->vendor, &b, 4);
    memcpy(cpu->vendor + 4, &d, 4);
    memcpy(cpu->vendor + 8, &c, 4);
    __get_cpuid(1, &a, &b, &c, &d);
    unsigned fam = (a >> 8) & 0xf, mod = (a >> 4) & 0xf;
    if (fam == 0xf)
        fam += (a >> 20) & 0xff;
    if (fam == 0x6 || fam >= 0xf)
        mod |= ((a >> 16) & 0xf) << 4;
    cpu->family = fam;
    cpu->model = mod;
    bool osxsave = (c >> 27) & 1;
    unsigned long long xcr = osxsave ? xcr0() : 0;
    bool ymm = (xcr & 0x6) == 0x6;     // SSE and AVX state
    bool zmm = (xcr & 0xe6) == 0xe6;   // plus opmask, upper ZMM, high ZMM
    cpu->avx = ymm && ((c >> 28) & 1); // CPUID.1:ECX.AVX
    cpu->fma = cpu->avx && ((c >> 12) & 1);
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        cpu->avx2 = cpu->avx && ((b >> 5) & 1);
        // F (16), DQ (17), CD (28), BW (30), VL (31).
        unsigned need = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31);
        cpu->avx512 = zmm && (b & need) == need;
    }
}
#else
void blas_cpu_detect(blas_cpu *cpu)
{
    memset(cpu, 0, sizeof *cpu);
}
#endif

blas_level blas_cpu_level(const blas_cpu *cpu)
{
    if (cpu->avx512 && cpu->avx2 && cpu->fma)
        return BLAS_LEVEL_AVX512;
    if (cpu->avx2 && cpu->fma)
        return BLAS_LEVEL_AVX2;
    if (cpu->avx)
        return BLAS_LEVEL_AVX;
    return BLAS_LEVEL_SSE;
}

blas_level blas_core_level(const char *core)
{
    static const struct {
        const char *name;
        blas_level level;
    } cores[] = {
        {"SkylakeX", BLAS_LEVEL_AVX512},
        {"Cooperlake", BLAS_LEVEL_AVX512},
        {"SapphireRapids", BLAS_LEVEL_AVX512},
        {"Haswell", BLAS_LEVEL_AVX2},
        {"Zen", BLAS_LEVEL_AVX2},
        {"Sandybridge", BLAS_LEVEL_AVX},
        {"Bulldozer", BLAS_LEVEL_AVX},
        {"Piledriver", BLAS_LEVEL_AVX},
        {"Steamroller", BLAS_LEVEL_AVX},
        {"Excavator", BLAS_LEVEL_AVX},
    };
    for (size_t i = 0; core && i < sizeof cores / sizeof cores[0]; i++)
        if (strcasecmp(core, cores[i].name) == 0)
            return cores[i].level;
    return BLAS_LEVEL_SSE;
}

const char *blas_core_best(const blas_cpu *cpu, blas_level level)
{
    switch (level) {
    case BLAS_LEVEL_AVX512:
        return "SkylakeX";
    case BLAS_LEVEL_AVX2:
        return strcmp(cpu->vendor, "AuthenticAMD") == 0 || strcmp(cpu->vendor, "HygonGenuine") == 0
                   ? "Zen"
                   : "Haswell";
    case BLAS_LEVEL_AVX:
        return "Sandybridge";
    case BLAS_LEVEL_SSE:
        break;
    }
    return NULL;
}

static const char *level_name(blas_level level)
{
    static const char *names[] = {"no AVX", "AVX", "AVX2 and FMA", "AVX-512"};
    return names[level];
}

void blas_plan_make(blas_plan *plan, const blas_cpu *cpu, const char *core, const char *user_core,
                    const char *fallback)
{
    plan->reexec_core = NULL;
    blas_level have = blas_cpu_level(cpu), used = blas_core_level(core);
    if (fallback != NULL && *fallback) {
        snprintf(plan->why, sizeof plan->why, "set by canopy: OpenBLAS chose %s, the CPU has %s%s",
                 fallback, level_name(have),
                 used < have ? ", but this OpenBLAS did not take the better core" : "");
        return;
    }
    if (user_core != NULL && *user_core) {
        snprintf(plan->why, sizeof plan->why, "OPENBLAS_CORETYPE=%s set by the user", user_core);
        return;
    }
    if (used >= have) {
        snprintf(plan->why, sizeof plan->why, "chosen by OpenBLAS, fits the CPU: %s",
                 level_name(have));
        return;
    }
    plan->reexec_core = blas_core_best(cpu, have);
    snprintf(plan->why, sizeof plan->why,
             "chosen by OpenBLAS; the CPU has %s: slow kernels, set OPENBLAS_CORETYPE=%s",
             level_name(have), plan->reexec_core);
}

const char *blas_core_name(void)
{
    return openblas_get_corename();
}

static void plan_self(blas_plan *plan)
{
    blas_cpu cpu;
    blas_cpu_detect(&cpu);
    blas_plan_make(plan, &cpu, blas_core_name(), getenv("OPENBLAS_CORETYPE"),
                   getenv(BLAS_REEXEC_ENV));
}

void blas_fit_core(char **argv)
{
    blas_plan plan;
    plan_self(&plan);
    if (plan.reexec_core == NULL)
        return;
    if (setenv(BLAS_REEXEC_ENV, blas_core_name(), 1) != 0 ||
        setenv("OPENBLAS_CORETYPE", plan.reexec_core, 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    // The exec failed: carry on as we are; blas_describe reports the slow core.
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(BLAS_REEXEC_ENV);
}

void blas_describe(char *out, size_t n)
{
    blas_plan plan;
    plan_self(&plan);
    // openblas_get_config(): "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ... ".
    char lib[32] = "OpenBLAS", ver[32] = "?";
    sscanf(openblas_get_config(), "%31s %31s", lib, ver);
    int threads = openblas_get_num_threads();
    snprintf(out, n, "%s %s, core %s (%s), %d thread%s", lib, ver, blas_core_name(), plan.why,
             threads, threads == 1 ? "" : "s");
}

// OpenBLAS's threaded builds export it; weak, so a BLAS without it links.
void blas_thread_shutdown_(void) __attribute__((weak));

void blas_stop_threads(void)
{
    if (blas_thread_shutdown_ != NULL)
        blas_thread_shutdown_();
}
