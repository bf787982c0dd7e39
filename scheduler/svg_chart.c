// svg_chart.c: the SVG chart renderer (svg_chart.h).
//
// Layout, in pixels: a title band on top, the y axis labels on the left, the
// x axis labels and the x label at the bottom; the plot area is what is
// left. Data ranges come from the finite values only; a range of zero width
// (one point, or all values equal) is widened around its value so the point
// sits in the middle. Bars and histograms always include zero.
#include "scheduler/svg_chart.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                "#9467bd", "#8c564b", "#e377c2", "#17becf"};
#define NPAL (sizeof palette / sizeof palette[0])

cn_err svg_escape(cn_buf *out, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            cn_buf_printf(out, "&amp;");
            break;
        case '<':
            cn_buf_printf(out, "&lt;");
            break;
        case '>':
            cn_buf_printf(out, "&gt;");
            break;
        case '"':
            cn_buf_printf(out, "&quot;");
            break;
        case '\'':
            cn_buf_printf(out, "&#39;");
            break;
        default:
            // Control characters are not allowed in XML 1.0 text.
            if ((unsigned char)*s >= 0x20 || *s == '\t' || *s == '\n')
                cn_buf_append(out, s, 1);
        }
    }
    return out->oom ? CN_ENOMEM : CN_OK;
}

int svg_nice_ticks(double lo, double hi, int want, double *first, double *step)
{
    if (!(hi > lo) || want < 1) {
        *first = lo;
        *step = 1;
        return 1;
    }
    double raw = (hi - lo) / want;
    double p = pow(10, floor(log10(raw)));
    double f = raw / p;
    double s = f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10;
    *step = s * p;
    *first = ceil(lo / *step - 1e-9) * *step;
    int n = 0;
    for (double v = *first; v <= hi + *step * 1e-9 && n < 50; v = *first + *step * ++n)
        ;
    return n;
}

void svg_format_tick(double v, double step, char *buf, size_t n)
{
    if (fabs(v) < step * 1e-6)
        v = 0;
    double a = fabs(v) > fabs(step) ? fabs(v) : fabs(step);
    const char *suffix = "";
    double scale = 1;
    if (a >= 1e9) {
        scale = 1e9;
        suffix = "G";
    } else if (a >= 1e6) {
        scale = 1e6;
        suffix = "M";
    } else if (a >= 1e4) {
        scale = 1e3;
        suffix = "k";
    }
    double s = step / scale;
    int decimals = s >= 1 ? 0 : (int)ceil(-log10(s) - 1e-9);
    if (decimals > 6)
        decimals = 6;
    snprintf(buf, n, "%.*f%s", decimals, v / scale, suffix);
}

typedef struct range {
    double lo, hi;
    size_t finite;
} range;

static void range_add(range *r, double v)
{
    if (!isfinite(v))
        return;
    if (r->finite == 0 || v < r->lo)
        r->lo = v;
    if (r->finite == 0 || v > r->hi)
        r->hi = v;
    r->finite++;
}

static void range_fix(range *r)
{
    if (r->finite == 0) {
        r->lo = 0;
        r->hi = 1;
    } else if (r->hi == r->lo) {
        double d = r->lo != 0 ? fabs(r->lo) * 0.1 : 1;
        r->lo -= d;
        r->hi += d;
    }
}

typedef struct frame {
    double x0, y0, w, h; // plot area
    range xr, yr;
} frame;

static double px(const frame *f, double x)
{
    return f->x0 + (x - f->xr.lo) / (f->xr.hi - f->xr.lo) * f->w;
}
static double py(const frame *f, double y)
{
    return f->y0 + f->h - (y - f->yr.lo) / (f->yr.hi - f->yr.lo) * f->h;
}

static bool is_bars(const svg_chart *c)
{
    return c->kind == SVG_BAR || c->kind == SVG_HIST;
}

