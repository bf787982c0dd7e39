// test_ps.c: key ranges, the shard (push, pull, BSP, ASP, SSP, duplicates,
// checkpoints and restore), and the service with its client over real
// sockets: BSP with two workers equals one worker's step on the combined
// batch.
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cn_clock.h"
#include "common/cn_log.h"
#include "common/cn_rand.h"
#include "ml/mlp.h"
#include "ps.pb-c.h"
#include "ps/ps.h"
#include "tests/support/support.h"

// ---------------------------------------------------------------- helpers

static void cfg_init(ps_shard_cfg *c, uint64_t n, uint32_t shards, uint32_t k, ps_mode mode,
                     uint32_t workers, float lr)
{
    memset(c, 0, sizeof *c);
    snprintf(c->job_id, sizeof c->job_id, "job-1");
    c->shard = k;
    c->shards = shards;
    c->n_params = n;
    ps_range(n, shards, k, &c->lo, &c->hi);
    optim_cfg_default(&c->optim, OPTIM_SGD);
    c->optim.lr = lr;
    c->mode = mode;
    c->workers = workers;
}

// got records a released waiter.
typedef struct got {
    int calls;
    cn_err code;
    float vals[64];
    size_t n;
    ps_sync sync;
} got;

static void on_got(void *arg, cn_err code, const float *values, const ps_sync *sync)
{
    got *g = arg;
    g->calls++;
    g->code = code;
    if (values)
        memcpy(g->vals, values, g->n * sizeof(float));
    if (sync)
        g->sync = *sync;
}

// ---------------------------------------------------------------- ranges

START_TEST(test_ps_range_sizes_differ_by_at_most_one_and_cover_every_key_once)
{
    uint64_t ns[] = {1, 7, 10, 64, 101, 1000003};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (uint32_t S = 1; S <= 7; S++) {
            uint64_t n = ns[i];
            if (n < S)
                continue;
            uint64_t prev_hi = 0, minsz = UINT64_MAX, maxsz = 0;
            for (uint32_t k = 0; k < S; k++) {
                uint64_t lo, hi;
                ps_range(n, S, k, &lo, &hi);
                ck_assert_uint_eq(lo, prev_hi); // contiguous, no gap, no overlap
                prev_hi = hi;
                minsz = hi - lo < minsz ? hi - lo : minsz;
                maxsz = hi - lo > maxsz ? hi - lo : maxsz;
                ck_assert_uint_eq(ps_range_owner(n, S, lo), k);
                ck_assert_uint_eq(ps_range_owner(n, S, hi - 1), k);
            }
            ck_assert_uint_eq(prev_hi, n);
            ck_assert_uint_le(maxsz - minsz, 1);
        }
}
END_TEST

START_TEST(test_ps_range_puts_the_remainder_first)
{
    uint64_t lo, hi;
    ps_range(10, 3, 0, &lo, &hi);
    ck_assert_uint_eq(lo, 0);
    ck_assert_uint_eq(hi, 4);
    ps_range(10, 3, 1, &lo, &hi);
    ck_assert_uint_eq(lo, 4);
    ck_assert_uint_eq(hi, 7);
    ps_range(10, 3, 2, &lo, &hi);
    ck_assert_uint_eq(lo, 7);
    ck_assert_uint_eq(hi, 10);
    for (uint64_t key = 0; key < 10; key++)
        ck_assert_uint_eq(ps_range_owner(10, 3, key), key < 4 ? 0 : key < 7 ? 1 : 2);
}
END_TEST

START_TEST(test_ps_shard_cfg_check_names_the_bad_field)
{
    ps_shard_cfg c;
    char err[256];
    cfg_init(&c, 10, 3, 1, PS_BSP, 2, 0.1f);
    ck_assert_int_eq(ps_shard_cfg_check(&c, err, sizeof err), CN_OK);
    c.hi = 8;
    ck_assert_int_eq(ps_shard_cfg_check(&c, err, sizeof err), CN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "balanced range [4, 7)"));
    cfg_init(&c, 10, 3, 1, PS_BSP, 0, 0.1f);
    ck_assert_int_eq(ps_shard_cfg_check(&c, err, sizeof err), CN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "workers"));
    cfg_init(&c, 10, 3, 1, PS_BSP, 2, 0.1f);
    snprintf(c.job_id, sizeof c.job_id, "a/b");
    ck_assert_int_eq(ps_shard_cfg_check(&c, err, sizeof err), CN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "job_id"));
    cfg_init(&c, 10, 3, 1, PS_BSP, 2, -1.0f);
    ck_assert_int_eq(ps_shard_cfg_check(&c, err, sizeof err), CN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "lr"));
    ps_mode m;
    ck_assert_int_eq(ps_mode_parse("ssp", &m), CN_OK);
    ck_assert_int_eq(m, PS_SSP);
    ck_assert_int_eq(ps_mode_parse("sync", &m), CN_EINVAL);
}
END_TEST

// ---------------------------------------------------------------- shard

START_TEST(test_ps_shard_pull_outside_range_leaves_out_unchanged)
{
    ps_shard_cfg c;
    cfg_init(&c, 10, 3, 1, PS_ASP, 1, 0.1f);
    float init[3] = {1, 2, 3}, out[4] = {9, 9, 9, 9};
    ps_shard *s;
    ck_assert_int_eq(ps_shard_new(&s, &c, init, NULL, 0), CN_OK);
    ck_assert_int_eq(ps_shard_pull(s, 3, 6, out, NULL), CN_ERANGE);
    ck_assert_int_eq(ps_shard_pull(s, 5, 8, out, NULL), CN_ERANGE);
    ck_assert_int_eq(ps_shard_pull(s, 5, 5, out, NULL), CN_ERANGE);
    ck_assert_float_eq(out[0], 9);
    ck_assert_int_eq(ps_shard_pull(s, 5, 7, out, NULL), CN_OK);
    ck_assert_float_eq(out[0], 2);
    ck_assert_float_eq(out[1], 3);
    got g = {.n = 3};
    ck_assert_int_eq(ps_shard_wait(s, 0, 0, true, 0, 3, UINT64_MAX, on_got, &g), CN_ERANGE);
    ck_assert_int_eq(ps_shard_wait(s, 5, 0, true, 4, 7, UINT64_MAX, on_got, &g), CN_EINVAL);
    ck_assert_int_eq(g.calls, 0);
    ps_sync sy;
    bool due;
    ck_assert_int_eq(ps_shard_push(s, 1, 0, 0, init, &sy, &due), CN_EINVAL);
    ps_shard_free(s);
}
END_TEST

