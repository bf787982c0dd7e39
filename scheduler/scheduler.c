// scheduler.c: the scheduler daemon object and the Cluster service handlers.
#include "scheduler/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.pb-c.h"
#include "common/cn_clock.h"
#include "common/cn_file.h"
#include "common/cn_log.h"
#include "scheduler/sched_data.h"
#include "scheduler/sched_http.h"
#include "scheduler/sched_kinds_impl.h"

static const sched_kind *const KINDS[] = {&sched_sweep_kind, &sched_train_kind};

struct sched {
    rpc_server *server;
    sched_members *members;
    sched_data *data;
    sched_jobs *jobs;
    sched_http *http;
    char http_addr[256];
    char token[256];
    uint64_t started_ms;
    char state_dir[1024];
};

static void h_register(rpc_call *call, void *arg)
{
    sched *s = arg;
    Canopy__Cluster__RegisterRequest *req = (Canopy__Cluster__RegisterRequest *)rpc_call_unpack(
        call, &canopy__cluster__register_request__descriptor);
    if (req == NULL)
        return;
    uint32_t rank = 0;
    cn_err e = sched_members_register(s->members, req->node_id, req->role, req->address, req->name,
                                      req->threads, &rank);
    if (e != CN_OK) {
        rpc_call_fail(call, rpc_code_from_err(e),
                      "Register: %s (node_id must be non-zero, role ps or worker)", cn_strerror(e));
    } else {
        Canopy__Cluster__RegisterReply rep = CANOPY__CLUSTER__REGISTER_REPLY__INIT;
        rep.rank = rank;
        rep.heartbeat_interval_ms = sched_members_heartbeat_ms(s->members);
        rep.heartbeat_timeout_ms = sched_members_dead_after_ms(s->members);
        rpc_call_reply(call, &rep.base, NULL, 0);
    }
    canopy__cluster__register_request__free_unpacked(req, NULL);
}

static void h_heartbeat(rpc_call *call, void *arg)
{
    sched *s = arg;
    Canopy__Cluster__HeartbeatRequest *req = (Canopy__Cluster__HeartbeatRequest *)rpc_call_unpack(
        call, &canopy__cluster__heartbeat_request__descriptor);
    if (req == NULL)
        return;
    Canopy__Cluster__HeartbeatReply rep = CANOPY__CLUSTER__HEARTBEAT_REPLY__INIT;
    rep.known = sched_members_heartbeat(s->members, req->node_id, req->status) == CN_OK;
    canopy__cluster__heartbeat_request__free_unpacked(req, NULL);
    rpc_call_reply(call, &rep.base, NULL, 0);
}

static void h_status(rpc_call *call, void *arg)
{
    sched *s = arg;
    cluster_node *nodes;
    size_t n;
    if (sched_members_snapshot(s->members, &nodes, &n) != CN_OK) {
        rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "Status: out of memory");
        return;
    }
    Canopy__Cluster__NodeInfo *infos = calloc(n + 1, sizeof *infos);
    Canopy__Cluster__NodeInfo **ptrs = calloc(n + 1, sizeof *ptrs);
    if (infos == NULL || ptrs == NULL) {
        free(infos);
        free(ptrs);
        free(nodes);
        rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "Status: out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        Canopy__Cluster__NodeInfo init = CANOPY__CLUSTER__NODE_INFO__INIT;
        infos[i] = init;
        infos[i].node_id = nodes[i].node_id;
        infos[i].role = (Canopy__Cluster__Role)nodes[i].role;
        infos[i].rank = nodes[i].rank;
        infos[i].address = nodes[i].address;
        infos[i].name = nodes[i].name;
        infos[i].state = (Canopy__Cluster__NodeState)nodes[i].state;
        infos[i].last_heartbeat_ms_ago = nodes[i].last_heartbeat_ms_ago;
        infos[i].status = nodes[i].status;
        infos[i].threads = nodes[i].threads;
        ptrs[i] = &infos[i];
    }
    // The scheduler lists itself first, so the table shows the whole cluster.
    Canopy__Cluster__NodeInfo self = CANOPY__CLUSTER__NODE_INFO__INIT;
    char url[256] = "";
    rpc_server_url(s->server, url, sizeof url);
    self.role = CANOPY__CLUSTER__ROLE__ROLE_SCHEDULER;
    self.address = url;
    self.name = (char *)"scheduler";
    self.state = CANOPY__CLUSTER__NODE_STATE__NODE_ALIVE;
    self.status = (char *)"serving";
    memmove(ptrs + 1, ptrs, n * sizeof *ptrs);
    ptrs[0] = &self;
    Canopy__Cluster__StatusReply rep = CANOPY__CLUSTER__STATUS_REPLY__INIT;
    rep.n_nodes = n + 1;
    rep.nodes = ptrs;
    rep.uptime_ms = cn_now_ms() - s->started_ms;
    rep.version = (char *)"canopy-0.1";
    rpc_call_reply(call, &rep.base, NULL, 0);
    free(ptrs);
    free(infos);
    free(nodes);
}

