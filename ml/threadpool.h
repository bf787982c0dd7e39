// threadpool.h: a fixed pool of pthreads that runs parallel-for loops.
//
// The forest builds its trees with it: ml_pool_run(pool, n_trees, fn, arg)
// calls fn(arg, task, worker) once for every task in [0, n_tasks), spread
// over the pool's workers, and returns when all are done. The worker index
// (0 <= worker < ml_pool_size) lets a task use per-worker scratch memory
// without locks. Which worker runs which task is not deterministic, so a
// task's result must depend only on its task index.
// Thread rule: one ml_pool_run at a time per pool (the caller's thread takes
// part as worker 0).
#ifndef CANOPY_THREADPOOL_H
#define CANOPY_THREADPOOL_H

#include <stddef.h>

#include "common/cn_err.h"

typedef struct ml_pool ml_pool;

typedef void (*ml_pool_fn)(void *arg, size_t task, int worker);

// ml_pool_cpus returns the number of online CPUs (at least 1).
int ml_pool_cpus(void);

// ml_pool_new starts a pool of `threads` workers (0 = ml_pool_cpus(); the
// caller's thread counts as one, so threads-1 pthreads are created).
// Errors: CN_EINVAL (threads < 0), CN_ENOMEM, CN_EUNAVAIL (pthread_create failed).
cn_err ml_pool_new(int threads, ml_pool **out);

// ml_pool_free stops and joins the workers. Accepts NULL. Must not be called
// while ml_pool_run is running.
void ml_pool_free(ml_pool *pool);

// ml_pool_size returns the number of workers, including the caller.
int ml_pool_size(const ml_pool *pool);

// ml_pool_run runs fn for every task in [0, n_tasks) and blocks until all
// have returned. Tasks are handed out in increasing order.
void ml_pool_run(ml_pool *pool, size_t n_tasks, ml_pool_fn fn, void *arg);

#endif