START_TEST(test_ps_shard_asp_applies_on_arrival_and_duplicate_push_once)
{
    ps_shard_cfg c;
    cfg_init(&c, 4, 1, 0, PS_ASP, 2, 0.5f);
    float init[4] = {1, 1, 1, 1}, g[4] = {1, 2, 3, 4}, out[4];
    ps_shard *s;
    ck_assert_int_eq(ps_shard_new(&s, &c, init, NULL, 0), CN_OK);
    ps_sync sy;
    bool due;
    ck_assert_int_eq(ps_shard_push(s, 0, 0, 0, g, &sy, &due), CN_OK);
    ck_assert(!sy.duplicate);
    ck_assert_uint_eq(sy.version, 1);
    ck_assert_int_eq(ps_shard_push(s, 0, 0, 0, g, &sy, &due), CN_OK); // a resend
    ck_assert(sy.duplicate);
    ck_assert_uint_eq(sy.version, 1);
    ps_shard_pull(s, 0, 4, out, NULL);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq_tol(out[i], 1 - 0.5f * g[i], 1e-7); // applied exactly once
    // worker 1 has not pushed: an ASP pull never waits, even far ahead.
    got w = {.n = 4};
    ck_assert_int_eq(ps_shard_wait(s, 0, 100, true, 0, 4, UINT64_MAX, on_got, &w), CN_OK);
    ck_assert_int_eq(w.calls, 1);
    ck_assert_int_eq(w.code, CN_OK);
    ps_stats st;
    ps_shard_stats(s, &st);
    ck_assert_uint_eq(st.pushes, 1);
    ck_assert_uint_eq(st.duplicates, 1);
    ck_assert_uint_eq(st.worker_clocks[0], 1);
    ck_assert_uint_eq(st.worker_clocks[1], 0);
    ck_assert_uint_eq(st.staleness[0], 1);
    // A gradient computed on version 0, applied at version 1: staleness 1.
    ck_assert_int_eq(ps_shard_push(s, 1, 0, 0, g, &sy, &due), CN_OK);
    ps_shard_stats(s, &st);
    ck_assert_uint_eq(st.staleness[1], 1);
    ck_assert_uint_eq(st.clock, 1); // both workers have pushed clock 0
    ps_shard_free(s);
}
END_TEST

// A push-pull the worker may read on at once is answered in the gradient's
// buffer with exactly the values a pull then sees; one that must wait
// leaves the buffer alone; a bad worker changes nothing.
START_TEST(test_ps_shard_push_pull_answers_in_the_gradient_buffer_when_ready)
{
    ps_shard_cfg c;
    float init[4] = {1, 1, 1, 1}, io[4], out[4];
    const float g[4] = {1, 2, 3, 4};
    ps_sync sy;
    bool due, answered;
    ps_stats st;
    // ASP: always answered; values = init - lr * g.
    cfg_init(&c, 4, 1, 0, PS_ASP, 2, 0.5f);
    ps_shard *s;
    ck_assert_int_eq(ps_shard_new(&s, &c, init, NULL, 0), CN_OK);
    memcpy(io, g, sizeof io);
    ck_assert_int_eq(ps_shard_push_pull(s, 0, 0, 0, io, &sy, &due, &answered), CN_OK);
    ck_assert(answered);
    ck_assert_uint_eq(sy.version, 1);
    ps_shard_pull(s, 0, 4, out, NULL);
    for (int i = 0; i < 4; i++) {
        ck_assert_float_eq(io[i], out[i]);
        ck_assert_float_eq_tol(out[i], 1 - 0.5f * g[i], 1e-7);
    }
    // A resend is a duplicate, answered with the same values, not applied again.
    memcpy(io, g, sizeof io);
    ck_assert_int_eq(ps_shard_push_pull(s, 0, 0, 0, io, &sy, &due, &answered), CN_OK);
    ck_assert(answered && sy.duplicate);
    ck_assert(memcmp(io, out, sizeof io) == 0);
    memcpy(io, g, sizeof io);
    ck_assert_int_eq(ps_shard_push_pull(s, 2, 0, 0, io, &sy, &due, &answered), CN_EINVAL);
    ck_assert(!answered);
    ck_assert(memcmp(io, g, sizeof io) == 0);
    ps_shard_stats(s, &st);
    ck_assert_uint_eq(st.pushes, 1);
    ck_assert_uint_eq(st.duplicates, 1);
    ck_assert_uint_eq(st.pulls, 3);
    ps_shard_free(s);

    // BSP, two workers: the first push waits (io untouched), the second
    // closes the step and gets the mean step's values.
    cfg_init(&c, 4, 1, 0, PS_BSP, 2, 0.5f);
    ck_assert_int_eq(ps_shard_new(&s, &c, init, NULL, 0), CN_OK);
    float io1[4], io2[4] = {3, 2, 1, 0};
    memcpy(io1, g, sizeof io1);
    ck_assert_int_eq(ps_shard_push_pull(s, 0, 0, 0, io1, &sy, &due, &answered), CN_OK);
    ck_assert(!answered);
    ck_assert(memcmp(io1, g, sizeof io1) == 0);
    ck_assert_int_eq(ps_shard_push_pull(s, 1, 0, 0, io2, &sy, &due, &answered), CN_OK);
    ck_assert(answered);
    ck_assert_uint_eq(sy.clock, 1);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq_tol(io2[i], 1 - 0.5f * (g[i] + (float)(3 - i)) / 2, 1e-6);
    ps_shard_free(s);

    // SSP(0), two workers: worker 0 may not start clock 1 before worker 1
    // has pushed clock 0; the push is applied on arrival all the same.
    cfg_init(&c, 4, 1, 0, PS_SSP, 2, 0.5f);
    c.staleness = 0;
    ck_assert_int_eq(ps_shard_new(&s, &c, init, NULL, 0), CN_OK);
    memcpy(io, g, sizeof io);
    ck_assert_int_eq(ps_shard_push_pull(s, 0, 0, 0, io, &sy, &due, &answered), CN_OK);
    ck_assert(!answered);
    ck_assert(memcmp(io, g, sizeof io) == 0);
    ck_assert_uint_eq(sy.version, 1);
    ps_shard_free(s);
}
END_TEST

