// csv.h: loading a labelled or unlabelled data set from a CSV file
// (optionally gzip-compressed) with libcsv.
//
// Every column except the label and the dropped id columns becomes a float
// feature. Label values must be integers; they are mapped to class indices
// in ascending order of value, and the values are kept in class_values.
// Errors say file, line and column and how to fix the input.
#ifndef CANOPY_CSV_H
#define CANOPY_CSV_H

#include <stdbool.h>
#include <stddef.h>

#include "common/cn_err.h"
#include "ml/ds.h"

typedef enum {
    CSV_LABEL_INDEX, // the column at label_index (the default: the last column)
    CSV_LABEL_NAME,  // the column whose header is label_name (needs a header)
    CSV_LABEL_NONE,  // no label column: every non-id column is a feature
} csv_label_mode;

// csv_options says how to read a file. Start from csv_options_default().
typedef struct csv_options {
    bool has_header;           // true: line 1 names the columns
    csv_label_mode label_mode; // CSV_LABEL_INDEX
    const char *label_name;    // for CSV_LABEL_NAME (borrowed)
    int label_index;     // for CSV_LABEL_INDEX: 0-based; negative counts from the end (-1 = last)
    bool label_optional; // CSV_LABEL_NAME: a file without that column loads unlabelled
    bool allow_single_class;  // false: a label column with one distinct value is an error
    const char *drop_columns; // comma-separated header names to drop ("Id"); the first one
                              // present must hold integers and is kept in ids. NULL = none.
    size_t max_rows;          // 0 = all rows; otherwise stop after this many data rows
} csv_options;

// csv_options_default: header, label = last column, drop "Id", all rows.
csv_options csv_options_default(void);

// ds_load_csv reads path (gzip detected by content) into a new data set
// (*out, freed with ds_dataset_free). Errors (err filled, *out NULL):
// CN_ENOTFOUND / CN_EIO (file), CN_EFORMAT (empty file, no data rows,
// ragged row "f.csv:812: expected 56 fields, found 55", a non-number
// "f.csv:4:3 (Slope): \"abc\" is not a number", a non-integer label or id,
// a malformed quote), CN_ENOTFOUND (label column name not in the header;
// the message lists the columns), CN_EINVAL (label index outside the row,
// label by name without a header, a single class, no feature columns),
// CN_ENOMEM.
cn_err ds_load_csv(const char *path, const csv_options *opt, ds_dataset **out, char *err,
                   size_t errlen);

// ds_parse_csv is ds_load_csv on text already in memory (len bytes, not
// necessarily NUL-terminated); origin names it in messages.
cn_err ds_parse_csv(const char *text, size_t len, const char *origin, const csv_options *opt,
                    ds_dataset **out, char *err, size_t errlen);

#endif
