// fed.h: federated learning's round logic, shared by the scheduler's round
// driver and the workers' client executor: the server strategies (FedAvg,
// FedProx, FedAvgM and the FedOpt family FedAdam, FedYogi, FedAdagrad, as in
// Reddi et al., "Adaptive Federated Optimization", ICLR 2021) expressed as
// the server optimizer the parameter-server shards already run, the FedProx
// client term, the seeded client sampler, the round-closing rule, and the
// label-skew figure recorded per client.
//
// The shards hold the model; in round mode (ps.h, PS_ROUND) they fold each
// client's weighted delta into one streaming sum and, when the scheduler
// closes the round, step their server optimizer on the pseudo-gradient
// g = -(sum_k n_k delta_k) / (sum_k n_k). FedAvg is SGD with the server
// learning rate (1: the new model is the weighted mean of the clients').
// Thread rule: plain functions on plain data.
#ifndef CANOPY_FED_H
#define CANOPY_FED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cn_err.h"
#include "ml/optim.h"

typedef enum {
    FED_AVG = 0,  // weighted mean of the clients' models
    FED_PROX,     // FedAvg on the server; clients add mu/2 ||w - w_global||^2
    FED_AVGM,     // server momentum on the pseudo-gradient
    FED_ADAM,     // FedOpt with Adam
    FED_YOGI,     // FedOpt with Yogi
    FED_ADAGRAD,  // FedOpt with Adagrad
} fed_strategy;

#define FED_STRATEGIES "fedavg|fedprox|fedavgm|fedadam|fedyogi|fedadagrad"

// fed_strategy_parse maps a name of FED_STRATEGIES; CN_EINVAL otherwise.
cn_err fed_strategy_parse(const char *name, fed_strategy *out);
const char *fed_strategy_name(fed_strategy s);

// The server side of a strategy. Plain data.
typedef struct fed_server {
    fed_strategy strategy;
    double lr;       // server learning rate (FedAvg, FedProx: 1)
    double momentum; // FedAvgM (0.9)
    double beta1;    // FedOpt first moment (0.9)
    double beta2;    // FedOpt second moment (0.99)
    double tau;      // FedOpt adaptivity (1e-3), the eps of the update
} fed_server;

// fed_server_default fills the strategy's defaults (Reddi et al.'s:
// server lr 1 for FedAvg/FedProx/FedAvgM, 1e-2 for FedOpt; beta1 0.9,
// beta2 0.99, tau 1e-3).
void fed_server_default(fed_server *s, fed_strategy strategy);

// fed_server_optim writes the server optimizer the shards run for s.
// Errors: CN_EINVAL (a value out of range; err names it).
cn_err fed_server_optim(const fed_server *s, optim_cfg *out, char *err, size_t errlen);

// fed_prox_grad adds the FedProx term's gradient mu (w - w_global) to grad
// (n floats each). fed_prox_loss returns the term mu/2 ||w - w_global||^2.
void fed_prox_grad(const float *w, const float *w_global, float mu, float *grad, size_t n);
double fed_prox_loss(const float *w, const float *w_global, float mu, size_t n);

// fed_select writes k distinct clients of [0, n) chosen for round with a
// generator seeded by (seed, round), in increasing order, into out (k
// entries). k is clamped to n; returns the count written. The same seed and
// round always choose the same clients.
uint32_t fed_select(uint64_t seed, uint64_t round, uint32_t n, uint32_t k, uint32_t *out);

// fed_clients_per_round turns clients_per_round (a count >= 1, or a
// fraction in (0, 1) of n) and min_clients into a count in [1, n].
uint32_t fed_clients_per_round(double clients_per_round, uint32_t min_clients, uint32_t n);

// fed_round_closes reports whether a round should close now: every
// selected client is accounted for (finished + dropped + failed ==
// selected), or the quorum of updates is in (finished >= min_updates, when
// min_updates > 0), or the deadline passed (deadline_s > 0 and elapsed_s >=
// deadline_s).
bool fed_round_closes(uint32_t selected, uint32_t finished, uint32_t dropped, uint32_t failed,
                      uint32_t min_updates, double elapsed_s, double deadline_s);

// fed_label_skew returns how far a client's label histogram (counts of
// n_classes classes) is from the global one: the total variation distance
// 0.5 sum |p_c - q_c|, 0 for the same distribution, 1 for disjoint ones.
double fed_label_skew(const size_t *client, const size_t *global, int n_classes);

#endif
