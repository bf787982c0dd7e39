// sched_members.c: membership table with a reaper thread (see
// sched_members.h).
#include "scheduler/sched_members.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cn_clock.h"
#include "common/cn_log.h"

#define MAX_CALLBACKS 8
#define MAX_MEMBERS 65536   // registrations beyond are refused (CN_ENOMEM)
#define KEEP_DEAD_FACTOR 10 // a dead node stays listed this many dead-after times

typedef struct member {
    cluster_node info;
    uint64_t last_seen_ms; // monotonic
    int dead_reported;
} member;

struct sched_members {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    member *v;
    size_t n, cap;
    uint32_t heartbeat_ms, dead_after_ms;
    struct {
        sched_dead_fn fn;
        void *arg;
    } cbs[MAX_CALLBACKS];
    int ncbs;
    pthread_mutex_t cb_mu; // held while callbacks run, so removing one waits for it
    int stopping;
    pthread_t reaper;
};

// prune forgets nodes dead for KEEP_DEAD_FACTOR dead-after intervals (mu
// held), so nodes that come and go do not grow the table for ever.
static void prune(sched_members *m, uint64_t now)
{
    uint64_t keep = (uint64_t)KEEP_DEAD_FACTOR * m->dead_after_ms;
    size_t j = 0;
    for (size_t i = 0; i < m->n; i++) {
        member *x = &m->v[i];
        if (x->info.state == CLUSTER_NODE_DEAD && x->dead_reported && now - x->last_seen_ms >= keep)
            continue;
        m->v[j++] = *x;
    }
    m->n = j;
}

static void *reaper_main(void *arg)
{
    sched_members *m = arg;
    pthread_mutex_lock(&m->mu);
    while (!m->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)(m->heartbeat_ms / 2 + 1) * 1000000ull;
        ts.tv_sec += (time_t)(ns / 1000000000ull);
        ts.tv_nsec = (long)(ns % 1000000000ull);
        pthread_cond_timedwait(&m->cv, &m->mu, &ts);
        if (m->stopping)
            break;
        uint64_t now = cn_now_ms();
        prune(m, now);
        for (size_t i = 0; i < m->n; i++) {
            member *x = &m->v[i];
            uint64_t silent = now - x->last_seen_ms;
            if (x->info.state == CLUSTER_NODE_DEAD)
                continue;
            if (silent >= m->dead_after_ms) {
                x->info.state = CLUSTER_NODE_DEAD;
                if (!x->dead_reported) {
                    x->dead_reported = 1;
                    cluster_node info = x->info;
                    CN_WARN("node %016llx (%s rank %u, %s) sent no heartbeat for %.1f s: "
                            "marked dead",
                            (unsigned long long)info.node_id, cluster_role_name(info.role),
                            info.rank, info.name, (double)silent / 1000.0);
                    pthread_mutex_unlock(&m->mu);
                    pthread_mutex_lock(&m->cb_mu);
                    for (int c = 0; c < m->ncbs; c++)
                        m->cbs[c].fn(info.node_id, info.role, info.rank, m->cbs[c].arg);
                    pthread_mutex_unlock(&m->cb_mu);
                    pthread_mutex_lock(&m->mu);
                    now = cn_now_ms();
                }
            } else if (silent >= 2 * (uint64_t)m->heartbeat_ms) {
                x->info.state = CLUSTER_NODE_SUSPECT;
            }
        }
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

cn_err sched_members_new(sched_members **out, uint32_t heartbeat_ms, uint32_t dead_after_ms)
{
    *out = NULL;
    if (heartbeat_ms == 0 || dead_after_ms <= heartbeat_ms)
        return CN_EINVAL;
    sched_members *m = calloc(1, sizeof *m);
    if (m == NULL)
        return CN_ENOMEM;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->cb_mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->heartbeat_ms = heartbeat_ms;
    m->dead_after_ms = dead_after_ms;
    if (pthread_create(&m->reaper, NULL, reaper_main, m) != 0) {
        free(m);
        return CN_ENOMEM;
    }
    *out = m;
    return CN_OK;
}

void sched_members_free(sched_members *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    m->stopping = 1;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->reaper, NULL);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->cb_mu);
    pthread_cond_destroy(&m->cv);
    free(m->v);
    free(m);
}

void sched_members_on_dead(sched_members *m, sched_dead_fn fn, void *arg)
{
    pthread_mutex_lock(&m->cb_mu);
    CN_ASSERT(m->ncbs < MAX_CALLBACKS);
    m->cbs[m->ncbs].fn = fn;
    m->cbs[m->ncbs].arg = arg;
    m->ncbs++;
    pthread_mutex_unlock(&m->cb_mu);
}

void sched_members_off_dead(sched_members *m, sched_dead_fn fn, void *arg)
{
    pthread_mutex_lock(&m->cb_mu);
    for (int c = 0; c < m->ncbs; c++)
        if (m->cbs[c].fn == fn && m->cbs[c].arg == arg) {
            m->cbs[c] = m->cbs[--m->ncbs];
            break;
        }
    pthread_mutex_unlock(&m->cb_mu);
}

static member *find(sched_members *m, uint64_t id)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].info.node_id == id)
            return &m->v[i];
    return NULL;
}