cn_err sched_open(sched **out, const sched_opts *o, char *err, size_t errlen)
{
    *out = NULL;
    sched *s = calloc(1, sizeof *s);
    if (s == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    s->started_ms = cn_now_ms();
    snprintf(s->http_addr, sizeof s->http_addr, "%s", o->http ? o->http : "");
    snprintf(s->token, sizeof s->token, "%s", o->token ? o->token : "");
    snprintf(s->state_dir, sizeof s->state_dir, "%s", o->state_dir ? o->state_dir : "state");
    cn_err e = cn_file_mkdirs(s->state_dir, err, errlen);
    if (e != CN_OK)
        goto fail;
    e = sched_members_new(&s->members, o->heartbeat_ms ? o->heartbeat_ms : 500,
                          o->dead_after_ms ? o->dead_after_ms : 3000);
    if (e != CN_OK) {
        cn_errf(err, errlen, e, "heartbeat interval must be > 0 and below the dead-after time");
        goto fail;
    }
    rpc_server_opts so = {.url = o->listen,
                          .token = o->token,
                          .max_msg_bytes = o->max_msg_bytes,
                          .handler_threads = o->handler_threads,
                          .tls = o->tls,
                          .on_refuse = cn_log_warn_line};
    if ((e = rpc_server_open(&s->server, &so, err, errlen)) != CN_OK)
        goto fail;
    // Register and Heartbeat only touch the membership table: inline, so
    // handlers that read large files or fsync cannot delay them (a live node
    // would look dead).
    if ((e = rpc_server_register(s->server, "Cluster", "Register", h_register, s,
                                 RPC_HANDLER_INLINE)) != CN_OK ||
        (e = rpc_server_register(s->server, "Cluster", "Heartbeat", h_heartbeat, s,
                                 RPC_HANDLER_INLINE)) != CN_OK ||
        (e = rpc_server_register(s->server, "Cluster", "Status", h_status, s, 0)) != CN_OK ||
        (e = cluster_serve_ping(s->server, CLUSTER_ROLE_SCHEDULER, "scheduler")) != CN_OK) {
        cn_errf(err, errlen, e, "cannot register the Cluster service: %s", cn_strerror(e));
        goto fail;
    }
    if ((e = sched_data_new(&s->data, s->server, s->state_dir, err, errlen)) != CN_OK)
        goto fail;
    sched_jobs_opts jo = {.state_dir = s->state_dir,
                          .members = s->members,
                          .token = o->token,
                          .tls = o->tls,
                          .reattach_grace_ms = o->reattach_grace_ms};
    if ((e = sched_jobs_new(&s->jobs, s->server, &jo, KINDS, sizeof KINDS / sizeof KINDS[0], err,
                            errlen)) != CN_OK)
        goto fail;
    *out = s;
    return CN_OK;
fail:
    sched_close(s);
    return e;
}

cn_err sched_url(const sched *s, char *buf, size_t n)
{
    return rpc_server_url(s->server, buf, n);
}
sched_members *sched_members_of(sched *s)
{
    return s->members;
}
rpc_server *sched_server_of(sched *s)
{
    return s->server;
}

void sched_http_url_of(const sched *s, char *buf, size_t n)
{
    if (s->http)
        sched_http_url(s->http, buf, n);
    else
        snprintf(buf, n, "%s", "");
}

cn_err sched_start(sched *s, char *err, size_t errlen)
{
    cn_err e = sched_jobs_start(s->jobs, err, errlen);
    if (e == CN_OK)
        e = rpc_server_start(s->server, err, errlen);
    if (e == CN_OK && s->http_addr[0]) {
        sched_http_opts ho = {.addr = s->http_addr,
                              .token = s->token,
                              .jobs = s->jobs,
                              .members = s->members,
                              .server = s->server};
        e = sched_http_open(&s->http, &ho, err, errlen);
    }
    return e;
}

void sched_close(sched *s)
{
    if (s == NULL)
        return;
    sched_http_close(s->http); // no page reads the kernel after this
    sched_jobs_stop(s->jobs);  // answer held long-polls before the server drains
    rpc_server_close(s->server, 2000);
    sched_jobs_free(s->jobs);
    sched_data_free(s->data);
    sched_members_free(s->members);
    memset(s->token, 0, sizeof s->token);
    free(s);
}
