// metrics.c: accuracy, balanced accuracy, macro F1 and confusion tables.
#include "ml/metrics.h"

#include <string.h>

cn_err metrics_confusion(const int32_t *y_true, const int32_t *y_pred, size_t n, int k,
                         uint64_t *cm)
{
    memset(cm, 0, (size_t)k * (size_t)k * sizeof *cm);
    for (size_t i = 0; i < n; i++) {
        if (y_true[i] < 0 || y_true[i] >= k || y_pred[i] < 0 || y_pred[i] >= k)
            return CN_ERANGE;
        cm[(size_t)y_true[i] * (size_t)k + (size_t)y_pred[i]]++;
    }
    return CN_OK;
}

double metrics_accuracy(const uint64_t *cm, int k)
{
    uint64_t tot = 0, ok = 0;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) {
            tot += cm[i * k + j];
            if (i == j)
                ok += cm[i * k + j];
        }
    return tot ? (double)ok / (double)tot : 0.0;
}

double metrics_balanced_accuracy(const uint64_t *cm, int k)
{
    double sum = 0;
    int present = 0;
    for (int i = 0; i < k; i++) {
        uint64_t row = 0;
        for (int j = 0; j < k; j++)
            row += cm[i * k + j];
        if (row) {
            sum += (double)cm[i * k + i] / (double)row;
            present++;
        }
    }
    return present ? sum / present : 0.0;
}

double metrics_macro_f1(const uint64_t *cm, int k)
{
    double sum = 0;
    int present = 0;
    for (int c = 0; c < k; c++) {
        uint64_t tp = cm[c * k + c], row = 0, col = 0;
        for (int j = 0; j < k; j++) {
            row += cm[c * k + j];
            col += cm[j * k + c];
        }
        if (row == 0 && col == 0)
            continue;
        present++;
        if (tp)
            sum += 2.0 * (double)tp / (double)(row + col);
    }
    return present ? sum / present : 0.0;
}

cn_err metrics_format_confusion(const uint64_t *cm, int k, const int32_t *labels, cn_buf *out)
{
    cn_buf_printf(out, "%10s", "true\\pred");
    for (int j = 0; j < k; j++)
        cn_buf_printf(out, " %7d", labels ? labels[j] : j);
    cn_buf_printf(out, "\n");
    for (int i = 0; i < k; i++) {
        cn_buf_printf(out, "%10d", labels ? labels[i] : i);
        for (int j = 0; j < k; j++)
            cn_buf_printf(out, " %7llu", (unsigned long long)cm[i * k + j]);
        cn_buf_printf(out, "\n");
    }
    return out->oom ? CN_ENOMEM : CN_OK;
}
