// sched_kinds_impl.h: the job kinds this scheduler runs, each a table of
// callbacks for the job kernel (sched_job.h). Folder-private.
#ifndef CANOPY_SCHED_KINDS_IMPL_H
#define CANOPY_SCHED_KINDS_IMPL_H

#include "scheduler/sched_job.h"

// sched_sweep_kind: hyper-parameter sweeps, one item per (trial, fold).
extern const sched_kind sched_sweep_kind;
// sched_train_kind: data-parallel training, one item per rank.
extern const sched_kind sched_train_kind;

#endif
