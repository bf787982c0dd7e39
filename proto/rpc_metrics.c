// rpc_metrics.c: per-method RPC counters and their Prometheus text
// exposition. Recording is a handful of relaxed atomic adds so it can run on
// the hot path of every call from any thread; writing reads the counters
// without a lock.
#include "proto/rpc_impl.h"

#include <inttypes.h>

// Upper bounds of the latency buckets, in nanoseconds.
static const uint64_t bucket_ns[RPC_LAT_BUCKETS] = {
    100000ull,     250000ull,     500000ull,     1000000ull,     2500000ull,   5000000ull,
    10000000ull,   25000000ull,   50000000ull,   100000000ull,   250000000ull, 500000000ull,
    1000000000ull, 2500000000ull, 5000000000ull, 10000000000ull,
};
static const char *bucket_le[RPC_LAT_BUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "5",    "10",
};

static void add(uint64_t *p, uint64_t v)
{
    __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
static uint64_t get(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void rpc_metrics_record(rpc_method_metrics *m, rpc_code code, uint64_t ns, size_t in, size_t out)
{
    unsigned c = (unsigned)code < RPC_NCODES ? (unsigned)code : (unsigned)RPC_UNKNOWN;
    add(&m->codes[c], 1);
    int b = 0;
    while (b < RPC_LAT_BUCKETS && ns > bucket_ns[b])
        b++;
    if (b < RPC_LAT_BUCKETS)
        add(&m->buckets[b], 1);
    else
        add(&m->over, 1);
    add(&m->sum_ns, ns);
    add(&m->bytes_in, in);
    add(&m->bytes_out, out);
}

cn_err rpc_metrics_write_header(cn_buf *out, int family)
{
    switch (family) {
    case 0:
        return cn_buf_printf(out, "# HELP canopy_rpc_requests_total RPC calls answered, by "
                                  "status code.\n# TYPE canopy_rpc_requests_total counter\n");
    case 1:
        return cn_buf_printf(out, "# HELP canopy_rpc_latency_seconds Time from receiving a "
                                  "request to sending its reply.\n"
                                  "# TYPE canopy_rpc_latency_seconds histogram\n");
    case 2:
        return cn_buf_printf(out, "# HELP canopy_rpc_received_bytes_total Request bytes "
                                  "received.\n# TYPE canopy_rpc_received_bytes_total counter\n");
    default:
        return cn_buf_printf(out, "# HELP canopy_rpc_sent_bytes_total Reply bytes sent.\n"
                                  "# TYPE canopy_rpc_sent_bytes_total counter\n");
    }
}

cn_err rpc_metrics_write_family(cn_buf *out, int family, const char *service, const char *method,
                                const rpc_method_metrics *m)
{
    uint64_t total = 0;
    for (int c = 0; c < RPC_NCODES; c++)
        total += get(&m->codes[c]);
    if (total == 0)
        return CN_OK;
    switch (family) {
    case 0:
        for (int c = 0; c < RPC_NCODES; c++) {
            uint64_t v = get(&m->codes[c]);
            if (v)
                cn_buf_printf(out,
                              "canopy_rpc_requests_total{service=\"%s\",method=\"%s\",code=\"%s\"} "
                              "%" PRIu64 "\n",
                              service, method, rpc_code_name((rpc_code)c), v);
        }
        break;
    case 1: {
        uint64_t cum = 0;
        for (int b = 0; b < RPC_LAT_BUCKETS; b++) {
            cum += get(&m->buckets[b]);
            cn_buf_printf(out,
                          "canopy_rpc_latency_seconds_bucket{service=\"%s\",method=\"%s\","
                          "le=\"%s\"} %" PRIu64 "\n",
                          service, method, bucket_le[b], cum);
        }
        cum += get(&m->over);
        cn_buf_printf(out,
                      "canopy_rpc_latency_seconds_bucket{service=\"%s\",method=\"%s\","
                      "le=\"+Inf\"} %" PRIu64 "\n",
                      service, method, cum);
        cn_buf_printf(out, "canopy_rpc_latency_seconds_sum{service=\"%s\",method=\"%s\"} %.6f\n",
                      service, method, (double)get(&m->sum_ns) / 1e9);
        cn_buf_printf(
            out, "canopy_rpc_latency_seconds_count{service=\"%s\",method=\"%s\"} %" PRIu64 "\n",
            service, method, cum);
        break;
    }
    case 2:
        cn_buf_printf(out,
                      "canopy_rpc_received_bytes_total{service=\"%s\",method=\"%s\"} %" PRIu64 "\n",
                      service, method, get(&m->bytes_in));
        break;
    default:
        cn_buf_printf(out,
                      "canopy_rpc_sent_bytes_total{service=\"%s\",method=\"%s\"} %" PRIu64 "\n",
                      service, method, get(&m->bytes_out));
        break;
    }
    return out->oom ? CN_ENOMEM : CN_OK;
}
