// csv_load.c: CSV files to ds_dataset with libcsv (see csv.h).
//
// The text is fed to libcsv one physical line at a time so that every
// record ends on a known line number for error messages. Field callbacks
// collect one record's fields; the record callback converts it to numbers.
// libcsv's callbacks cannot fail, so the first error is stored in the
// context and later input is ignored.
#include "ml/csv.h"

#include <csv_impl.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_buf.h"
#include "common/cn_file.h"

csv_options csv_options_default(void)
{
    csv_options o;
    memset(&o, 0, sizeof o);
    o.has_header = true;
    o.label_mode = CSV_LABEL_INDEX;
    o.label_index = -1;
    o.drop_columns = "Id";
    return o;
}

typedef struct ctx {
    const char *origin;
    const csv_options *opt;
    char *err;
    size_t errlen;
    cn_err status;
    size_t line;
    // Fields of the current record: text in fbuf, starts in foff.
    char *fbuf;
    size_t flen, fcap;
    size_t *foff;
    size_t nfield, fieldcap;
    // Layout, known after the first record.
    int have_layout;
    size_t ncols;
    char **names;   // (ncols) header names, or NULL
    int *role;      // (ncols): 0 feature, 1 label, 2 kept id, 3 dropped
    long label_col; // -1 if none
    size_t nf;      // features per row
    // Data.
    float *x;
    size_t xcap;
    int64_t *labels;
    int64_t *ids;
    size_t rows, rowcap;
    int has_ids;
    int done; // max_rows reached
} ctx;

