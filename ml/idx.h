// idx.h: loading MNIST-format IDX files (images and labels) into a data set.
//
// The IDX format is a big-endian header (magic 0x00000803 for a uint8 3-D
// image tensor, 0x00000801 for a uint8 label vector, then one uint32 per
// dimension) followed by the raw bytes. Files may be gzip-compressed or raw
// (detected by content, not by name). Every header is checked against the
// file's actual size before any data is read, so a truncated download gives
// a clear error naming the file instead of garbage rows.
// Thread rule: the functions keep no state; call them from any thread.
#ifndef CANOPY_IDX_H
#define CANOPY_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "common/cn_err.h"
#include "ml/ds.h"

// IDX_MAGIC_IMAGES and IDX_MAGIC_LABELS are the two supported magic numbers
// (type byte 0x08 = unsigned byte, then the number of dimensions).
#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u

// idx_load_images reads an image file into a new unlabelled data set of
// (rows, height*width) features scaled from 0..255 to [0, 1]. max_rows > 0
// keeps only the first max_rows images (0 = all). On success *out is owned by
// the caller (ds_dataset_free).
// Errors: CN_ENOTFOUND (no such file), CN_EIO, CN_EFORMAT (bad magic, zero
// dimensions, or header and file size disagree, e.g. "t10k-images: header
// says 10000x28x28 = 7840016 bytes, file has 7840000"), CN_ENOMEM; err names
// the file.
cn_err idx_load_images(const char *path, size_t max_rows, ds_dataset **out, char *err,
                       size_t errlen);

// idx_load_labels reads a label file into a new array of *n labels (values
// 0..255). max_rows as above. On success *labels is owned by the caller
// (free()). Errors as for idx_load_images.
cn_err idx_load_labels(const char *path, size_t max_rows, int32_t **labels, size_t *n, char *err,
                       size_t errlen);

// idx_load reads an image file and its label file into one labelled data
// set. The label count must equal the image count (before max_rows is
// applied), else CN_EFORMAT naming both files. Class indices equal the label
// values: n_classes = largest label + 1 and class_values = 0..n_classes-1, so
// a training and a test file agree on the index of every class even when
// one of them lacks a class. Errors as for idx_load_images.
cn_err idx_load(const char *images_path, const char *labels_path, size_t max_rows, ds_dataset **out,
                char *err, size_t errlen);

#endif
