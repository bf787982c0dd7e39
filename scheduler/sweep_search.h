// sweep_search.h: the search algorithms a sweep runs beside its trials:
// asynchronous successive halving (ASHA, Li et al. 2020) with a trial's
// cross-validation folds as its budget, and the tree-structured Parzen
// estimator (TPE, Bergstra et al. 2011) over a sweep's space
// (sweep_spec_tpe_suggest in sweep_spec.h). Pure bookkeeping: no I/O, no
// locks, no clocks, so a scripted sequence of scores gives a fixed answer.
//
// ASHA: rung r has a budget of b_r folds: b_0 = 1, b_r = eta^r while that
// is below the fold count, and the last rung is every fold, so a trial that
// reaches the top has a full k-fold score. A trial completes rung r when
// its first b_r folds are done; its rung-r score is their mean accuracy. A
// trial is promoted from rung r when it is among the best floor(n_r / eta)
// of the n_r trials that completed rung r (the rule of Li et al., applied as
// results arrive: no rung waits to fill). Promotions are sought from the
// top rung down, so work closest to a full score goes first. A trial that
// is never promoted is stopped with its partial score.
//
// Thread rule: an asha is plain data; its owner serializes calls.
#ifndef CANOPY_SWEEP_SEARCH_H
#define CANOPY_SWEEP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ASHA_MAX_RUNGS 16

typedef struct asha asha;

// asha_new makes the bookkeeping for n_trials trials of max_budget folds
// (>= 1) and reduction factor eta (>= 2). Returns NULL when out of memory.
asha *asha_new(size_t n_trials, uint32_t max_budget, uint32_t eta);

// asha_free frees a. Accepts NULL.
void asha_free(asha *a);

// asha_n_rungs returns the number of rungs; asha_budget the folds of rung r.
size_t asha_n_rungs(const asha *a);
uint32_t asha_budget(const asha *a, size_t rung);

// asha_grant records that trial t was given rung r's budget (r = 0 when it
// starts, r > 0 when promoted). Grants only go up.
void asha_grant(asha *a, size_t t, size_t rung);

// asha_granted returns the highest rung trial t was given, or -1.
int asha_granted(const asha *a, size_t t);

// asha_complete records trial t's score at rung r (its first b_r folds are
// done). Recording the same rung twice keeps the first score.
void asha_complete(asha *a, size_t t, size_t rung, double score);

// asha_reached returns the highest rung trial t completed, or -1, and its
// score there in *score (may be NULL).
int asha_reached(const asha *a, size_t t, double *score);

// asha_promotable finds a trial to promote: from the second-highest rung
// down, the best trial of rung r that was not granted a higher rung and is
// among the best floor(n_r / eta) completed at r (ties: lower trial index).
// Returns true with the trial in *t and its new rung in *rung.
bool asha_promotable(const asha *a, size_t *t, size_t *rung);

#endif
