// fuzz_specs.c: libFuzzer target for the JSON spec parsers: the sweep spec
// (sweep_spec_parse) and the training job spec (train_spec_parse). The
// first input byte picks the parser; the rest is the JSON text.
#include <stdlib.h>
#include <string.h>

#include "scheduler/sweep_spec.h"
#include "scheduler/train_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    char err[1024];
    if (data[0] & 1) {
        train_spec t;
        train_spec_parse(text, "job.json", &t, err, sizeof err);
    } else {
        sweep_spec *s = NULL;
        if (sweep_spec_parse(text, "sweep.json", &s, err, sizeof err) == CN_OK)
            sweep_spec_free(s);
    }
    free(text);
    return 0;
}
