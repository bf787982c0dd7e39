// rf_impl.h: internals shared by rf_tree.c (building one tree), rf_forest.c
// (parameters, the forest, prediction) and rf_io.c (the model file).
#ifndef CANOPY_RF_IMPL_H
#define CANOPY_RF_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "common/cn_rand.h"
#include "ml/rf.h"

// One tree node. Leaves have feature -1 and left = right = -1.
typedef struct rf_tnode {
    int32_t feature;
    int32_t left, right;
    uint32_t n_samples; // distinct training rows at the node
    double threshold;   // x[feature] <= threshold goes left
    double impurity;    // gini, or entropy in bits
    double weighted_n;  // total sample weight at the node
} rf_tnode;

// The compact form of a node used for prediction (16 bytes, so a path
// through a tree touches few cache lines). For a split, x <= threshold goes
// left; threshold is the largest float not above the double threshold, which
// gives the same decision for every float x. A leaf has feature -1.
typedef struct rf_pnode {
    float threshold;
    int32_t feature;
    int32_t left, right;
} rf_pnode;

// A tree: nodes in depth-first order (left first) and their class
// probabilities. Thread rule: built by one thread, then read-only.
typedef struct rf_tree {
    int32_t n_nodes;
    int32_t cap;      // room in nodes and value
    int32_t pcap;     // room in pnodes
    rf_tnode *nodes;  // (n_nodes)
    float *value;     // (n_nodes, n_classes) class probabilities
    rf_pnode *pnodes; // (n_nodes) prediction copy, made by rf_tree_finish
} rf_tree;

struct rf_forest {
    rf_params params;
    size_t n_features;
    int n_classes;
    int32_t *class_values; // (n_classes)
    char **feature_names;  // (n_features) or NULL
    char label_name[64];
    int n_trees;
    rf_tree *trees; // (n_trees)
    double oob_score;
    int has_oob;
};

// rf_prep is the training data in the form the builder wants: each feature
// mapped to the ranks of its distinct values (codes), column-major, with the
// sorted distinct values kept to place thresholds. Read-only once built.
typedef struct rf_prep {
    size_t n_rows; // training rows (local indices 0..n_rows)
    size_t n_features;
    int n_classes;
    uint8_t *codes;     // feature j's codes (n_rows of width code_w[j]) at codes + code_off[j]
    size_t *code_off;   // (n_features) byte offset of each column
    uint8_t *code_w;    // (n_features) bytes per code: 1, 2 or 4, by the number of distinct values
    uint8_t *dense_bin; // (n_features) 1: two values, the rarer in at least 1/8 of the rows
    size_t bit_words;   // 64-bit words of a bit set over the rows
    uint64_t *bits;     // (n_features, bit_words) two-valued features: rows with code 1
    uint8_t *rows1;     // (n_rows, row1_w) the 1-byte codes again, row by row
    size_t row1_w;      // 1-byte features, the width of a row of rows1
    int32_t *row1_pos;  // (n_features) feature j's place in a row of rows1, or -1
    uint32_t *n_unique; // (n_features) distinct values per feature
    size_t *uniq_off;   // (n_features + 1) offsets into uniq
    float *uniq;        // distinct values of feature j, ascending: uniq[uniq_off[j]..]
    uint32_t max_unique;
    int32_t *y; // (n_rows) class indices
} rf_prep;