START_TEST(test_ps_shard_bsp_releases_clock_after_all_workers_with_mean)
{
    ps_shard_cfg c;
    cfg_init(&c, 2, 1, 0, PS_BSP, 2, 1.0f);
    float init[2] = {0, 0}, g0[2] = {1, 2}, g1[2] = {3, 6};
    ps_shard *s;
    ck_assert_int_eq(ps_shard_new(&s, &c, init, NULL, 0), CN_OK);
    ps_sync sy;
    bool due;
    got w0 = {.n = 2}, w1 = {.n = 2};
    ck_assert_int_eq(ps_shard_push(s, 0, 0, 0, g0, &sy, &due), CN_OK);
    ck_assert_int_eq(ps_shard_wait(s, 0, 1, true, 0, 2, UINT64_MAX, on_got, &w0), CN_OK);
    ck_assert_int_eq(w0.calls, 0); // clock 1 not yet released
    ck_assert_int_eq(ps_shard_push(s, 0, 0, 0, g0, &sy, &due), CN_OK);
    ck_assert(sy.duplicate); // the same clock twice is not counted twice
    ck_assert_int_eq(w0.calls, 0);
    ck_assert_int_eq(ps_shard_push(s, 1, 0, 0, g1, &sy, &due), CN_OK);
    ck_assert_int_eq(w0.calls, 1);
    ck_assert_int_eq(w0.code, CN_OK);
    ck_assert_float_eq_tol(w0.vals[0], -2.0f, 1e-7); // mean (1+3)/2, lr 1
    ck_assert_float_eq_tol(w0.vals[1], -4.0f, 1e-7);
    ck_assert_uint_eq(w0.sync.clock, 1);
    ck_assert_int_eq(ps_shard_wait(s, 1, 1, true, 0, 2, UINT64_MAX, on_got, &w1), CN_OK);
    ck_assert_int_eq(w1.calls, 1); // already released: answered at once
    // A late resend of clock 0 is a duplicate and changes nothing.
    ck_assert_int_eq(ps_shard_push(s, 1, 0, 0, g1, &sy, &due), CN_OK);
    ck_assert(sy.duplicate);
    ck_assert_uint_eq(sy.version, 1);
    // Parked waiters are dropped at their deadline.
    got w2 = {.n = 2};
    ck_assert_int_eq(ps_shard_wait(s, 0, 2, true, 0, 2, 5, on_got, &w2), CN_OK);
    ck_assert_uint_eq(ps_shard_expire(s, 4), 0);
    ck_assert_uint_eq(ps_shard_expire(s, 5), 1);
    ck_assert_int_eq(w2.code, CN_ETIMEDOUT);
    // ...and those left when the shard goes get CN_ECLOSED.
    got w3 = {.n = 2};
    ck_assert_int_eq(ps_shard_wait(s, 0, 2, true, 0, 2, UINT64_MAX, on_got, &w3), CN_OK);
    ps_shard_free(s);
    ck_assert_int_eq(w3.calls, 1);
    ck_assert_int_eq(w3.code, CN_ECLOSED);
}
END_TEST

// SSP simulation: workers advance in a random order; a worker about to run
// clock c is only released while c - (slowest worker's clock) <= s.
typedef struct ssp_worker {
    ps_shard *s;
    uint32_t id;
    uint64_t next; // clock to push next
    int waiting;
    got g;
} ssp_worker;

static uint32_t g_ssp_s;
static uint64_t g_ssp_max_lead;

static void on_ssp(void *arg, cn_err code, const float *values, const ps_sync *sync)
{
    (void)values;
    ssp_worker *w = arg;
    if (code == CN_ECLOSED) // still parked when the shard is freed
        return;
    ck_assert_int_eq(code, CN_OK);
    // sync->clock is the slowest worker's next clock.
    uint64_t lead = w->next - sync->clock;
    if (lead > g_ssp_max_lead)
        g_ssp_max_lead = lead;
    ck_assert_uint_le(lead, g_ssp_s);
    w->waiting = 0;
}

START_TEST(test_ps_shard_ssp_never_lets_a_worker_run_more_than_s_ahead)
{
    for (uint32_t s_bound = 0; s_bound <= 3; s_bound++) {
        g_ssp_s = s_bound;
        g_ssp_max_lead = 0;
        ps_shard_cfg c;
        cfg_init(&c, 3, 1, 0, PS_SSP, 3, 0.01f);
        c.staleness = s_bound;
        float init[3] = {0}, g[3] = {1, 1, 1};
        ps_shard *s;
        ck_assert_int_eq(ps_shard_new(&s, &c, init, NULL, 0), CN_OK);
        ssp_worker ws[3];
        for (uint32_t i = 0; i < 3; i++)
            ws[i] = (ssp_worker){.s = s, .id = i, .g = {.n = 3}};
        cn_rng rng;
        cn_rng_seed(&rng, 42, s_bound);
        int blocked_seen = 0;
        for (int step = 0; step < 3000; step++) {
            ssp_worker *w = &ws[cn_rng_below(&rng, 3)];
            // Worker 2 is a straggler: it moves a third as often.
            if (w->id == 2 && cn_rng_below(&rng, 3) != 0)
                continue;
            if (w->waiting) {
                blocked_seen++;
                continue;
            }
            ps_sync sy;
            bool due;
            ck_assert_int_eq(ps_shard_push(s, w->id, w->next, 0, g, &sy, &due), CN_OK);
            w->next++;
            w->waiting = 1;
            ck_assert_int_eq(ps_shard_wait(s, w->id, w->next, true, 0, 3, UINT64_MAX, on_ssp, w),
                             CN_OK);
        }
        ck_assert_uint_eq(g_ssp_max_lead, s_bound); // the bound is reached, never passed
        ck_assert_int_gt(blocked_seen, 0);
        ps_shard_free(s);
    }
}
END_TEST

