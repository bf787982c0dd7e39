// sched_figures.h: a job's results as the dashboard and the report read
// them, and the figures drawn from them.
//
// A job directory (STATE_DIR/sweeps/<id>/ or STATE_DIR/train/<id>/, or a
// copy of one under results/) is read read-only: job.json, spec.json,
// summary.json and every whole record of results.jsonl (a torn last line,
// which a running job's log may show for an instant, is skipped). Figures
// are drawn by name with svg_chart, from these files only, so the dashboard
// (/api/jobs/<id>/<name>.svg) and `canopy report` draw the same figure from
// the same records.
//
// Figures by kind (see sched_fig_names):
//   sweep:     score-<param> (CV score against each hyper-parameter),
//              timeline (each unit as a segment of time on its worker's row)
//   train:     loss-time, loss-samples, accuracy-time, accuracy-samples,
//              accuracy-bytes (against the bytes all ranks moved), throughput (samples/s per
//              worker), staleness (histogram), bytes (bytes sent and received per worker)
//   federated: round-accuracy, round-clients (selected, finished,
//              dropped, late), round-bytes (up, down), round-time (the
//              round's time split: every "*_seconds" field of a round record),
//              accuracy-time, accuracy-bytes (bytes up and down so far)
// Figures over several jobs (round-accuracy, accuracy-time, accuracy-bytes;
// training and federated jobs may be mixed) draw one series per job, named
// by the job's label.
// Thread rule: a sched_results is immutable once loaded; any thread may
// read it.
#ifndef CANOPY_SCHED_FIGURES_H
#define CANOPY_SCHED_FIGURES_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "common/cn_buf.h"
#include "common/cn_err.h"

typedef enum { FIG_SWEEP = 0, FIG_TRAIN, FIG_FEDERATED } fig_kind;

typedef struct sched_results {
    char dir[1024];
    char id[256]; // job.json "id" (else the directory's name)
    // The job's spec "name" (a run of deploy/experiments: its directory's
    // name), plus a federated job's partitioning: "fedavg-dir0.1 (dirichlet
    // 0.1)".
    char label[256];
    fig_kind kind;
    cJSON *job;     // job.json, or NULL
    cJSON *spec;    // spec.json, or NULL
    cJSON *summary; // summary.json, or NULL
    cJSON **recs;   // results.jsonl records, in order
    size_t n_recs;
    // A sweep's trials: [{trial, params, folds_done, rung, mean_accuracy,
    // std_accuracy, seconds, failed, stopped, full_score}], from trials.csv
    // (written when the sweep ends) or set from the live status
    // (sched_results_set_trials).
    cJSON *trials;
} sched_results;

// sched_results_load reads the job directory dir. A directory is a job's
// when it holds job.json, summary.json or results.jsonl.
// Errors: CN_ENOTFOUND (none of them), CN_EFORMAT (job.json, spec.json or
// summary.json do not parse; err names the file), CN_ENOMEM.
cn_err sched_results_load(const char *dir, sched_results **out, char *err, size_t errlen);

// sched_results_set_trials replaces r's trials with trials (taken; a
// running sweep's status "trials" array).
void sched_results_set_trials(sched_results *r, cJSON *trials);

// sched_trial_full_score: a trial's score covers every fold at its own
// trees ("full_score"; without the key, any trial that did not fail), as
// opposed to the partial score of a trial ASHA stopped. Leaderboards rank
// full scores first.
bool sched_trial_full_score(const cJSON *trial);

// sched_results_free accepts NULL.
void sched_results_free(sched_results *r);

// sched_results_count returns how many records of the given type the log
// holds ("round", "eval", ...; NULL = the sweep's fold records).
size_t sched_results_count(const sched_results *r, const char *type);

// sched_fig_names returns the NULL-terminated figure names for a kind.
const char *const *sched_fig_names(fig_kind kind);

// sched_fig_render appends figure `name` drawn from jobs[0..n) (borrowed)
// to out. Figures of one job use jobs[0] (a sweep's "score-<param>" names
// one of its hyper-parameters).
// Errors: CN_ENOTFOUND (no such figure for this kind), CN_ENOMEM.
cn_err sched_fig_render(const sched_results *const *jobs, size_t n, const char *name, cn_buf *out);

// sched_fig_params lists a sweep's hyper-parameters that vary across its
// trials (the "score-<param>" figures), as a cJSON array of strings the
// caller frees; NULL for other kinds.
cJSON *sched_fig_params(const sched_results *r);

#endif
