// fake_corename.c: a stand-in for OpenBLAS's openblas_get_corename, loaded
// with LD_PRELOAD by test_blas. It reports the generic Prescott core that an
// OpenBLAS older than the CPU falls back to, unless OPENBLAS_CORETYPE names
// another, as the real library does when it initialises.
#include <stdlib.h>

char *openblas_get_corename(void);

char *openblas_get_corename(void)
{
    static char prescott[] = "Prescott";
    char *forced = getenv("OPENBLAS_CORETYPE");
    return forced && *forced ? forced : prescott;
}
