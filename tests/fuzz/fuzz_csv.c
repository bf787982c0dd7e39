// fuzz_csv.c: libFuzzer target for the CSV loader (ds_parse_csv): header
// detection, quoting, labels by name and by index. A data set it accepts
// must have finite features and labels in [0, n_classes).
#include <math.h>
#include <stdlib.h>

#include "ml/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    csv_options o = csv_options_default();
    ds_dataset *d = NULL;
    char err[512];
    if (ds_parse_csv((const char *)data, size, "fuzz.csv", &o, &d, err, sizeof err) == CN_OK) {
        for (size_t i = 0; i < d->n_rows * d->n_features; i++)
            if (!isfinite(d->x[i]))
                abort();
        for (size_t i = 0; d->y && i < d->n_rows; i++)
            if (d->y[i] < 0 || d->y[i] >= d->n_classes)
                abort();
        ds_dataset_free(d);
    }
    return 0;
}