static char g_dir[512];

START_TEST(test_ps_shard_checkpoint_restore_continues_identically)
{
    ts_tmpdir(g_dir, sizeof g_dir);
    ps_shard_cfg c;
    cfg_init(&c, 9, 2, 1, PS_ASP, 2, 0.1f);
    optim_cfg_default(&c.optim, OPTIM_ADAM);
    snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s", g_dir);
    c.checkpoint_every = 2;
    float init[4] = {1, 2, 3, 4}, g[4] = {0.5f, -1, 2, 0.25f}, a[4], b[4];
    ps_shard *s, *r;
    ck_assert_int_eq(ps_shard_new(&s, &c, init, NULL, 0), CN_OK);
    ps_sync sy;
    bool due;
    ck_assert_int_eq(ps_shard_push(s, 0, 0, 0, g, &sy, &due), CN_OK);
    ck_assert(!due);
    ck_assert_int_eq(ps_shard_push(s, 1, 0, 0, g, &sy, &due), CN_OK);
    ck_assert(due);
    char err[512], path[1400];
    uint64_t v;
    ck_assert_int_eq(ps_shard_checkpoint(s, &v, err, sizeof err), CN_OK);
    ck_assert_uint_eq(v, 2);
    ps_shard_checkpoint_path(&c, path, sizeof path);
    ck_assert_int_eq(access(path, R_OK), 0);
    ck_assert_int_eq(ps_shard_restore(&r, &c, path, err, sizeof err), CN_OK);
    ps_stats st;
    ps_shard_stats(r, &st);
    ck_assert(st.restored);
    ck_assert_uint_eq(st.version, 2);
    ck_assert_uint_eq(st.worker_clocks[0], 1);
    ck_assert_uint_eq(st.worker_clocks[1], 1);
    // The same next push on both gives bit-identical values (Adam moments
    // and step count came back too).
    ps_shard_push(s, 0, 1, 2, g, &sy, &due);
    ps_shard_push(r, 0, 1, 2, g, &sy, &due);
    ps_shard_pull(s, 5, 9, a, NULL);
    ps_shard_pull(r, 5, 9, b, NULL);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    // A duplicate of a push the checkpoint holds is still dropped.
    ps_shard_push(r, 1, 0, 0, g, &sy, &due);
    ck_assert(sy.duplicate);
    ps_shard_free(r);

    // Another layout, a corrupted file, a missing file: exact errors.
    ps_shard_cfg other = c;
    other.workers = 3;
    ck_assert_int_eq(ps_shard_restore(&r, &other, path, err, sizeof err), CN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "another job or layout"));
    FILE *f = fopen(path, "r+b");
    fseek(f, 40, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    ck_assert_int_eq(ps_shard_restore(&r, &c, path, err, sizeof err), CN_EIO);
    ck_assert_ptr_nonnull(strstr(err, "checksum mismatch"));
    snprintf(path + strlen(path), sizeof path - strlen(path), ".none");
    ck_assert_int_eq(ps_shard_restore(&r, &c, path, err, sizeof err), CN_ENOTFOUND);
    ps_shard_free(s);
    ts_rmtree(g_dir);
}
END_TEST

START_TEST(test_ps_shard_bsp_restored_behind_joins_the_workers_clock)
{
    ts_tmpdir(g_dir, sizeof g_dir);
    ps_shard_cfg c;
    cfg_init(&c, 2, 1, 0, PS_BSP, 2, 1.0f);
    snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s", g_dir);
    float init[2] = {0, 0}, g[2] = {1, 1};
    ps_shard *s, *r;
    ck_assert_int_eq(ps_shard_new(&s, &c, init, NULL, 0), CN_OK);
    char err[512], path[1400];
    uint64_t v;
    ck_assert_int_eq(ps_shard_checkpoint(s, &v, err, sizeof err), CN_OK); // at clock 0
    ps_sync sy;
    bool due;
    for (uint64_t t = 0; t < 3; t++) {
        ps_shard_push(s, 0, t, t, g, &sy, &due);
        ps_shard_push(s, 1, t, t, g, &sy, &due);
    }
    ck_assert_uint_eq(sy.clock, 3);
    ps_shard_free(s); // the shard "dies" at clock 3, its checkpoint says 0
    ps_shard_checkpoint_path(&c, path, sizeof path);
    ck_assert_int_eq(ps_shard_restore(&r, &c, path, err, sizeof err), CN_OK);
    got w = {.n = 2};
    ps_shard_push(r, 0, 3, 3, g, &sy, &due); // workers carry on at clock 3
    ck_assert(!sy.duplicate);
    ck_assert_uint_eq(sy.clock, 3);
    ck_assert_int_eq(ps_shard_wait(r, 0, 4, true, 0, 2, UINT64_MAX, on_got, &w), CN_OK);
    ps_shard_push(r, 1, 3, 3, g, &sy, &due);
    ck_assert_int_eq(w.calls, 1);
    ck_assert_uint_eq(w.sync.clock, 4);
    ck_assert_float_eq_tol(w.vals[0], -1.0f, 1e-7); // checkpointed 0, one step since
    ps_shard_free(r);
    ts_rmtree(g_dir);
}
END_TEST

// ---------------------------------------------------------------- service + client

// A tiny model and data: BSP over 2 shards with 2 workers, each pushing the
// gradient of its half of a batch, must equal one SGD step on the gradient
// of the whole batch. The mean of two half-batch means is the full-batch
// mean (equal halves), so only float rounding differs: tolerance 1e-6
// absolute on values of order 1.
typedef struct bsp_worker {
    const char *const *urls;
    uint32_t rank;
    const mlp_shape *shape;
    const float *x;
    const int32_t *y;
    int rows;
    float *params; // out: after one step
    cn_err e;
    ps_sync sync;
} bsp_worker;