static void axes(cn_buf *o, const svg_chart *c, frame *f)
{
    double first, step;
    // y axis: gridlines and labels
    int n = svg_nice_ticks(f->yr.lo, f->yr.hi, 5, &first, &step);
    cn_buf_printf(o, "<g class=\"axis y\" font-size=\"11\" fill=\"#333\">\n");
    for (int i = 0; i < n; i++) {
        double v = first + step * i;
        double y = py(f, v);
        char lab[32];
        svg_format_tick(v, step, lab, sizeof lab);
        cn_buf_printf(o,
                      "<g class=\"tick\"><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                      "stroke=\"#e4e4e4\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s"
                      "</text></g>\n",
                      f->x0, y, f->x0 + f->w, y, f->x0 - 6, y + 4, lab);
    }
    cn_buf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
                  f->x0, f->y0, f->x0, f->y0 + f->h);
    if (c->ylabel && *c->ylabel) {
        cn_buf_printf(o,
                      "<text class=\"label\" transform=\"translate(14,%.1f) rotate(-90)\" "
                      "text-anchor=\"middle\" font-size=\"12\">",
                      f->y0 + f->h / 2);
        svg_escape(o, c->ylabel);
        cn_buf_printf(o, "</text>\n");
    }
    cn_buf_printf(o, "</g>\n<g class=\"axis x\" font-size=\"11\" fill=\"#333\">\n");
    double base = f->y0 + f->h;
    if (is_bars(c)) {
        size_t nc = c->n_categories;
        // Label at most about 12 categories so labels never overlap.
        size_t every = nc > 12 ? (nc + 11) / 12 : 1;
        for (size_t i = 0; i < nc; i += every) {
            double x = f->x0 + ((double)i + 0.5) * f->w / (double)nc;
            cn_buf_printf(o,
                          "<g class=\"tick\"><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                          "y2=\"%.1f\" stroke=\"#333\"/><text x=\"%.1f\" y=\"%.1f\" "
                          "text-anchor=\"middle\">",
                          x, base, x, base + 4, x, base + 16);
            svg_escape(o, c->categories[i]);
            cn_buf_printf(o, "</text></g>\n");
        }
    } else {
        n = svg_nice_ticks(f->xr.lo, f->xr.hi, 6, &first, &step);
        for (int i = 0; i < n; i++) {
            double v = first + step * i;
            double x = px(f, v);
            char lab[32];
            svg_format_tick(v, step, lab, sizeof lab);
            cn_buf_printf(o,
                          "<g class=\"tick\"><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                          "y2=\"%.1f\" stroke=\"#333\"/><text x=\"%.1f\" y=\"%.1f\" "
                          "text-anchor=\"middle\">%s</text></g>\n",
                          x, base, x, base + 4, x, base + 16, lab);
        }
    }
    cn_buf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
                  f->x0, base, f->x0 + f->w, base);
    if (c->xlabel && *c->xlabel) {
        cn_buf_printf(o,
                      "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                      "font-size=\"12\">",
                      f->x0 + f->w / 2, base + 34);
        svg_escape(o, c->xlabel);
        cn_buf_printf(o, "</text>\n");
    }
    cn_buf_printf(o, "</g>\n");
}

static void series_xy(cn_buf *o, const svg_chart *c, const frame *f, size_t s)
{
    const svg_series *se = &c->series[s];
    const char *col = palette[s % NPAL];
    size_t drawn = 0;
    for (size_t i = 0; i < se->n; i++)
        drawn += isfinite(se->x[i]) && isfinite(se->y[i]);
    cn_buf_printf(o, "<g class=\"series\" data-points=\"%zu\" fill=\"%s\" stroke=\"%s\">\n", drawn,
                  col, col);
    if (c->kind == SVG_LINE && drawn > 1) {
        cn_buf_printf(o, "<path fill=\"none\" stroke-width=\"2\" d=\"");
        bool pen = false;
        for (size_t i = 0; i < se->n; i++) {
            if (!isfinite(se->x[i]) || !isfinite(se->y[i])) {
                pen = false; // a gap: the line breaks at a missing value
                continue;
            }
            cn_buf_printf(o, "%c%.1f %.1f ", pen ? 'L' : 'M', px(f, se->x[i]), py(f, se->y[i]));
            pen = true;
        }
        cn_buf_printf(o, "\"/>\n");
    }
    // Markers: every scatter point; a line's points when there are few.
    if (c->kind == SVG_SCATTER || drawn <= 60)
        for (size_t i = 0; i < se->n; i++)
            if (isfinite(se->x[i]) && isfinite(se->y[i]))
                cn_buf_printf(o, "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"%d\"/>\n",
                              px(f, se->x[i]), py(f, se->y[i]), c->kind == SVG_SCATTER ? 4 : 2);
    cn_buf_printf(o, "</g>\n");
}

static void series_bars(cn_buf *o, const svg_chart *c, const frame *f)
{
    size_t nc = c->n_categories, ns = c->n_series;
    double slot = f->w / (double)(nc ? nc : 1);
    bool hist = c->kind == SVG_HIST;
    double gap = hist ? 0 : slot * 0.15;
    double bw = (slot - 2 * gap) / (double)(ns ? ns : 1);
    for (size_t s = 0; s < ns; s++) {
        const svg_series *se = &c->series[s];
        size_t m = se->n < nc ? se->n : nc, drawn = 0;
        for (size_t i = 0; i < m; i++)
            drawn += isfinite(se->y[i]);
        cn_buf_printf(o, "<g class=\"series\" data-points=\"%zu\" fill=\"%s\">\n", drawn,
                      palette[s % NPAL]);
        for (size_t i = 0; i < m; i++) {
            if (!isfinite(se->y[i]))
                continue;
            double y0 = py(f, 0 > f->yr.lo ? 0 : f->yr.lo), y1 = py(f, se->y[i]);
            double top = y1 < y0 ? y1 : y0, h = fabs(y0 - y1);
            cn_buf_printf(o,
                          "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                          "height=\"%.1f\"%s/>\n",
                          f->x0 + (double)i * slot + gap + (double)s * bw, top,
                          bw > 1.5 && hist ? bw - 1 : bw, h, hist ? " stroke=\"#fff\"" : "");
        }
        cn_buf_printf(o, "</g>\n");
    }
}

