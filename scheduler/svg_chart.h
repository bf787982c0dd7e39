// svg_chart.h: one SVG chart renderer for every figure canopy draws: the
// dashboard's charts (/api/jobs/<id>/<figure>.svg) and the report's figures
// are the same bytes from the same call, so a figure looks the same in both.
//
// Four kinds: line, scatter, bar (grouped, one bar per series in each
// category) and histogram (one series of bucket counts, bars touching).
// Axes carry "nice" ticks (1, 2 or 5 times a power of ten) with compact
// labels (12k, 3.5M); a legend names the series when there is more than one
// or a series is named. An empty chart draws its axes and says "no data";
// a single point gets a range around it; NaN and infinite values are
// skipped (a line breaks there).
//
// The output is a standalone <svg> element with presentation attributes
// only (no style attributes, no script), so it can be inlined in a page
// under a strict Content-Security-Policy. Structure, for tests and pages:
// <g class="axis x|y"> holding <g class="tick">, <g class="series"
// data-points="N"> per series (N = finite points drawn), <g class="legend">.
// Thread rule: pure functions; no state.
#ifndef CANOPY_SVG_CHART_H
#define CANOPY_SVG_CHART_H

#include <stddef.h>

#include "common/cn_buf.h"
#include "common/cn_err.h"

typedef enum { SVG_LINE = 0, SVG_SCATTER, SVG_BAR, SVG_HIST } svg_kind;

// One series. For line and scatter, (x[i], y[i]) are points; for bar and
// histogram, y[i] is the value of category i and x is ignored (may be NULL).
typedef struct svg_series {
    const char *name; // legend text; NULL or "" = unnamed
    const double *x;
    const double *y;
    size_t n;
} svg_series;

typedef struct svg_chart {
    svg_kind kind;
    const char *title;  // may be NULL
    const char *xlabel; // may be NULL
    const char *ylabel; // may be NULL
    const svg_series *series;
    size_t n_series;
    // Bar and histogram: the category labels along x (n_categories of
    // them); series values beyond n_categories are ignored.
    const char *const *categories;
    size_t n_categories;
    int width, height; // pixels; 0 = 640 x 360
} svg_chart;

// svg_chart_render appends the chart as one <svg> element to out.
// Errors: CN_ENOMEM.
cn_err svg_chart_render(const svg_chart *c, cn_buf *out);

// svg_escape appends s to out with &, <, >, " and ' escaped for XML text
// and attribute values. Errors: CN_ENOMEM.
cn_err svg_escape(cn_buf *out, const char *s);

// svg_nice_ticks chooses ticks for [lo, hi]: *step is 1, 2 or 5 times a
// power of ten so that about `want` ticks fall in the range, *first the
// first multiple of it at or above lo. Returns the number of ticks.
int svg_nice_ticks(double lo, double hi, int want, double *first, double *step);

// svg_format_tick writes v compactly for an axis whose ticks are step
// apart: "0.25", "1.5k", "12M", "-3".
void svg_format_tick(double v, double step, char *buf, size_t n);

#endif
