// sched_members.h: the scheduler's membership table.
//
// Nodes register (getting a rank within their role) and heartbeat. A node
// whose heartbeats stop is SUSPECT after two intervals and DEAD after the
// timeout; a dead node's rank is free for the next node of its role, and the
// on_dead callback lets job logic (sweeps, training) re-queue its work.
// Thread rule: all functions are thread-safe (one mutex); callbacks run on
// the table's reaper thread with no lock held.
#ifndef CANOPY_SCHED_MEMBERS_H
#define CANOPY_SCHED_MEMBERS_H

#include <stddef.h>
#include <stdint.h>

#include "common/cn_err.h"
#include "proto/cluster_client.h"

typedef struct sched_members sched_members;

typedef void (*sched_dead_fn)(uint64_t node_id, int role, uint32_t rank, void *arg);

// sched_members_new starts the table and its reaper thread.
// heartbeat_ms: the interval nodes are told to use; dead_after_ms: silence
// after which a node is declared dead.
cn_err sched_members_new(sched_members **out, uint32_t heartbeat_ms, uint32_t dead_after_ms);
void sched_members_free(sched_members *m);

// sched_members_on_dead adds a callback run once per node declared dead.
void sched_members_on_dead(sched_members *m, sched_dead_fn fn, void *arg);

// sched_members_off_dead removes a callback added with the same fn and arg;
// when it returns, the callback is not running and will not run again.
void sched_members_off_dead(sched_members *m, sched_dead_fn fn, void *arg);

// sched_members_register adds or refreshes a node. A node id seen before keeps
// its rank; a new node gets the smallest rank not held by a live node of its
// role. Returns CN_OK with *rank set, CN_EINVAL for a bad role or zero id,
// CN_ENOMEM when the table holds 65536 nodes none of which can be dropped.
// Nodes dead for ten dead-after intervals are dropped from the table.
cn_err sched_members_register(sched_members *m, uint64_t node_id, int role, const char *address,
                              const char *name, uint32_t threads, uint32_t *rank);

// sched_members_heartbeat records a heartbeat; returns CN_ENOTFOUND if the
// node is unknown (it should register again).
cn_err sched_members_heartbeat(sched_members *m, uint64_t node_id, const char *status);

// sched_members_snapshot copies the table (malloc'd array, caller frees).
cn_err sched_members_snapshot(sched_members *m, cluster_node **nodes, size_t *n);

// sched_members_count returns the number of live (not dead) nodes of a role.
size_t sched_members_count(sched_members *m, int role);

// sched_members_is_alive reports whether node_id is registered and not dead.
int sched_members_is_alive(sched_members *m, uint64_t node_id);

uint32_t sched_members_heartbeat_ms(const sched_members *m);
uint32_t sched_members_dead_after_ms(const sched_members *m);

#endif