// smallest_free_rank returns the smallest rank of role held by no live
// node other than except: one pass over the table (mu held).
static uint32_t smallest_free_rank(sched_members *m, int role, uint64_t except, bool *nomem)
{
    // Among n nodes the smallest free rank is at most n.
    uint8_t *taken = calloc(m->n + 1, 1);
    if (taken == NULL) {
        *nomem = true;
        return 0;
    }
    for (size_t i = 0; i < m->n; i++) {
        const member *x = &m->v[i];
        if (x->info.role == role && x->info.state != CLUSTER_NODE_DEAD &&
            x->info.node_id != except && x->info.rank <= m->n)
            taken[x->info.rank] = 1;
    }
    uint32_t r = 0;
    while (taken[r])
        r++;
    free(taken);
    return r;
}

static bool rank_taken(sched_members *m, int role, uint32_t rank, uint64_t except)
{
    for (size_t i = 0; i < m->n; i++) {
        member *x = &m->v[i];
        if (x->info.role == role && x->info.rank == rank && x->info.state != CLUSTER_NODE_DEAD &&
            x->info.node_id != except)
            return true;
    }
    return false;
}

cn_err sched_members_register(sched_members *m, uint64_t node_id, int role, const char *address,
                              const char *name, uint32_t threads, uint32_t *rank)
{
    if (node_id == 0 || (role != CLUSTER_ROLE_PS && role != CLUSTER_ROLE_WORKER))
        return CN_EINVAL;
    pthread_mutex_lock(&m->mu);
    member *x = find(m, node_id);
    int fresh = 0;
    if (x == NULL) {
        if (m->n >= MAX_MEMBERS)
            prune(m, cn_now_ms());
        if (m->n >= MAX_MEMBERS) {
            pthread_mutex_unlock(&m->mu);
            return CN_ENOMEM;
        }
        if (m->n == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 16;
            member *nv = realloc(m->v, cap * sizeof *nv);
            if (nv == NULL) {
                pthread_mutex_unlock(&m->mu);
                return CN_ENOMEM;
            }
            m->v = nv;
            m->cap = cap;
        }
        x = &m->v[m->n++];
        memset(x, 0, sizeof *x);
        x->info.node_id = node_id;
        fresh = 1;
    }
    if (fresh || x->info.role != role || x->info.state == CLUSTER_NODE_DEAD ||
        rank_taken(m, role, x->info.rank, node_id)) {
        bool nomem = false;
        uint32_t r = smallest_free_rank(m, role, node_id, &nomem);
        if (nomem) {
            if (fresh)
                m->n--;
            pthread_mutex_unlock(&m->mu);
            return CN_ENOMEM;
        }
        x->info.rank = r;
    }
    x->info.role = role;
    snprintf(x->info.address, sizeof x->info.address, "%s", address ? address : "");
    snprintf(x->info.name, sizeof x->info.name, "%s", name ? name : "");
    x->info.threads = threads;
    x->info.state = CLUSTER_NODE_ALIVE;
    x->dead_reported = 0;
    x->last_seen_ms = cn_now_ms();
    *rank = x->info.rank;
    cluster_node info = x->info;
    pthread_mutex_unlock(&m->mu);
    CN_INFO("node %016llx registered: %s rank %u at %s (%s, %u %s)",
            (unsigned long long)node_id, cluster_role_name(role), info.rank,
            info.address[0] ? info.address : "-", info.name, threads,
            cn_plural(threads, "thread", "threads"));
    return CN_OK;
}

cn_err sched_members_heartbeat(sched_members *m, uint64_t node_id, const char *status)
{
    pthread_mutex_lock(&m->mu);
    member *x = find(m, node_id);
    if (x == NULL || x->info.state == CLUSTER_NODE_DEAD) {
        pthread_mutex_unlock(&m->mu);
        return CN_ENOTFOUND;
    }
    x->last_seen_ms = cn_now_ms();
    x->info.state = CLUSTER_NODE_ALIVE;
    snprintf(x->info.status, sizeof x->info.status, "%s", status ? status : "");
    pthread_mutex_unlock(&m->mu);
    return CN_OK;
}

cn_err sched_members_snapshot(sched_members *m, cluster_node **nodes, size_t *n)
{
    pthread_mutex_lock(&m->mu);
    cluster_node *v = malloc((m->n ? m->n : 1) * sizeof *v);
    if (v == NULL) {
        pthread_mutex_unlock(&m->mu);
        return CN_ENOMEM;
    }
    uint64_t now = cn_now_ms();
    for (size_t i = 0; i < m->n; i++) {
        v[i] = m->v[i].info;
        v[i].last_heartbeat_ms_ago = now - m->v[i].last_seen_ms;
    }
    *nodes = v;
    *n = m->n;
    pthread_mutex_unlock(&m->mu);
    return CN_OK;
}

size_t sched_members_count(sched_members *m, int role)
{
    size_t c = 0;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].info.role == role && m->v[i].info.state != CLUSTER_NODE_DEAD)
            c++;
    pthread_mutex_unlock(&m->mu);
    return c;
}

int sched_members_is_alive(sched_members *m, uint64_t node_id)
{
    pthread_mutex_lock(&m->mu);
    member *x = find(m, node_id);
    int alive = x && x->info.state != CLUSTER_NODE_DEAD;
    pthread_mutex_unlock(&m->mu);
    return alive;
}

uint32_t sched_members_heartbeat_ms(const sched_members *m)
{
    return m->heartbeat_ms;
}
uint32_t sched_members_dead_after_ms(const sched_members *m)
{
    return m->dead_after_ms;
}
