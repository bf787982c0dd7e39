# bench/lib.sh: what every benchmark prints beside its figures, sourced by
# the bench/*.sh scripts (sh and bash). A figure from one machine is only
# comparable with another's next to the CPU model, the BLAS core in use and
# the load at the time; rounds are repeated and the median is kept.

# bench_cpu prints the CPU model, e.g. "AMD EPYC (2 CPUs)".
bench_cpu() {
    m=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    echo "${m:-unknown CPU} ($(nproc) CPUs)"
}

# bench_blas CANOPY prints canopy's BLAS line: library, version, core and
# why, threads (see `canopy version`).
bench_blas() {
    "$1" version 2>/dev/null | sed -n 's/^blas: //p'
}

# bench_blas_core CANOPY prints just the OpenBLAS core canopy runs on.
bench_blas_core() {
    bench_blas "$1" | sed -n 's/.*core \([A-Za-z0-9_]*\) .*/\1/p'
}

# bench_load prints the 1, 5 and 15 minute load averages.
bench_load() {
    cut -d' ' -f1-3 /proc/loadavg
}

# bench_header NAME CANOPY ROUNDS prints the first lines of a benchmark.
bench_header() {
    echo "$1 benchmark: $(bench_cpu); $3 round(s), median kept"
    echo "  blas: $(bench_blas "$2")"
    echo "  load at start: $(bench_load)"
}

# median reads numbers, one a line, and prints their median.
median() {
    sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# bench_median_json KEY FILE... prints the FILE whose numeric JSON field KEY
# is the median (the upper one of two) over the files: the round to report.
bench_median_json() {
    key=$1
    shift
    for f in "$@"; do
        printf '%s %s\n' "$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$f" "$key")" "$f"
    done | sort -g | awk '{ f[NR] = $2 } END { print f[int(NR / 2) + 1] }'
}
