// sweep_spec.h: the sweep file: model (a random forest scored by k-fold
// cross-validation, or an MLP scored on a held-out validation split), data
// set, cross-validation, search space, search algorithm and limits,
// validated and expanded into trials.
//
// Search space entries follow Ray Tune's vocabulary: {"grid": [...]},
// {"choice": [...]}, {"uniform": [lo, hi]}, {"quniform": [lo, hi, q]},
// {"loguniform": [lo, hi]}, {"qloguniform": [lo, hi, q]},
// {"randint": [lo, hi]} (hi exclusive), {"qrandint": [lo, hi, q]} (hi
// inclusive), or a plain value (fixed). With algorithm "random", each of
// `samples` draws is combined with every grid point (Ray's semantics); with
// "grid", choices are expanded like grids and continuous entries are an
// error. With "tpe", the same `samples` draws are made as with "random"
// (same seed, same draws); the first `startup` of them run as drawn and
// each later trial is proposed by TPE from the results so far when it
// starts (sweep_spec_tpe_suggest); grid entries are an error. "scheduler":
// "asha" stops poor trials early (sweep_search.h), with either algorithm. Trial 0 is always the
// model's default parameters (plus "fixed"), so the comparison with the default is measured in the
// same run. Everything is validated before anything runs; errors name the JSON path
// ("space.max_features.choice[2]: ...").
#ifndef CANOPY_SWEEP_SPEC_H
#define CANOPY_SWEEP_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cn_err.h"

typedef struct sweep_spec {
    char name[128];
    char model[16]; // "random_forest" (trials scored by k-fold CV) | "mlp"
    // data
    char data_path[1024]; // as written in the file (resolved by the submitter)
    // mlp: IDX training images and labels as written (resolved by the
    // submitter); validation holds out this fraction of the training rows
    // (shuffled by cv.seed); the test set is not part of a sweep.
    char train_images[1024], train_labels[1024];
    uint64_t train_rows; // 0 = all
    double validation;   // (0.1)
    uint32_t epochs;     // mlp: the trials' epochs unless the space sets them;
                         // with asha the budget of the last rung (fixed.epochs, 5)
    char label[128];     // label column name ("Cover_Type")
    char drop[256];      // comma-separated id columns to drop ("Id")
    // cross-validation
    uint32_t folds;   // 2..100 (5)
    uint64_t cv_seed; // (0)
    bool shuffle;     // (true)
    // search
    char algorithm[16];        // "grid" | "random" | "tpe"
    uint32_t samples;          // random, tpe: draws per grid point (10)
    uint64_t search_seed;      // (0)
    char scheduler[16];        // "fifo" (every trial runs every fold) | "asha"
    uint32_t eta;              // asha: 1/eta of a rung is promoted (3)
    bool tree_budget;          // asha, forest: low rungs also train fewer trees (false)
    uint32_t min_trees;        // tree_budget: the fewest trees at any rung (10)
    uint32_t startup;          // tpe: trials drawn at random before TPE proposes (10)
    uint32_t candidates;       // tpe: draws from the good density per proposal (24)
    struct sweep_space *space; // tpe: the parsed space (private)
    // limits
    uint32_t max_concurrent; // units running at once, 0 = no limit
    uint32_t unit_timeout_s; // a unit running longer is re-queued (1800)
    uint32_t retries;        // re-runs of a failed or lost unit (2)
    // trials
    size_t n_trials;
    char **trials; // (n_trials) parameters as compact JSON objects; [0] = default
} sweep_spec;

// sweep_spec_parse parses and validates the sweep in text (origin names the
// file in messages) and expands its trials. Each trial's parameters are
// checked against the model's parameters (the random forest's table, or
// mlp_hparams_from_json: hidden, batch, epochs, seed and optimizer keys). Errors: CN_EFORMAT
// (not JSON), CN_EINVAL (a bad key or value; err has the path, the value and
// what is allowed), CN_ERANGE (more than 100,000 trials), CN_ENOMEM.
cn_err sweep_spec_parse(const char *text, const char *origin, sweep_spec **out, char *err,
                        size_t errlen);

// sweep_tpe_obs: one trial as TPE sees it: its parameters (compact JSON)
// and its score (higher is better), or pending (still running).
typedef struct sweep_tpe_obs {
    const char *params;
    double score;
    bool pending;
} sweep_tpe_obs;

// sweep_spec_tpe_suggest proposes the parameters of trial `trial` of a
// "tpe" sweep from obs (borrowed), as compact JSON in *out (malloc'd).
// Pending trials are given the worst finished score (the constant liar),
// so several workers asking at once get different proposals. Deterministic:
// the same spec, trial index and obs give the same proposal. A proposal
// that repeats a trial in obs is drawn again (up to 32 times). When fewer
// than two trials are finished, the redraws find nothing new, or the
// proposal breaks a parameter rule, the trial's random draw is returned
// instead. Errors: CN_ENOMEM.
cn_err sweep_spec_tpe_suggest(const sweep_spec *s, size_t trial, const sweep_tpe_obs *obs, size_t n,
                              char **out);

// sweep_spec_free frees s. Accepts NULL.
void sweep_spec_free(sweep_spec *s);

#endif
