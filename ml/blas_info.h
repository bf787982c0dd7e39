// blas_info.h: which OpenBLAS core fits this CPU, and what the process uses.
//
// Debian's OpenBLAS is built with DYNAMIC_ARCH: at load time it reads cpuid
// and picks a kernel set ("core"). A release older than the CPU does not
// recognise it and falls back to a generic core (Prescott, SSE3) that is 3-4x
// slower than the AVX2 or AVX-512 kernels the CPU can run. OpenBLAS reads
// OPENBLAS_CORETYPE only while it initialises, so the fix is to execute the
// program again with the variable set: blas_fit_core does that, once, and
// never when the user set the variable. Everything but blas_fit_core is pure
// (no environment changes) so that the decision is testable on its own.
#ifndef CANOPY_BLAS_INFO_H
#define CANOPY_BLAS_INFO_H

#include <stdbool.h>
#include <stddef.h>

// The kernel families, in increasing order of speed; a core's level is the
// widest vector extension its kernels use.
typedef enum {
    BLAS_LEVEL_SSE = 0, // Prescott, Core2, Nehalem, Barcelona, ... (and unknown names)
    BLAS_LEVEL_AVX,     // Sandybridge, Bulldozer, Piledriver, Steamroller, Excavator
    BLAS_LEVEL_AVX2,    // Haswell, Zen: AVX2 with FMA
    BLAS_LEVEL_AVX512,  // SkylakeX, Cooperlake, SapphireRapids
} blas_level;

// blas_cpu is what cpuid and the OS (XGETBV) say the CPU can run.
typedef struct blas_cpu {
    char vendor[13]; // "GenuineIntel", "AuthenticAMD", ... ("" if not x86)
    unsigned family, model;
    bool avx, avx2, fma, avx512; // usable: CPU support and OS-saved registers
} blas_cpu;

// blas_cpu_detect fills cpu from cpuid. On other architectures every
// feature is false and vendor is "".
void blas_cpu_detect(blas_cpu *cpu);

// blas_cpu_level returns the best kernel family cpu can run. AVX-512 means
// F, DQ, CD, BW and VL (what OpenBLAS's SkylakeX kernels need).
blas_level blas_cpu_level(const blas_cpu *cpu);

// blas_core_level returns the family of an OpenBLAS core name (compared
// without case). Names it does not know count as BLAS_LEVEL_SSE.
blas_level blas_core_level(const char *core);

// blas_core_best returns the OpenBLAS core name for level on this vendor:
// SkylakeX (AVX-512), Zen (AMD AVX2) or Haswell (other AVX2), Sandybridge
// (AVX), or NULL for BLAS_LEVEL_SSE (nothing better to ask for).
const char *blas_core_best(const blas_cpu *cpu, blas_level level);

// The marker blas_fit_core sets beside OPENBLAS_CORETYPE when it re-executes:
// its value is the core OpenBLAS had chosen on its own. Child processes
// inherit both, so they report the same reason.
#define BLAS_REEXEC_ENV "CANOPY_BLAS_FALLBACK"

// blas_plan is the decision for one process.
typedef struct blas_plan {
    const char *reexec_core; // non-NULL: execute again with OPENBLAS_CORETYPE=this
    char why[160];           // why the core in use is the one it is, for people
} blas_plan;

// blas_plan_make decides from the CPU, the core OpenBLAS chose (core), the
// value of OPENBLAS_CORETYPE (NULL if unset) and of BLAS_REEXEC_ENV (NULL if
// unset). It asks for a re-execution only when neither variable is set and
// the CPU runs a faster family than core.
void blas_plan_make(blas_plan *plan, const blas_cpu *cpu, const char *core, const char *user_core,
                    const char *fallback);

// blas_fit_core makes the plan for this process and, when it asks for one,
// sets OPENBLAS_CORETYPE and BLAS_REEXEC_ENV and executes /proc/self/exe
// with argv. It returns only when there is nothing to do or the exec failed
// (the process then carries on with the slow core; blas_describe says so).
// Call it first thing in main, before any thread starts.
void blas_fit_core(char **argv);

// blas_describe writes one line for people into out (size n): library,
// version, core in use and why, BLAS threads, e.g.
// "OpenBLAS 0.3.21, core SkylakeX (set by canopy: OpenBLAS chose Prescott,
// the CPU has AVX-512), 2 threads".
void blas_describe(char *out, size_t n);

// blas_core_name returns the core OpenBLAS uses (openblas_get_corename).
const char *blas_core_name(void);

// blas_stop_threads stops OpenBLAS's worker threads; its next threaded call
// starts them again. Each worker spins on sched_yield for about 2^28 cycles
// (~0.1 s) when it starts and after every call before it sleeps, so a
// command that does no BLAS work (the forest) calls this first rather than
// share the CPUs with them. Does nothing with a BLAS that lacks the call
// (OpenBLAS exports it without declaring it in its headers).
void blas_stop_threads(void);

#endif
