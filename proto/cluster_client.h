// cluster_client.h: the client side of membership, shared by every node.
//
// A cluster_agent registers its node (ps, worker) with the scheduler and
// heartbeats from a background thread; if the scheduler restarts and forgets
// the node, the agent registers again. cluster_status fetches the cluster
// table for `canopy status` and for tests. Services on top of the RPC
// runtime live here so that ps/, worker/ and cli/ share one implementation.
#ifndef CANOPY_CLUSTER_CLIENT_H
#define CANOPY_CLUSTER_CLIENT_H

#include <stdint.h>

#include "common/cn_err.h"
#include "proto/rpc.h"

typedef enum {
    CLUSTER_ROLE_SCHEDULER = 1,
    CLUSTER_ROLE_PS = 2,
    CLUSTER_ROLE_WORKER = 3,
} cluster_role;

typedef enum {
    CLUSTER_NODE_ALIVE = 1,
    CLUSTER_NODE_SUSPECT = 2,
    CLUSTER_NODE_DEAD = 3,
} cluster_node_state;

// cluster_role_name: "scheduler", "ps", "worker" ("?" otherwise).
const char *cluster_role_name(int role);
// cluster_state_name: "alive", "suspect", "dead" ("?" otherwise).
const char *cluster_state_name(int state);

// cluster_new_node_id returns a random non-zero 64-bit id (from the kernel).
uint64_t cluster_new_node_id(void);

typedef struct cluster_agent cluster_agent;

typedef struct cluster_agent_opts {
    const char *scheduler_url; // where the scheduler serves RPC
    const char *token;         // cluster token, "" for none
    rpc_tls tls;               // for tls+tcp:// scheduler URLs
    cluster_role role;
    const char *address; // this node's own RPC address, advertised to others
    const char *name;    // human name, e.g. "host:pid"
    uint32_t threads;    // compute threads offered
    uint64_t node_id;    // 0 = random
} cluster_agent_opts;

// cluster_agent_start registers with the scheduler, waiting up to
// register_timeout_ms for it to answer, then heartbeats in the background.
// Errors: CN_EUNAVAIL (scheduler not reachable in time), CN_EAUTH (token
// refused), CN_EINVAL; err says which.
cn_err cluster_agent_start(cluster_agent **out, const cluster_agent_opts *opts,
                           int register_timeout_ms, char *err, size_t errlen);

// cluster_agent_rank returns the rank assigned within the node's role.
uint32_t cluster_agent_rank(const cluster_agent *a);
uint64_t cluster_agent_node_id(const cluster_agent *a);

// cluster_agent_set_status sets the short status text sent with the next
// heartbeat (copied). Thread-safe.
void cluster_agent_set_status(cluster_agent *a, const char *status);

// cluster_agent_stop stops heartbeating and frees a. Accepts NULL.
void cluster_agent_stop(cluster_agent *a);

// One row of the cluster table.
typedef struct cluster_node {
    uint64_t node_id;
    int role; // cluster_role
    uint32_t rank;
    char address[128];
    char name[128];
    int state; // cluster_node_state
    uint64_t last_heartbeat_ms_ago;
    char status[128];
    uint32_t threads;
} cluster_node;

// cluster_status asks the scheduler at c for its node table. On RPC_OK,
// *nodes (malloc'd, caller frees) holds *n rows sorted by role then rank.
rpc_code cluster_status(rpc_client *c, cluster_node **nodes, size_t *n, uint64_t *uptime_ms,
                        char *detail, size_t detail_len);

// cluster_ping calls Cluster/Ping on any node; RPC_OK when it answers.
rpc_code cluster_ping(rpc_client *c, int deadline_ms, char *detail, size_t detail_len);

// cluster_metrics calls Cluster/Metrics on any node and appends its RPC
// metrics (Prometheus text, see rpc_server_metrics) to out.
rpc_code cluster_metrics(rpc_client *c, cn_buf *out, char *detail, size_t detail_len);

// cluster_serve_ping registers Cluster/Ping (the reply describes the node:
// role, name) and Cluster/Metrics on a node's server.
cn_err cluster_serve_ping(rpc_server *s, cluster_role role, const char *name);

// cluster_call performs a call with a protobuf request and unpacks the
// reply body with rdesc into *out (caller frees with
// protobuf_c_message_free_unpacked). out may be NULL to ignore the body. A
// malformed reply body gives RPC_INTERNAL. detail (may be NULL) receives the
// status detail on failure.
rpc_code cluster_call(rpc_client *c, const char *service, const char *method,
                      const ProtobufCMessage *req, unsigned flags, int deadline_ms,
                      const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **out, char *detail,
                      size_t detail_len);

#endif