static void fail(ctx *c, cn_err e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(ctx *c, cn_err e, const char *fmt, ...)
{
    if (c->status != CN_OK)
        return;
    c->status = e;
    if (c->err && c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
}

static void on_field(void *s, size_t len, void *data)
{
    ctx *c = data;
    if (c->status != CN_OK || c->done)
        return;
    if (c->nfield == c->fieldcap) {
        size_t cap = c->fieldcap ? c->fieldcap * 2 : 64;
        size_t *o = realloc(c->foff, cap * sizeof *o);
        if (o == NULL) {
            fail(c, CN_ENOMEM, "%s: out of memory", c->origin);
            return;
        }
        c->foff = o;
        c->fieldcap = cap;
    }
    if (c->flen + len + 1 > c->fcap) {
        size_t cap = c->fcap ? c->fcap : 1024;
        while (c->flen + len + 1 > cap)
            cap *= 2;
        char *b = realloc(c->fbuf, cap);
        if (b == NULL) {
            fail(c, CN_ENOMEM, "%s: out of memory", c->origin);
            return;
        }
        c->fbuf = b;
        c->fcap = cap;
    }
    c->foff[c->nfield++] = c->flen;
    if (len)
        memcpy(c->fbuf + c->flen, s, len);
    c->fbuf[c->flen + len] = 0;
    c->flen += len + 1;
}

static const char *field(const ctx *c, size_t i)
{
    return c->fbuf + c->foff[i];
}

// in_list reports whether name is one of the comma-separated names in list.
static int in_list(const char *list, const char *name)
{
    if (list == NULL)
        return 0;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        if (e == NULL)
            break;
        p = e + 1;
    }
    return 0;
}

static void set_layout(ctx *c)
{
    const csv_options *o = c->opt;
    c->ncols = c->nfield;
    c->role = calloc(c->ncols, sizeof *c->role);
    if (c->role == NULL) {
        fail(c, CN_ENOMEM, "%s: out of memory", c->origin);
        return;
    }
    if (o->has_header) {
        c->names = calloc(c->ncols, sizeof *c->names);
        if (c->names == NULL) {
            fail(c, CN_ENOMEM, "%s: out of memory", c->origin);
            return;
        }
        for (size_t i = 0; i < c->ncols; i++)
            if ((c->names[i] = strdup(field(c, i))) == NULL) {
                fail(c, CN_ENOMEM, "%s: out of memory", c->origin);
                return;
            }
    }
    c->label_col = -1;
    if (o->label_mode == CSV_LABEL_INDEX) {
        long li = o->label_index < 0 ? (long)c->ncols + o->label_index : o->label_index;
        if (li < 0 || li >= (long)c->ncols) {
            fail(c, CN_EINVAL,
                 "%s:%zu: label column index %d is outside the %zu columns (use 0..%zu, or -1 "
                 "for the last)",
                 c->origin, c->line, o->label_index, c->ncols, c->ncols - 1);
            return;
        }
        c->label_col = li;
    } else if (o->label_mode == CSV_LABEL_NAME) {
        if (!o->has_header) {
            fail(c, CN_EINVAL,
                 "%s: the label column is chosen by name (\"%s\") but the file has no header; "
                 "choose it by position instead",
                 c->origin, o->label_name ? o->label_name : "");
            return;
        }
        for (size_t i = 0; i < c->ncols; i++)
            if (o->label_name && strcmp(c->names[i], o->label_name) == 0)
                c->label_col = (long)i;
        if (c->label_col < 0 && !o->label_optional) {
            cn_buf b;
            cn_buf_init(&b);
            for (size_t i = 0; i < c->ncols; i++)
                cn_buf_printf(&b, "%s%s", i ? ", " : "", c->names[i]);
            fail(c, CN_ENOTFOUND,
                 "%s: no label column named \"%s\"; the columns are: %s (choose the label "
                 "column by one of these names or by position)",
                 c->origin, o->label_name ? o->label_name : "", b.data ? b.data : "");
            cn_buf_fini(&b);
            return;
        }
    }
    c->nf = 0;
    for (size_t i = 0; i < c->ncols; i++) {
        if ((long)i == c->label_col)
            c->role[i] = 1;
        else if (c->names && in_list(o->drop_columns, c->names[i])) {
            c->role[i] = c->has_ids ? 3 : 2;
            c->has_ids = 1;
        } else
            c->nf++;
    }
    if (c->nf == 0) {
        fail(c, CN_EINVAL, "%s: no feature columns left after removing the label and id columns",
             c->origin);
        return;
    }
    c->have_layout = 1;
}

static int grow_rows(ctx *c)
{
    if (c->rows < c->rowcap)
        return 1;
    size_t cap = c->rowcap ? c->rowcap * 2 : 1024;
    float *x = realloc(c->x, cap * c->nf * sizeof *x);
    if (x == NULL)
        return 0;
    c->x = x;
    int64_t *l = realloc(c->labels, cap * sizeof *l);
    if (l == NULL)
        return 0;
    c->labels = l;
    int64_t *id = realloc(c->ids, cap * sizeof *id);
    if (id == NULL)
        return 0;
    c->ids = id;
    c->rowcap = cap;
    return 1;
}

static void col_where(const ctx *c, size_t i, char *buf, size_t n)
{
    if (c->names)
        snprintf(buf, n, "%s:%zu:%zu (%s)", c->origin, c->line, i + 1, c->names[i]);
    else
        snprintf(buf, n, "%s:%zu:%zu", c->origin, c->line, i + 1);
}

static void on_record(int term, void *data)
{
    (void)term;
    ctx *c = data;
    if (c->status != CN_OK || c->done)
        goto reset;
    if (!c->have_layout) {
        set_layout(c);
        if (c->status != CN_OK || c->opt->has_header)
            goto reset;
    }
    if (c->nfield != c->ncols) {
        fail(c, CN_EFORMAT,
             "%s:%zu: expected %zu fields, found %zu (every row needs one value "
             "per column of the %s)",
             c->origin, c->line, c->ncols, c->nfield, c->opt->has_header ? "header" : "first row");
        goto reset;
    }
    if (!grow_rows(c)) {
        fail(c, CN_ENOMEM, "%s: out of memory at line %zu", c->origin, c->line);
        goto reset;
    }
    float *row = c->x + c->rows * c->nf;
    size_t j = 0;
    for (size_t i = 0; i < c->ncols; i++) {
        const char *s = field(c, i);
        char where[512];
        char *end;
        if (c->role[i] == 3)
            continue;
        errno = 0;
        double v = strtod(s, &end);
        while (*end == ' ' || *end == '\t' || *end == '\r')
            end++;
        if (end == s || *end != 0 || errno == ERANGE) {
            col_where(c, i, where, sizeof where);
            fail(c, CN_EFORMAT, "%s: \"%s\" is not a number (fix or remove this value)", where, s);
            goto reset;
        }
        if (!isfinite(v) || (c->role[i] == 0 && !isfinite((float)v))) {
            // Features are stored as float: 1e39 is finite as a double only.
            col_where(c, i, where, sizeof where);
            fail(c, CN_EFORMAT, "%s: \"%s\" is not a finite number%s (fix or remove this value)",
                 where, s, isfinite(v) ? " as a 32-bit float (|x| <= 3.4e38)" : "");
            goto reset;
        }
        if (c->role[i] == 0) {
            row[j++] = (float)v;
        } else {
            if (v != floor(v) || fabs(v) > 2147483647.0) {
                col_where(c, i, where, sizeof where);
                fail(c, CN_EFORMAT, "%s: \"%s\" is not an integer (%s values must be integers)",
                     where, s, c->role[i] == 1 ? "label" : "id");
                goto reset;
            }
            if (c->role[i] == 1)
                c->labels[c->rows] = (int64_t)v;
            else
                c->ids[c->rows] = (int64_t)v;
        }
    }
    c->rows++;
    if (c->opt->max_rows && c->rows >= c->opt->max_rows)
        c->done = 1;
reset:
    c->nfield = 0;
    c->flen = 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static cn_err build(ctx *c, ds_dataset **out)
{
    const csv_options *o = c->opt;
    int labelled = c->label_col >= 0;
    ds_dataset *d = ds_dataset_new(0, c->nf, 0);
    if (d == NULL)
        return cn_errf(c->err, c->errlen, CN_ENOMEM, "%s: out of memory", c->origin);
    free(d->x);
    d->x = c->x;
    c->x = NULL;
    d->n_rows = c->rows;
    if (c->has_ids) {
        d->ids = c->ids;
        c->ids = NULL;
    }
    if (c->names) {
        d->feature_names = calloc(c->nf, sizeof(char *));
        if (d->feature_names == NULL)
            goto oom;
        size_t j = 0;
        for (size_t i = 0; i < c->ncols; i++) {
            if (c->role[i] != 0)
                continue;
            d->feature_names[j++] = c->names[i];
            c->names[i] = NULL;
        }
    }
    if (labelled) {
        if (c->names)
            snprintf(d->label_name, sizeof d->label_name, "%s", c->names[c->label_col]);
        int64_t *sorted = malloc(c->rows * sizeof *sorted);
        if (sorted == NULL)
            goto oom;
        memcpy(sorted, c->labels, c->rows * sizeof *sorted);
        qsort(sorted, c->rows, sizeof *sorted, cmp_i64);
        size_t k = 0;
        for (size_t i = 0; i < c->rows; i++)
            if (i == 0 || sorted[i] != sorted[i - 1])
                sorted[k++] = sorted[i];
        if (k < 2 && !o->allow_single_class) {
            long long only = (long long)sorted[0];
            free(sorted);
            ds_dataset_free(d);
            return cn_errf(c->err, c->errlen, CN_EINVAL,
                           "%s: the label column%s%s%s has a single class (%lld) in %zu rows; a "
                           "classifier needs at least 2 (check the label column)",
                           c->origin, c->names ? " \"" : "", c->names ? c->names[c->label_col] : "",
                           c->names ? "\"" : "", only, c->rows);
        }
        d->n_classes = (int)k;
        d->class_values = malloc(k * sizeof *d->class_values);
        d->y = malloc(c->rows * sizeof *d->y);
        if (d->class_values == NULL || d->y == NULL) {
            free(sorted);
            goto oom;
        }
        for (size_t i = 0; i < k; i++)
            d->class_values[i] = (int32_t)sorted[i];
        for (size_t i = 0; i < c->rows; i++) {
            size_t lo = 0, hi = k;
            while (hi - lo > 1) {
                size_t m = (lo + hi) / 2;
                if (sorted[m] <= c->labels[i])
                    lo = m;
                else
                    hi = m;
            }
            d->y[i] = (int32_t)lo;
        }
        free(sorted);
    }
    *out = d;
    return CN_OK;
oom:
    ds_dataset_free(d);
    return cn_errf(c->err, c->errlen, CN_ENOMEM, "%s: out of memory", c->origin);
}

cn_err ds_parse_csv(const char *text, size_t len, const char *origin, const csv_options *opt,
                    ds_dataset **out, char *err, size_t errlen)
{
    *out = NULL;
    csv_options def = csv_options_default();
    if (opt == NULL)
        opt = &def;
    ctx c;
    memset(&c, 0, sizeof c);
    c.origin = origin;
    c.opt = opt;
    c.err = err;
    c.errlen = errlen;
    size_t blank = 0;
    while (blank < len && (text[blank] == ' ' || text[blank] == '\n' || text[blank] == '\r' ||
                           text[blank] == '\t'))
        blank++;
    if (blank == len)
        return cn_errf(err, errlen, CN_EFORMAT,
                       "%s: the file is empty (expected %s rows of comma-separated values)", origin,
                       opt->has_header ? "a header line and" : "");
    struct csv_parser p;
    if (csv_init(&p, CSV_APPEND_NULL) != 0)
        return cn_errf(err, errlen, CN_ENOMEM, "%s: out of memory", origin);
    size_t pos = 0;
    while (pos < len && c.status == CN_OK && !c.done) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) + 1 : len;
        c.line++;
        if (csv_parse(&p, text + pos, end - pos, on_field, on_record, &c) != end - pos)
            fail(&c, CN_EFORMAT, "%s:%zu: %s", origin, c.line, csv_strerror(csv_error(&p)));
        pos = end;
    }
    if (c.status == CN_OK && !c.done)
        csv_fini(&p, on_field, on_record, &c);
    csv_free(&p);
    cn_err e = c.status;
    if (e == CN_OK && c.rows == 0)
        e = cn_errf(err, errlen, CN_EFORMAT, "%s: no data rows%s", origin,
                    opt->has_header ? " after the header" : "");
    if (e == CN_OK)
        e = build(&c, out);
    free(c.fbuf);
    free(c.foff);
    if (c.names)
        for (size_t i = 0; i < c.ncols; i++)
            free(c.names[i]);
    free(c.names);
    free(c.role);
    free(c.x);
    free(c.labels);
    free(c.ids);
    return e;
}

cn_err ds_load_csv(const char *path, const csv_options *opt, ds_dataset **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    uint8_t *data;
    size_t len;
    cn_err e = cn_file_read_all(path, 0, &data, &len, err, errlen);
    if (e != CN_OK)
        return e;
    e = ds_parse_csv((const char *)data, len, path, opt, out, err, errlen);
    free(data);
    return e;
}