static void legend(cn_buf *o, const svg_chart *c, const frame *f)
{
    bool named = false;
    for (size_t s = 0; s < c->n_series; s++)
        named |= c->series[s].name && *c->series[s].name;
    if (!named && c->n_series < 2)
        return;
    size_t longest = 4;
    for (size_t s = 0; s < c->n_series; s++) {
        size_t l = c->series[s].name ? strlen(c->series[s].name) : 0;
        longest = l > longest ? l : longest;
    }
    double w = 24 + 6.5 * (double)(longest > 40 ? 40 : longest);
    double x = f->x0 + f->w - w - 4, y = f->y0 + 4;
    cn_buf_printf(o,
                  "<g class=\"legend\" font-size=\"11\"><rect x=\"%.1f\" y=\"%.1f\" "
                  "width=\"%.1f\" height=\"%.1f\" fill=\"#fff\" fill-opacity=\"0.85\" "
                  "stroke=\"#ccc\"/>\n",
                  x, y, w, 6 + 15.0 * (double)c->n_series);
    for (size_t s = 0; s < c->n_series; s++) {
        double yy = y + 6 + 15.0 * (double)s;
        cn_buf_printf(o,
                      "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                      "<text x=\"%.1f\" y=\"%.1f\">",
                      x + 6, yy + 1, palette[s % NPAL], x + 20, yy + 10);
        const char *name = c->series[s].name;
        if (name && *name)
            svg_escape(o, name);
        else
            cn_buf_printf(o, "series %zu", s + 1);
        cn_buf_printf(o, "</text>\n");
    }
    cn_buf_printf(o, "</g>\n");
}

cn_err svg_chart_render(const svg_chart *c, cn_buf *o)
{
    int W = c->width > 0 ? c->width : 640, H = c->height > 0 ? c->height : 360;
    frame f = {.x0 = 64, .y0 = 34, .w = W - 64 - 16, .h = H - 34 - 50};
    size_t total = 0;
    for (size_t s = 0; s < c->n_series; s++) {
        const svg_series *se = &c->series[s];
        for (size_t i = 0; i < se->n; i++) {
            if (is_bars(c)) {
                if (i < c->n_categories)
                    range_add(&f.yr, se->y[i]);
                continue;
            }
            if (!isfinite(se->x[i]) || !isfinite(se->y[i]))
                continue;
            range_add(&f.xr, se->x[i]);
            range_add(&f.yr, se->y[i]);
        }
    }
    total = f.yr.finite;
    if (is_bars(c)) {
        range_add(&f.yr, 0); // bars grow from zero
        f.xr.lo = 0;
        f.xr.hi = 1;
        f.xr.finite = 1;
    }
    range_fix(&f.xr);
    range_fix(&f.yr);
    // Leave a little air above and below the data (not below a bar's zero).
    double pad = (f.yr.hi - f.yr.lo) * 0.05;
    f.yr.hi += pad;
    if (!is_bars(c) || f.yr.lo < 0)
        f.yr.lo -= pad;
    cn_buf_printf(o,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"%d\" "
                  "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n"
                  "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n",
                  W, H, W, H, W, H);
    if (c->title && *c->title) {
        cn_buf_printf(o,
                      "<text class=\"title\" x=\"%d\" y=\"20\" text-anchor=\"middle\" "
                      "font-size=\"14\" font-weight=\"bold\">",
                      W / 2);
        svg_escape(o, c->title);
        cn_buf_printf(o, "</text>\n");
    }
    axes(o, c, &f);
    if (total == 0)
        cn_buf_printf(o,
                      "<text class=\"empty\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                      "font-size=\"13\" fill=\"#888\">no data</text>\n",
                      f.x0 + f.w / 2, f.y0 + f.h / 2);
    if (is_bars(c))
        series_bars(o, c, &f);
    else
        for (size_t s = 0; s < c->n_series; s++)
            series_xy(o, c, &f, s);
    legend(o, c, &f);
    cn_buf_printf(o, "</svg>\n");
    return o->oom ? CN_ENOMEM : CN_OK;
}