static void *bsp_worker_main(void *arg)
{
    bsp_worker *w = arg;
    ps_client_opts o = {.urls = w->urls,
                        .shards = 2,
                        .n_params = w->shape->n_params,
                        .job_id = "bsp-test",
                        .worker = w->rank,
                        .call_timeout_ms = 10000,
                        .outage_ms = 10000};
    ps_client *c;
    char err[512];
    w->e = ps_client_open(&c, &o, err, sizeof err);
    if (w->e != CN_OK)
        return NULL;
    float *grad = malloc(w->shape->n_params * sizeof *grad);
    mlp_ws *ws = mlp_ws_new(w->shape, w->rows);
    ps_sync sy;
    w->e = ps_client_pull(c, 0, true, w->params, &sy, err, sizeof err);
    if (w->e == CN_OK) {
        float loss;
        mlp_grad(w->shape, w->params, w->x, w->y, w->rows, ws, grad, &loss);
        const float *now;
        w->e = ps_client_push_pull(c, 0, sy.version, grad, &now, &w->sync, err, sizeof err);
        if (w->e == CN_OK)
            memcpy(w->params, now, w->shape->n_params * sizeof *now);
    }
    mlp_ws_free(ws);
    free(grad);
    ps_client_close(c);
    return NULL;
}

START_TEST(test_ps_bsp_two_workers_equal_one_step_on_the_combined_batch)
{
    mlp_shape sh;
    int hidden[1] = {6};
    ck_assert_int_eq(mlp_shape_init(&sh, 5, hidden, 1, 3, NULL, 0), CN_OK);
    size_t n = sh.n_params;
    float *init = malloc(n * sizeof *init), *expect = malloc(n * sizeof *expect);
    float *grad = malloc(n * sizeof *grad);
    mlp_init_params(&sh, init, 7);
    enum { ROWS = 16 };
    float x[ROWS * 5];
    int32_t y[ROWS];
    cn_rng rng;
    cn_rng_seed(&rng, 3, 0);
    for (int i = 0; i < ROWS * 5; i++)
        x[i] = (float)cn_rng_normal(&rng);
    for (int i = 0; i < ROWS; i++)
        y[i] = (int32_t)cn_rng_below(&rng, 3);
    // Reference: one SGD step, lr 0.5, on the whole batch.
    mlp_ws *ws = mlp_ws_new(&sh, ROWS);
    float loss;
    mlp_grad(&sh, init, x, y, ROWS, ws, grad, &loss);
    for (size_t i = 0; i < n; i++)
        expect[i] = init[i] - 0.5f * grad[i];
    mlp_ws_free(ws);

    // Two shard servers on loopback.
    rpc_server *srv[2];
    ps_service *svc[2];
    char urls[2][128];
    const char *up[2] = {urls[0], urls[1]};
    char err[512];
    for (int k = 0; k < 2; k++) {
        rpc_server_opts so = {.url = "tcp://127.0.0.1:0"};
        ck_assert_int_eq(rpc_server_open(&srv[k], &so, err, sizeof err), CN_OK);
        ck_assert_int_eq(ps_service_new(&svc[k], srv[k], NULL, err, sizeof err), CN_OK);
        ck_assert_int_eq(rpc_server_start(srv[k], err, sizeof err), CN_OK);
        rpc_server_url(srv[k], urls[k], sizeof urls[k]);
    }
    ps_client_opts o = {.urls = up, .shards = 2, .n_params = n, .job_id = "bsp-test"};
    ps_client *admin;
    ck_assert_int_eq(ps_client_open(&admin, &o, err, sizeof err), CN_OK);
    ps_shard_cfg cfg;
    cfg_init(&cfg, n, 2, 0, PS_BSP, 2, 0.5f);
    snprintf(cfg.job_id, sizeof cfg.job_id, "bsp-test");
    bool restored = true;
    ck_assert_int_eq(ps_client_configure(admin, &cfg, init, false, &restored, err, sizeof err),
                     CN_OK);
    ck_assert(!restored);

    bsp_worker w[2];
    pthread_t th[2];
    for (uint32_t r = 0; r < 2; r++) {
        w[r] = (bsp_worker){.urls = up,
                            .rank = r,
                            .shape = &sh,
                            .x = x + r * (ROWS / 2) * 5,
                            .y = y + r * (ROWS / 2),
                            .rows = ROWS / 2,
                            .params = malloc(n * sizeof(float))};
        pthread_create(&th[r], NULL, bsp_worker_main, &w[r]);
    }
    for (int r = 0; r < 2; r++) {
        pthread_join(th[r], NULL);
        ck_assert_int_eq(w[r].e, CN_OK);
        ck_assert_uint_eq(w[r].sync.clock, 1);
        for (size_t i = 0; i < n; i++)
            ck_assert_float_eq_tol(w[r].params[i], expect[i], 1e-6);
    }
    // A resend of worker 0's clock-0 push through the client: a duplicate,
    // the values do not move.
    ps_client_opts o0 = o;
    o0.worker = 0;
    ps_client *c0;
    ck_assert_int_eq(ps_client_open(&c0, &o0, err, sizeof err), CN_OK);
    ps_sync sy;
    float *after = malloc(n * sizeof *after);
    const float *now;
    ck_assert_int_eq(ps_client_push_pull(c0, 0, 0, grad, &now, &sy, err, sizeof err), CN_OK);
    ck_assert(sy.duplicate);
    for (size_t i = 0; i < n; i++)
        ck_assert_float_eq_tol(now[i], expect[i], 1e-6);
    ps_stats st;
    ck_assert_int_eq(ps_client_stats(c0, 1, &st, err, sizeof err), RPC_OK);
    ck_assert_uint_eq(st.pushes, 2);
    ck_assert_uint_eq(st.duplicates, 1);
    ck_assert_uint_eq(st.version, 1);
    uint64_t sent, recv;
    ps_client_bytes(c0, &sent, &recv);
    ck_assert_uint_eq(sent, n * sizeof(float));
    ck_assert_uint_eq(recv, n * sizeof(float));
    // Another job's calls are refused with NOT_FOUND naming both jobs.
    ps_client_opts ob = o;
    ob.job_id = "other";
    ob.outage_ms = 200;
    ps_client *cb;
    ck_assert_int_eq(ps_client_open(&cb, &ob, err, sizeof err), CN_OK);
    ck_assert_int_eq(ps_client_stats(cb, 0, &st, err, sizeof err), RPC_NOT_FOUND);
    ck_assert_int_eq(ps_client_pull(cb, 0, false, after, &sy, err, sizeof err), CN_EUNAVAIL);
    ck_assert_ptr_nonnull(strstr(err, "serves job \"bsp-test\", not \"other\""));
    ps_client_close(cb);
    ps_client_close(c0);
    ps_client_close(admin);
    for (int k = 0; k < 2; k++) {
        ps_service_stop(svc[k]);
        rpc_server_close(srv[k], 1000);
        ps_service_free(svc[k]);
    }
    for (int r = 0; r < 2; r++)
        free(w[r].params);
    free(after);
    free(init);
    free(expect);
    free(grad);
}
END_TEST

