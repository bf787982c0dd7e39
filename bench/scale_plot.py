#!/usr/bin/python3
"""Summary of bench/scale.sh: reads the measurements (tab-separated lines
"panel, series, x, seconds"), fits the exponent b of seconds = a * x^b by least squares on
logs, writes a markdown table and an SVG plot (log-log, one panel per
measurement, no libraries), and prints the last line
  scale: forest_rows_exponent=E ps_params_exponent=F
Usage: scale_plot.py MEASUREMENTS.tsv TABLE.md PLOT.svg "LEGEND LINE" """
import math
import statistics
import sys
from collections import defaultdict

PANELS = [
    ("forest_rows", "forest fit vs rows", "rows", "s"),
    ("forest_trees", "forest fit vs trees", "trees", "s"),
    ("sweep", "sweep vs trials", "trials", "s"),
    ("ps", "ps push-pull vs parameters", "parameters", "s per step"),
]
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def fit(points):
    """Least-squares slope and intercept of log(y) on log(x)."""
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    if len(xs) < 2:
        return float("nan"), float("nan")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return b, my - b * mx


def load(path):
    """panel -> series -> x -> median seconds over rounds."""
    raw = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for line in open(path):
        panel, series, x, y = line.rstrip("\n").split("\t")
        raw[panel][series][float(x)].append(float(y))
    return {p: {s: sorted((x, statistics.median(v)) for x, v in d.items())
                for s, d in ser.items()} for p, ser in raw.items()}


def fmt(v):
    return "%.3g" % v


def ticks(l0, l1):
    """Tick values between 10^l0 and 10^l1: decades, or 1-2-5 steps when the
    range spans less than two decades."""
    steps = (1,) if l1 - l0 >= 2 else (1, 2, 5)
    return [m * 10 ** e for e in range(math.floor(l0), math.ceil(l1) + 1) for m in steps
            if l0 <= math.log10(m * 10 ** e) <= l1]


def svg(data, legend, path):
    w, h, pw, ph = 1060, 760, 440, 300
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (w, h),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="18" font-size="13">%s</text>' % legend]
    for i, (key, title, xl, yl) in enumerate(PANELS):
        ox, oy = 70 + (i % 2) * (pw + 80), 50 + (i // 2) * (ph + 70)
        series = data.get(key, {})
        pts = [p for s in series.values() for p in s]
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>'
                   % (ox, oy, pw, ph))
        out.append('<text x="%d" y="%d" font-size="13">%s (log-log)</text>' % (ox, oy - 6, title))
        out.append('<text x="%d" y="%d">%s</text>' % (ox + pw / 2 - 20, oy + ph + 32, xl))
        out.append('<text x="%d" y="%d" transform="rotate(-90 %d %d)">%s</text>'
                   % (ox - 44, oy + ph / 2 + 20, ox - 44, oy + ph / 2 + 20, yl))
        if not pts:
            continue
        lx0, lx1 = math.log10(min(x for x, _ in pts)), math.log10(max(x for x, _ in pts))
        ly0, ly1 = math.log10(min(y for _, y in pts)), math.log10(max(y for _, y in pts))
        lx1, ly1 = max(lx1, lx0 + 1e-9), max(ly1, ly0 + 1e-9)
        padx, pady = (lx1 - lx0) * 0.06, (ly1 - ly0) * 0.08
        lx0, lx1, ly0, ly1 = lx0 - padx, lx1 + padx, ly0 - pady, ly1 + pady

        def px(x):
            return ox + (math.log10(x) - lx0) / (lx1 - lx0) * pw

        def py(y):
            return oy + ph - (math.log10(y) - ly0) / (ly1 - ly0) * ph

        for v in ticks(lx0, lx1):
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>'
                       % (px(v), oy, px(v), oy + ph))
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%g</text>'
                       % (px(v), oy + ph + 15, v))
        for v in ticks(ly0, ly1):
            out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
                       % (ox, py(v), ox + pw, py(v)))
            out.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>'
                       % (ox - 4, py(v) + 4, v))
        for j, (name, s) in enumerate(sorted(series.items())):
            c = COLORS[j % len(COLORS)]
            b, _ = fit(s)
            out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                       % (c, " ".join("%.1f,%.1f" % (px(x), py(y)) for x, y in s)))
            for x, y in s:
                out.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' % (px(x), py(y), c))
            out.append('<text x="%d" y="%d" fill="%s">%s: slope %.2f</text>'
                       % (ox + 8, oy + 16 + 14 * j, c, name, b))
    out.append("</svg>")
    open(path, "w").write("\n".join(out) + "\n")


def main():
    data = load(sys.argv[1])
    rows = ["| measurement | series | size | seconds (median) |", "| --- | --- | --- | --- |"]
    slopes = {}
    for key, title, xl, _ in PANELS:
        for name, s in sorted(data.get(key, {}).items()):
            for x, y in s:
                rows.append("| %s | %s | %s %s | %s |" % (title, name, fmt(x), xl, fmt(y)))
            slopes[(key, name)] = fit(s)[0]
            rows.append("| %s | %s | fitted exponent | **%.2f** |" % (title, name, slopes[(key, name)]))
    open(sys.argv[2], "w").write("\n".join(rows) + "\n")
    print("\n".join(rows))
    svg(data, sys.argv[4], sys.argv[3])
    fr = slopes.get(("forest_rows", "fit"), float("nan"))
    pp = slopes.get(("ps", "1 shard"), float("nan"))
    print("scale: forest_rows_exponent=%.2f ps_params_exponent=%.2f" % (fr, pp))


if __name__ == "__main__":
    main()
