// fuzz_idx.c: libFuzzer target for the IDX loaders. The input is written to
// a file (the loaders read paths) and loaded as images, and as labels; a
// data set accepted must have as many cells as its header promised.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ml/idx.h"
#include "tests/fuzz/fuzz_rpc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[600];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static char dir[512];
    fuzz_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/input.idx", dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    char err[512];
    ds_dataset *d = NULL;
    if (idx_load_images(path, 0, &d, err, sizeof err) == CN_OK) {
        if (d->n_rows * d->n_features + 16 != size)
            abort();
        ds_dataset_free(d);
    }
    int32_t *labels = NULL;
    size_t n = 0;
    if (idx_load_labels(path, 0, &labels, &n, err, sizeof err) == CN_OK) {
        if (n + 8 != size)
            abort();
        free(labels);
    }
    return 0;
}
