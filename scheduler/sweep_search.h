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
// Trees as a second budget (min_trees > 0): rung r of the top rung R also
// trains fewer trees, min(n, max(min_trees, round(n * eta^(r-R)))) of a
// trial's n, so the top rung is still the trial's full forest, and one rung
// is added below it: every fold at 1/eta of the trees (eta 3, 5 folds:
// 1, 3, 5, 5 folds at 1/27, 1/9, 1/3, 1 of the trees). Scores
// of different tree counts are not mixed: each rung runs its b_r folds
// afresh at its own tree count. A trial's units are then laid out rung
// after rung (rung r's folds are units first_unit(r) .. first_unit(r) +
// b_r - 1), so the unit of (rung, fold) is fixed by the spec alone; without
// the tree budget every rung shares the first folds (first_unit(r) = 0).
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
// (>= 1) and reduction factor eta (>= 2), with trees as a second budget of
// at least min_trees per forest when min_trees > 0. Returns NULL when out
// of memory.
asha *asha_new(size_t n_trials, uint32_t max_budget, uint32_t eta, uint32_t min_trees);

// asha_free frees a. Accepts NULL.
void asha_free(asha *a);

// asha_n_rungs returns the number of rungs; asha_budget the folds of rung r.
size_t asha_n_rungs(const asha *a);
uint32_t asha_budget(const asha *a, size_t rung);

// asha_trees returns the trees rung r trains for a trial of n_estimators
// trees: n_estimators itself without the tree budget and at the top rung.
uint32_t asha_trees(const asha *a, size_t rung, uint32_t n_estimators);

// asha_units returns the units (folds) one trial may run: max_budget, or,
// with the tree budget, the sum of every rung's budget.
size_t asha_units(const asha *a);

// asha_first_unit returns the index of rung r's first unit in a trial.
size_t asha_first_unit(const asha *a, size_t rung);

// asha_unit_rung returns the rung a unit belongs to (with the tree budget),
// else the lowest rung whose budget includes it.
size_t asha_unit_rung(const asha *a, size_t unit);

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

// asha_set_baseline names the trial the sweep is compared with (its
// default): it is promoted as soon as it completes each rung, whatever its
// score, so its score is always a full one. Does not count against the
// rule for the others beyond being one more completed trial per rung.
void asha_set_baseline(asha *a, size_t t);

// asha_promotable finds a trial to promote: the baseline when it completed
// its rung below the top; from the second-highest rung
// down, the best trial of rung r that was not granted a higher rung and is
// among the best floor(n_r / eta) completed at r (ties: lower trial index).
// Returns true with the trial in *t and its new rung in *rung.
bool asha_promotable(const asha *a, size_t *t, size_t *rung);

// asha_finishing finds the promotion that carries the search to a full
// score when no trial was given the top rung and, the caller knows, no
// other work is left (few trials, many rungs: floor(n_r / eta) can stay 0
// below the top): the best trial of the highest rung any trial completed
// and stopped at (ties: lower index). Returns true with the trial in *t
// and its new rung in *rung.
bool asha_finishing(const asha *a, size_t *t, size_t *rung);

#endif