// The client keeps its own copies of the options' strings: a caller may
// build the URL array in a scope that ends before the first call (a
// federated client did; the error path then read the dead array).
START_TEST(test_ps_client_keeps_no_pointer_into_its_options)
{
    int port = ts_free_port();
    ps_client *c = NULL;
    char err[512];
    {
        char url[64], job[16];
        snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port); // nobody listens
        snprintf(job, sizeof job, "scoped-job");
        const char *urls[1] = {url};
        ps_client_opts o = {.urls = urls,
                            .shards = 1,
                            .n_params = 8,
                            .job_id = job,
                            .token = "t",
                            .call_timeout_ms = 100,
                            .outage_ms = 300};
        ck_assert_int_eq(ps_client_open(&c, &o, err, sizeof err), CN_OK);
        memset(url, 'x', sizeof url - 1); // what the caller does with its memory next
        url[sizeof url - 1] = 0;
        memset(job, 'y', sizeof job - 1);
        job[sizeof job - 1] = 0;
    }
    float out[8];
    ps_sync sy;
    ck_assert_int_eq(ps_client_pull(c, 0, false, out, &sy, err, sizeof err), CN_EUNAVAIL);
    char want[64];
    snprintf(want, sizeof want, "(tcp://127.0.0.1:%d)", port);
    ck_assert_msg(strstr(err, want) != NULL, "the error names no URL: %s", err);
    ps_client_close(c);
}
END_TEST

// ---------------------------------------------------------------- stress

// shard_srv: one shard's service on a loopback server, with an admin client
// for job "job-a" (the stress, clock and checkpoint-root tests).
typedef struct shard_srv {
    rpc_server *srv;
    ps_service *svc;
    ps_client *admin;
    char url[128];
} shard_srv;

static void shard_srv_start(shard_srv *t, const char *root, int threads, uint64_t n)
{
    char err[512];
    rpc_server_opts so = {.url = "tcp://127.0.0.1:0", .handler_threads = threads};
    ck_assert_int_eq(rpc_server_open(&t->srv, &so, err, sizeof err), CN_OK);
    ck_assert_int_eq(ps_service_new(&t->svc, t->srv, root, err, sizeof err), CN_OK);
    ck_assert_int_eq(rpc_server_start(t->srv, err, sizeof err), CN_OK);
    rpc_server_url(t->srv, t->url, sizeof t->url);
    const char *up[1] = {t->url};
    ps_client_opts o = {.urls = up, .shards = 1, .n_params = n, .job_id = "job-a"};
    ck_assert_int_eq(ps_client_open(&t->admin, &o, err, sizeof err), CN_OK);
}

static void shard_srv_stop(shard_srv *t)
{
    ps_client_close(t->admin);
    ps_service_stop(t->svc);
    rpc_server_close(t->srv, 1000);
    ps_service_free(t->svc);
}

// Twelve callers drive every error path while a Configure swaps jobs: the paths
// must not read the shard after releasing the service's lock (AddressSanitizer
// reports a heap-use-after-free otherwise).
typedef struct stress {
    const char *url;
    volatile int stop;
    int calls, not_found, out_of_range, invalid;
} stress;

static void stress_call(rpc_client *c, const char *method, const ProtobufCMessage *body,
                        const void *payload, size_t plen, stress *st)
{
    rpc_request rq = {.service = "ParameterServer",
                      .method = method,
                      .body = body,
                      .payload = payload,
                      .payload_len = plen,
                      .deadline_ms = 5000};
    rpc_reply rep = {0};
    rpc_code code = rpc_client_call(c, &rq, &rep);
    rpc_reply_fini(&rep);
    st->calls++;
    if (code == RPC_NOT_FOUND)
        st->not_found++;
    else if (code == RPC_OUT_OF_RANGE)
        st->out_of_range++;
    else if (code == RPC_INVALID_ARGUMENT)
        st->invalid++;
}

static void *stress_caller(void *arg)
{
    stress *st = arg;
    rpc_client_opts o = {.url = st->url};
    rpc_client *c;
    char err[256];
    if (rpc_client_open(&c, &o, err, sizeof err) != CN_OK)
        return NULL;
    float g[8] = {0};
    for (uint64_t i = 0; !st->stop; i++) {
        // Wrong job (held), a push over the wrong range (do_push), a pull
        // outside the shard (h_pull), a push of the wrong size (do_push).
        Canopy__Ps__PushRequest pr = CANOPY__PS__PUSH_REQUEST__INIT;
        pr.job_id = (char *)(i % 2 ? "job-a" : "nobody");
        pr.lo = 0;
        pr.hi = 3;
        pr.clock = i;
        stress_call(c, "Push", &pr.base, g, 3 * sizeof(float), st);
        Canopy__Ps__PullRequest pl = CANOPY__PS__PULL_REQUEST__INIT;
        pl.job_id = (char *)(i % 2 ? "job-a" : "job-b");
        pl.lo = 5;
        pl.hi = 100;
        stress_call(c, "Pull", &pl.base, NULL, 0, st);
        pr.job_id = (char *)(i % 2 ? "job-b" : "job-a");
        pr.hi = 8;
        stress_call(c, "PushPull", &pr.base, g, 2 * sizeof(float), st);
    }
    rpc_client_close(c);
    return NULL;
}

