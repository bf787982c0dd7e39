// threadpool.c: parallel-for over a fixed set of pthreads (see threadpool.h).
//
// Each ml_pool_run publishes a job (fn, arg, n_tasks) under a generation
// counter; workers wake, take task indices from a shared counter, and the
// last one to finish signals the caller. The caller works too.
#include "ml/threadpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct ml_pool {
    int size; // workers including the caller
    pthread_t *threads;
    int n_started;
    pthread_mutex_t mu;
    pthread_cond_t wake; // a new job or shutdown
    pthread_cond_t done; // the last worker left the current job
    unsigned long generation;
    int shutdown;
    // The current job, valid while active > 0.
    ml_pool_fn fn;
    void *arg;
    size_t n_tasks;
    size_t next; // next task index to hand out, under mu
    int active;  // pthreads still inside the current job
};

int ml_pool_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

// take returns the next task index or n_tasks when none is left.
static size_t take(ml_pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t t = p->next < p->n_tasks ? p->next++ : p->n_tasks;
    pthread_mutex_unlock(&p->mu);
    return t;
}

typedef struct worker_arg {
    ml_pool *pool;
    int index;
} worker_arg;

static void *worker_main(void *v)
{
    worker_arg *wa = v;
    ml_pool *p = wa->pool;
    int index = wa->index;
    free(wa);
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->shutdown && p->generation == seen)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->shutdown)
            break;
        seen = p->generation;
        ml_pool_fn fn = p->fn;
        void *arg = p->arg;
        size_t n = p->n_tasks;
        pthread_mutex_unlock(&p->mu);
        for (size_t t = take(p); t < n; t = take(p))
            fn(arg, t, index);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

cn_err ml_pool_new(int threads, ml_pool **out)
{
    *out = NULL;
    if (threads < 0)
        return CN_EINVAL;
    if (threads == 0)
        threads = ml_pool_cpus();
    ml_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return CN_ENOMEM;
    p->size = threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (threads > 1) {
        p->threads = calloc((size_t)threads - 1, sizeof(pthread_t));
        if (p->threads == NULL) {
            ml_pool_free(p);
            return CN_ENOMEM;
        }
    }
    for (int i = 1; i < threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa == NULL) {
            ml_pool_free(p);
            return CN_ENOMEM;
        }
        wa->pool = p;
        wa->index = i;
        if (pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
            free(wa);
            ml_pool_free(p);
            return CN_EUNAVAIL;
        }
        p->n_started++;
    }
    *out = p;
    return CN_OK;
}

void ml_pool_free(ml_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->shutdown = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}

int ml_pool_size(const ml_pool *p)
{
    return p->size;
}

void ml_pool_run(ml_pool *p, size_t n_tasks, ml_pool_fn fn, void *arg)
{
    if (n_tasks == 0)
        return;
    if (p->n_started == 0 || n_tasks == 1) {
        for (size_t t = 0; t < n_tasks; t++)
            fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    p->next = 0;
    p->active = p->n_started;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (size_t t = take(p); t < n_tasks; t = take(p))
        fn(arg, t, 0);
    pthread_mutex_lock(&p->mu);
    while (p->active > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
