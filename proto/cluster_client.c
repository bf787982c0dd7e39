// cluster_client.c: registration, heartbeats, status and ping (see
// cluster_client.h).
#include "proto/cluster_client.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cluster.pb-c.h"
#include "common/cn_clock.h"

const char *cluster_role_name(int role)
{
    switch (role) {
    case CLUSTER_ROLE_SCHEDULER:
        return "scheduler";
    case CLUSTER_ROLE_PS:
        return "ps";
    case CLUSTER_ROLE_WORKER:
        return "worker";
    default:
        return "?";
    }
}

const char *cluster_state_name(int state)
{
    switch (state) {
    case CLUSTER_NODE_ALIVE:
        return "alive";
    case CLUSTER_NODE_SUSPECT:
        return "suspect";
    case CLUSTER_NODE_DEAD:
        return "dead";
    default:
        return "?";
    }
}

uint64_t cluster_new_node_id(void)
{
    uint64_t id = 0;
    while (id == 0) {
        if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id)
            id = cn_now_ns() ^ ((uint64_t)getpid() << 32);
    }
    return id;
}

rpc_code cluster_call(rpc_client *c, const char *service, const char *method,
                      const ProtobufCMessage *req, unsigned flags, int deadline_ms,
                      const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **out, char *detail,
                      size_t detail_len)
{
    if (out)
        *out = NULL;
    rpc_request r = {.service = service,
                     .method = method,
                     .body = req,
                     .deadline_ms = deadline_ms,
                     .flags = flags};
    rpc_reply rep;
    memset(&rep, 0, sizeof rep);
    rpc_code code = rpc_client_call(c, &r, &rep);
    if (code != RPC_OK) {
        if (detail && detail_len)
            snprintf(detail, detail_len, "%s/%s: %s: %s", service, method, rpc_code_name(code),
                     rep.detail);
    } else if (out && rdesc) {
        *out = rpc_reply_unpack(&rep, rdesc);
        if (*out == NULL) {
            code = RPC_INTERNAL;
            if (detail && detail_len)
                snprintf(detail, detail_len, "%s/%s: malformed reply body", service, method);
        }
    }
    rpc_reply_fini(&rep);
    return code;
}

// ------------------------------------------------------------------ agent

struct cluster_agent {
    rpc_client *client;
    cluster_agent_opts opts;
    char address[256], name[256];
    uint32_t rank;
    uint32_t interval_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    char status[128];
};

static rpc_code do_register(cluster_agent *a, int deadline_ms, char *detail, size_t n)
{
    Canopy__Cluster__RegisterRequest req = CANOPY__CLUSTER__REGISTER_REQUEST__INIT;
    req.role = (Canopy__Cluster__Role)a->opts.role;
    req.address = a->address;
    req.name = a->name;
    req.threads = a->opts.threads;
    req.node_id = a->opts.node_id;
    req.version = (char *)"canopy-0.1";
    ProtobufCMessage *out = NULL;
    rpc_code code =
        cluster_call(a->client, "Cluster", "Register", &req.base, RPC_IDEMPOTENT, deadline_ms,
                     &canopy__cluster__register_reply__descriptor, &out, detail, n);
    if (code == RPC_OK) {
        Canopy__Cluster__RegisterReply *rep = (Canopy__Cluster__RegisterReply *)out;
        a->rank = rep->rank;
        a->interval_ms = rep->heartbeat_interval_ms ? rep->heartbeat_interval_ms : 500;
        protobuf_c_message_free_unpacked(out, NULL);
    }
    return code;
}