// Per-worker scratch memory for building trees, reused across trees.
typedef struct rf_scratch {
    size_t n_rows, n_features;
    int n_classes;
    uint32_t *idx;       // (n_rows) node sample lists, partitioned in place
    uint32_t *tmp;       // (n_rows)
    uint32_t *vals;      // (n_rows) gathered codes of the node's samples
    uint64_t *keys;      // (n_rows) sort keys
    double *hist;        // (max_unique, n_classes)
    uint32_t *cnt;       // (max_unique)
    int *features;       // (n_features)
    double *w;           // (n_rows) sample weights of the current tree
    uint32_t *boot;      // (n_rows) bootstrap counts of the current tree
    double *cls;         // (4, n_classes) class-count work vectors
    int32_t *ny;         // (n_rows) class of the row at each idx position
    double *nw;          // (n_rows) weight of the row at each idx position
    int32_t *tmpy;       // (n_rows) partition scratch for ny
    double *tmpw;        // (n_rows) partition scratch for nw
    size_t mask_words;   // 64-bit words per feature bit set
    uint64_t *cur_mask;  // (mask_words) features known constant at the current node
    uint64_t *masks;     // (stack_cap, mask_words) known-constant sets of stacked nodes
    double *hist4;       // (4, 16, n_classes) interleaved histograms for few-valued features
    uint32_t *cnt4;      // (4, 16)
    uint8_t *mark;       // (max_unique) values present in the node (min_samples_leaf 1)
    double *stk_ct;      // (stack_cap, n_classes) class weights of stacked nodes
    uint64_t *node_bits; // (bit_words) the current node's rows, when built; else all zero
    rf_tree tree;        // the worker's tree when the forest keeps none, rebuilt in place
    void *stack;
    size_t stack_cap;
} rf_scratch;

cn_err rf_prep_build(const ds_dataset *d, const size_t *rows, size_t n, rf_prep *out);
void rf_prep_fini(rf_prep *p);

cn_err rf_scratch_init(rf_scratch *s, const rf_prep *prep);
void rf_scratch_fini(rf_scratch *s);

// rf_tree_build grows one tree on the rows with s->w[i] > 0 (weights already
// hold bootstrap counts times class weights). max_features is resolved.
// out is zeroed or a tree built before, whose memory is reused (a worker
// that keeps no trees rebuilds one in place: no allocation, no fresh pages).
// Returns CN_OK or CN_ENOMEM (out is then freed and zeroed).
cn_err rf_tree_build(const rf_params *p, int max_features, const rf_prep *prep, rf_scratch *s,
                     cn_rng *rng, rf_tree *out);

// rf_tree_prune_ccp applies minimal cost-complexity pruning with alpha
// (sklearn semantics: repeatedly collapse the weakest link while its
// effective alpha <= alpha) and compacts the node array. Returns CN_ENOMEM
// or CN_OK.
cn_err rf_tree_prune_ccp(rf_tree *t, int n_classes, double alpha);

void rf_tree_fini(rf_tree *t);

// rf_tree_finish builds t->pnodes from t->nodes. Returns CN_OK or CN_ENOMEM.
cn_err rf_tree_finish(rf_tree *t);

// rf_tree_leaf returns the index of the leaf x (n_features floats) falls
// into. The tree must be finished.
static inline int32_t rf_tree_leaf(const rf_tree *t, const float *x)
{
    const rf_pnode *nodes = t->pnodes;
    int32_t i = 0;
    while (nodes[i].feature >= 0)
        i = x[nodes[i].feature] <= nodes[i].threshold ? nodes[i].left : nodes[i].right;
    return i;
}

// rf_tree_route finds the leaf of n rows at once: cols holds them column
// by column (feature j of row i at cols[j * n + i]), and leaf[i] receives
// row i's leaf. Instead of walking each row from the root (a chain of
// dependent loads and a mispredicted branch per level), it partitions the
// list of rows at each split, as the tree was grown: a node's loads are
// independent, in ascending order within one column, and the partition has
// no branch. pos and tmp are scratch of n entries. The tree must be finished.
void rf_tree_route(const rf_tree *t, const float *cols, size_t n, uint32_t *pos, uint32_t *tmp,
                   int32_t *leaf);

// rf_forest_alloc makes an empty forest shell with the given shape, copying
// class values and names from d when d is not NULL. Returns NULL on OOM.
rf_forest *rf_forest_alloc(int n_trees, size_t n_features, int n_classes);

#endif