START_TEST(test_ps_service_error_replies_survive_concurrent_configure)
{
    shard_srv t;
    char err[512];
    shard_srv_start(&t, NULL, 12, 8);
    cn_log_set_level(CN_LOG_WARN);
    float init[8] = {0};
    stress st[12];
    pthread_t th[12];
    for (int i = 0; i < 12; i++) {
        st[i] = (stress){.url = t.url};
        pthread_create(&th[i], NULL, stress_caller, &st[i]);
    }
    uint64_t until = cn_now_ms() + 6000;
    int swaps = 0;
    while (cn_now_ms() < until) {
        ps_shard_cfg cfg;
        cfg_init(&cfg, 8, 1, 0, PS_ASP, 1 + (uint32_t)(swaps % 2), 0.1f);
        snprintf(cfg.job_id, sizeof cfg.job_id, "%s", swaps % 2 ? "job-b" : "job-a");
        bool restored;
        ck_assert_int_eq(
            ps_client_configure(t.admin, &cfg, init, false, &restored, err, sizeof err), CN_OK);
        swaps++;
    }
    int calls = 0, nf = 0, oor = 0, inv = 0;
    for (int i = 0; i < 12; i++) {
        st[i].stop = 1;
        pthread_join(th[i], NULL);
        calls += st[i].calls;
        nf += st[i].not_found;
        oor += st[i].out_of_range;
        inv += st[i].invalid;
    }
    cn_log_set_level(CN_LOG_INFO);
    // Every call was refused with the status of its error path.
    ck_assert_int_eq(nf + oor + inv, calls);
    ck_assert_int_gt(nf, 0);
    ck_assert_int_gt(oor, 0);
    ck_assert_int_gt(inv, 0);
    ck_assert_int_gt(swaps, 10);
    shard_srv_stop(&t);
}
END_TEST

// push_raw pushes g (n floats) for (worker, clock) to [0, n) of job-a.
static rpc_code push_raw(rpc_client *c, uint32_t worker, uint64_t clock, const float *g, size_t n,
                         char *detail, size_t dn)
{
    Canopy__Ps__PushRequest pr = CANOPY__PS__PUSH_REQUEST__INIT;
    pr.job_id = (char *)"job-a";
    pr.hi = n;
    pr.worker = worker;
    pr.clock = clock;
    rpc_request rq = {.service = "ParameterServer",
                      .method = "Push",
                      .body = &pr.base,
                      .payload = g,
                      .payload_len = n * sizeof(float),
                      .deadline_ms = 5000};
    rpc_reply rep = {0};
    rpc_code code = rpc_client_call(c, &rq, &rep);
    snprintf(detail, dn, "%s", rep.detail);
    rpc_reply_fini(&rep);
    return code;
}

// With one shard a push-pull's values are the reply's own buffer, read in
// place; each call's request is built in the buffer of the reply before it.
// Several calls in a row of a model above the RPC layer's spare size: every
// view holds exactly the values after that step, the gradient is left as it
// was, and a pull afterwards reads the same values.
START_TEST(test_ps_push_pull_with_one_shard_reads_each_reply_in_place)
{
    enum { N = 40000 }; // 160 KB: the client reuses reply buffers for requests
    shard_srv t;
    char err[512];
    shard_srv_start(&t, NULL, 0, N);
    float *init = malloc(N * sizeof *init), *g = malloc(N * sizeof *g);
    float *expect = malloc(N * sizeof *expect), *pulled = malloc(N * sizeof *pulled);
    for (size_t i = 0; i < N; i++) {
        init[i] = 0.5f * (float)(i % 13);
        expect[i] = init[i];
    }
    ps_shard_cfg cfg;
    cfg_init(&cfg, N, 1, 0, PS_ASP, 1, 1.0f);
    snprintf(cfg.job_id, sizeof cfg.job_id, "job-a");
    ck_assert_int_eq(ps_client_configure(t.admin, &cfg, init, false, NULL, err, sizeof err), CN_OK);
    ps_sync sy = {0};
    for (uint64_t step = 0; step < 4; step++) {
        for (size_t i = 0; i < N; i++) {
            g[i] = 0.25f * (float)((i + step) % 5);
            expect[i] -= g[i]; // exact: quarters of small integers
        }
        const float *now = NULL;
        ck_assert_int_eq(
            ps_client_push_pull(t.admin, step, sy.version, g, &now, &sy, err, sizeof err), CN_OK);
        ck_assert_ptr_nonnull(now);
        ck_assert_uint_eq((uintptr_t)now % 16, 0);
        for (size_t i = 0; i < N; i++) {
            ck_assert_float_eq(now[i], expect[i]);
            ck_assert_float_eq(g[i], 0.25f * (float)((i + step) % 5));
        }
        ck_assert_uint_eq(sy.version, step + 1);
    }
    ck_assert_int_eq(ps_client_pull(t.admin, 0, false, pulled, &sy, err, sizeof err), CN_OK);
    ck_assert_mem_eq(pulled, expect, N * sizeof *pulled);
    uint64_t sent, recv;
    ps_client_bytes(t.admin, &sent, &recv);
    ck_assert_uint_eq(sent, 4 * N * sizeof(float));
    ck_assert_uint_eq(recv, 5 * N * sizeof(float));
    free(init);
    free(g);
    free(expect);
    free(pulled);
    shard_srv_stop(&t);
}
END_TEST