static void *agent_main(void *arg)
{
    cluster_agent *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stopping) {
        // Monotonic: a step of the wall clock must not delay a heartbeat.
        cn_cond_wait_ms(&a->cv, &a->mu, a->interval_ms);
        if (a->stopping)
            break;
        Canopy__Cluster__HeartbeatRequest req = CANOPY__CLUSTER__HEARTBEAT_REQUEST__INIT;
        char status[128];
        memcpy(status, a->status, sizeof status);
        pthread_mutex_unlock(&a->mu);
        req.node_id = a->opts.node_id;
        req.status = status;
        ProtobufCMessage *out = NULL;
        rpc_code code =
            cluster_call(a->client, "Cluster", "Heartbeat", &req.base, 0, (int)a->interval_ms * 2,
                         &canopy__cluster__heartbeat_reply__descriptor, &out, NULL, 0);
        if (code == RPC_OK) {
            int known = ((Canopy__Cluster__HeartbeatReply *)out)->known;
            protobuf_c_message_free_unpacked(out, NULL);
            if (!known) // the scheduler restarted and forgot us
                do_register(a, (int)a->interval_ms * 2, NULL, 0);
        }
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

cn_err cluster_agent_start(cluster_agent **out, const cluster_agent_opts *opts,
                           int register_timeout_ms, char *err, size_t errlen)
{
    *out = NULL;
    cluster_agent *a = calloc(1, sizeof *a);
    if (a == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    a->opts = *opts;
    if (a->opts.node_id == 0)
        a->opts.node_id = cluster_new_node_id();
    snprintf(a->address, sizeof a->address, "%s", opts->address ? opts->address : "");
    snprintf(a->name, sizeof a->name, "%s", opts->name ? opts->name : "");
    snprintf(a->status, sizeof a->status, "idle");
    a->interval_ms = 500;
    pthread_mutex_init(&a->mu, NULL);
    cn_cond_init_mono(&a->cv);
    rpc_client_opts co = {.url = opts->scheduler_url,
                          .token = opts->token,
                          .node_id = a->opts.node_id,
                          .tls = opts->tls};
    cn_err e = rpc_client_open(&a->client, &co, err, errlen);
    if (e != CN_OK) {
        free(a);
        return e;
    }
    char detail[RPC_DETAIL_LEN + 64] = "";
    uint64_t start = cn_now_ms();
    rpc_code code;
    for (;;) {
        int left = register_timeout_ms - (int)(cn_now_ms() - start);
        code = do_register(a, left > 2000 ? 2000 : (left > 50 ? left : 50), detail, sizeof detail);
        if (code == RPC_OK || code == RPC_UNAUTHENTICATED || code == RPC_INVALID_ARGUMENT ||
            cn_now_ms() - start >= (uint64_t)register_timeout_ms)
            break;
        cn_sleep_ms(50);
    }
    if (code != RPC_OK) {
        rpc_client_close(a->client);
        free(a);
        if (code == RPC_UNAUTHENTICATED)
            return cn_errf(err, errlen, CN_EAUTH,
                           "scheduler at %s refused the cluster token (%s); give the same token "
                           "to every node (--token-file or CANOPY_TOKEN)",
                           opts->scheduler_url, detail);
        return cn_errf(err, errlen, CN_EUNAVAIL,
                       "cannot register with the scheduler at %s within %d ms (%s); is it "
                       "running and reachable?",
                       opts->scheduler_url, register_timeout_ms, detail);
    }
    if (pthread_create(&a->thread, NULL, agent_main, a) != 0) {
        rpc_client_close(a->client);
        free(a);
        return cn_errf(err, errlen, CN_ENOMEM, "cannot start the heartbeat thread");
    }
    *out = a;
    return CN_OK;
}

uint32_t cluster_agent_rank(const cluster_agent *a)
{
    return a->rank;
}
uint64_t cluster_agent_node_id(const cluster_agent *a)
{
    return a->opts.node_id;
}

void cluster_agent_set_status(cluster_agent *a, const char *status)
{
    pthread_mutex_lock(&a->mu);
    snprintf(a->status, sizeof a->status, "%s", status);
    pthread_mutex_unlock(&a->mu);
}

void cluster_agent_stop(cluster_agent *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    a->stopping = 1;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    rpc_client_close(a->client);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

// ------------------------------------------------------------------ status

static int node_cmp(const void *x, const void *y)
{
    const cluster_node *a = x, *b = y;
    if (a->role != b->role)
        return a->role - b->role;
    if (a->rank != b->rank)
        return a->rank < b->rank ? -1 : 1;
    return a->state - b->state;
}

rpc_code cluster_status(rpc_client *c, cluster_node **nodes, size_t *n, uint64_t *uptime_ms,
                        char *detail, size_t detail_len)
{
    *nodes = NULL;
    *n = 0;
    Canopy__Cluster__Empty req = CANOPY__CLUSTER__EMPTY__INIT;
    ProtobufCMessage *out = NULL;
    rpc_code code =
        cluster_call(c, "Cluster", "Status", &req.base, RPC_IDEMPOTENT, 0,
                     &canopy__cluster__status_reply__descriptor, &out, detail, detail_len);
    if (code != RPC_OK)
        return code;
    Canopy__Cluster__StatusReply *rep = (Canopy__Cluster__StatusReply *)out;
    cluster_node *v = calloc(rep->n_nodes ? rep->n_nodes : 1, sizeof *v);
    if (v == NULL) {
        protobuf_c_message_free_unpacked(out, NULL);
        return RPC_RESOURCE_EXHAUSTED;
    }
    for (size_t i = 0; i < rep->n_nodes; i++) {
        Canopy__Cluster__NodeInfo *ni = rep->nodes[i];
        v[i].node_id = ni->node_id;
        v[i].role = ni->role;
        v[i].rank = ni->rank;
        snprintf(v[i].address, sizeof v[i].address, "%s", ni->address);
        snprintf(v[i].name, sizeof v[i].name, "%s", ni->name);
        v[i].state = ni->state;
        v[i].last_heartbeat_ms_ago = ni->last_heartbeat_ms_ago;
        snprintf(v[i].status, sizeof v[i].status, "%s", ni->status);
        v[i].threads = ni->threads;
    }
    qsort(v, rep->n_nodes, sizeof *v, node_cmp);
    *nodes = v;
    *n = rep->n_nodes;
    if (uptime_ms)
        *uptime_ms = rep->uptime_ms;
    protobuf_c_message_free_unpacked(out, NULL);
    return RPC_OK;
}

rpc_code cluster_ping(rpc_client *c, int deadline_ms, char *detail, size_t detail_len)
{
    Canopy__Cluster__Empty req = CANOPY__CLUSTER__EMPTY__INIT;
    return cluster_call(c, "Cluster", "Ping", &req.base, RPC_IDEMPOTENT, deadline_ms, NULL, NULL,
                        detail, detail_len);
}

typedef struct ping_info {
    cluster_role role;
    char name[128];
    rpc_server *server;
} ping_info;

static void handle_ping(rpc_call *call, void *arg)
{
    ping_info *pi = arg;
    Canopy__Cluster__NodeInfo rep = CANOPY__CLUSTER__NODE_INFO__INIT;
    rep.role = (Canopy__Cluster__Role)pi->role;
    rep.name = pi->name;
    rep.state = CANOPY__CLUSTER__NODE_STATE__NODE_ALIVE;
    rpc_call_reply(call, &rep.base, NULL, 0);
}

// handle_metrics replies with the server's metrics (Prometheus text) as the
// payload.
static void handle_metrics(rpc_call *call, void *arg)
{
    ping_info *pi = arg;
    cn_buf b;
    cn_buf_init(&b);
    if (rpc_server_metrics(pi->server, &b) != CN_OK)
        rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "Metrics: out of memory");
    else
        rpc_call_reply(call, NULL, b.data, b.len);
    cn_buf_fini(&b);
}

rpc_code cluster_metrics(rpc_client *c, cn_buf *out, char *detail, size_t detail_len)
{
    Canopy__Cluster__Empty req = CANOPY__CLUSTER__EMPTY__INIT;
    rpc_request r = {.service = "Cluster",
                     .method = "Metrics",
                     .body = &req.base,
                     .deadline_ms = 5000,
                     .flags = RPC_IDEMPOTENT};
    rpc_reply rep;
    rpc_code code = rpc_client_call(c, &r, &rep);
    if (code == RPC_OK)
        cn_buf_append(out, rep.payload, rep.payload_len);
    else
        snprintf(detail, detail_len, "%s", rep.detail);
    rpc_reply_fini(&rep);
    return code;
}

cn_err cluster_serve_ping(rpc_server *s, cluster_role role, const char *name)
{
    // Lives as long as the process: servers are closed at exit and the info
    // is a few bytes, so it is intentionally not tracked for freeing.
    static ping_info infos[8];
    static int ninfo;
    if (ninfo >= 8)
        return CN_ERANGE;
    ping_info *pi = &infos[ninfo++];
    pi->role = role;
    pi->server = s;
    snprintf(pi->name, sizeof pi->name, "%s", name ? name : "");
    cn_err e = rpc_server_register(s, "Cluster", "Ping", handle_ping, pi, RPC_HANDLER_INLINE);
    return e == CN_OK ? rpc_server_register(s, "Cluster", "Metrics", handle_metrics, pi, 0) : e;
}
