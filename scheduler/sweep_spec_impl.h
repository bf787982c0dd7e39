// sweep_spec_impl.h: a sweep's parsed search space, shared by
// sweep_spec.c (parsing, random draws) and sweep_tpe.c (TPE proposals).
// Folder-private.
#ifndef CANOPY_SWEEP_SPEC_IMPL_H
#define CANOPY_SWEEP_SPEC_IMPL_H

#include <cjson/cJSON.h>

#include "scheduler/sweep_spec.h"

typedef enum { DIM_FIXED, DIM_GRID, DIM_CHOICE, DIM_UNIFORM, DIM_LOGUNIFORM, DIM_RANDINT } dim_kind;

typedef struct dim {
    const char *name;
    dim_kind kind;
    const cJSON *values; // FIXED: the value; GRID/CHOICE: the array
    double lo, hi, q;    // continuous and integer ranges; q = 0: not quantized
} dim;

// sweep_space: kept by a "tpe" spec. dims point into root, which it owns.
struct sweep_space {
    cJSON *root;
    dim *dims;
    int ndims;
};

// sweep_params_check reports whether params (a JSON object) are valid
// parameters of s's model, with the reason in err.
bool sweep_params_check(const sweep_spec *s, const cJSON *params, char *err, size_t errlen);

#endif