START_TEST(test_ps_bsp_shard_refuses_a_clock_far_ahead_and_one_that_would_wrap)
{
    shard_srv t;
    char err[512], detail[RPC_DETAIL_LEN];
    shard_srv_start(&t, NULL, 0, 4);
    float init[4] = {0}, g[4] = {1, 1, 1, 1};
    ps_shard_cfg cfg;
    cfg_init(&cfg, 4, 1, 0, PS_BSP, 2, 0.5f);
    snprintf(cfg.job_id, sizeof cfg.job_id, "job-a");
    ck_assert_int_eq(ps_client_configure(t.admin, &cfg, init, false, NULL, err, sizeof err), CN_OK);
    rpc_client_opts co = {.url = t.url};
    rpc_client *c;
    ck_assert_int_eq(rpc_client_open(&c, &co, err, sizeof err), CN_OK);
    // Step 0 with both workers: the shard is at clock 1.
    ck_assert_int_eq(push_raw(c, 0, 0, g, 4, detail, sizeof detail), RPC_OK);
    ck_assert_int_eq(push_raw(c, 1, 0, g, 4, detail, sizeof detail), RPC_OK);
    // One push for clock 2^62 (or one whose clock + 1 wraps) is refused.
    ck_assert_int_eq(push_raw(c, 0, UINT64_C(1) << 62, g, 4, detail, sizeof detail),
                     RPC_OUT_OF_RANGE);
    ck_assert_msg(strstr(detail, "Push: clock 4611686018427387904 of worker 0 is ahead of the "
                                 "shard's clock 1"),
                  "%s", detail);
    ck_assert_int_eq(push_raw(c, 1, UINT64_MAX, g, 4, detail, sizeof detail), RPC_OUT_OF_RANGE);
    // The honest pushes for clock 1 are applied, not taken for duplicates.
    ck_assert_int_eq(push_raw(c, 0, 1, g, 4, detail, sizeof detail), RPC_OK);
    ck_assert_int_eq(push_raw(c, 1, 1, g, 4, detail, sizeof detail), RPC_OK);
    ps_stats st;
    ck_assert_int_eq(ps_client_stats(t.admin, 0, &st, err, sizeof err), RPC_OK);
    ck_assert_uint_eq(st.clock, 2);
    ck_assert_uint_eq(st.version, 2);
    ck_assert_uint_eq(st.duplicates, 0);
    rpc_client_close(c);
    shard_srv_stop(&t);
}
END_TEST

START_TEST(test_ps_checkpoint_dir_from_the_wire_stays_under_the_root)
{
    char root[512], err[512];
    ts_tmpdir(root, sizeof root);
    shard_srv t;
    shard_srv_start(&t, root, 0, 4);
    float init[4] = {0};
    ps_shard_cfg cfg;
    cfg_init(&cfg, 4, 1, 0, PS_ASP, 1, 0.5f);
    snprintf(cfg.job_id, sizeof cfg.job_id, "job-a");
    // A name that climbs out of the root is refused.
    snprintf(cfg.checkpoint_dir, sizeof cfg.checkpoint_dir, "jobs/../../escape");
    ck_assert_int_eq(ps_client_configure(t.admin, &cfg, init, false, NULL, err, sizeof err),
                     CN_EINVAL);
    ck_assert_msg(strstr(err, "checkpoint_dir \"jobs/../../escape\" has a \"..\" component: it "
                              "must be a name under the shard's checkpoint root"),
                  "%s", err);
    // An absolute path is a name under the root too.
    snprintf(cfg.checkpoint_dir, sizeof cfg.checkpoint_dir, "/etc/canopy");
    ck_assert_int_eq(ps_client_configure(t.admin, &cfg, init, false, NULL, err, sizeof err), CN_OK);
    rpc_client_opts co = {.url = t.url};
    rpc_client *c;
    ck_assert_int_eq(rpc_client_open(&c, &co, err, sizeof err), CN_OK);
    Canopy__Ps__CheckpointRequest cr = CANOPY__PS__CHECKPOINT_REQUEST__INIT;
    cr.job_id = (char *)"job-a";
    rpc_request rq = {.service = "ParameterServer", .method = "Checkpoint", .body = &cr.base};
    rpc_reply rep;
    ck_assert_int_eq(rpc_client_call(c, &rq, &rep), RPC_OK);
    Canopy__Ps__CheckpointReply *a = (Canopy__Ps__CheckpointReply *)rpc_reply_unpack(
        &rep, &canopy__ps__checkpoint_reply__descriptor);
    ck_assert_ptr_nonnull(a);
    char want[1100];
    snprintf(want, sizeof want, "%s/etc/canopy/job-a.shard0.ckpt", root);
    ck_assert_str_eq(a->path, want);
    ck_assert_int_eq(access(want, F_OK), 0);
    canopy__ps__checkpoint_reply__free_unpacked(a, NULL);
    rpc_reply_fini(&rep);
    rpc_client_close(c);
    shard_srv_stop(&t);
    ts_rmtree(root);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ps");
    TCase *t = tcase_create("core");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_ps_range_sizes_differ_by_at_most_one_and_cover_every_key_once);
    tcase_add_test(t, test_ps_range_puts_the_remainder_first);
    tcase_add_test(t, test_ps_shard_cfg_check_names_the_bad_field);
    tcase_add_test(t, test_ps_client_keeps_no_pointer_into_its_options);
    tcase_add_test(t, test_ps_shard_pull_outside_range_leaves_out_unchanged);
    tcase_add_test(t, test_ps_shard_asp_applies_on_arrival_and_duplicate_push_once);
    tcase_add_test(t, test_ps_shard_push_pull_answers_in_the_gradient_buffer_when_ready);
    tcase_add_test(t, test_ps_shard_bsp_releases_clock_after_all_workers_with_mean);
    tcase_add_test(t, test_ps_shard_ssp_never_lets_a_worker_run_more_than_s_ahead);
    tcase_add_test(t, test_ps_shard_checkpoint_restore_continues_identically);
    tcase_add_test(t, test_ps_shard_bsp_restored_behind_joins_the_workers_clock);
    tcase_add_test(t, test_ps_bsp_two_workers_equal_one_step_on_the_combined_batch);
    tcase_add_test(t, test_ps_service_error_replies_survive_concurrent_configure);
    tcase_add_test(t, test_ps_bsp_shard_refuses_a_clock_far_ahead_and_one_that_would_wrap);
    tcase_add_test(t, test_ps_push_pull_with_one_shard_reads_each_reply_in_place);
    tcase_add_test(t, test_ps_checkpoint_dir_from_the_wire_stays_under_the_root);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
