// cmd_status.c: `canopy status`: the cluster as a table.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "common/cn_clock.h"
#include "cli/cli_common.h"
#include "proto/cluster_client.h"

int cmd_status(int argc, char **argv)
{
    cli_net net;
    cli_net_defaults(&net);
    bool ping = false, json = false;
    int64_t timeout_ms = 5000;
    cn_opt opts[] = {
        {"ping", CN_OPT_BOOL, &ping, "also call each node directly and show its round trip", 0, 0,
         NULL},
        {"json", CN_OPT_BOOL, &json, "print JSON instead of a table", 0, 0, NULL},
        {"timeout-ms", CN_OPT_INT, &timeout_ms, "how long to wait for the scheduler", 1, 600000,
         NULL},
        CLI_NET_OPTS(&net),
        CN_OPT_END,
    };
    cn_args args;
    bool done;
    int rc = cli_parse("status", "status [--scheduler URL] [--ping] [--json]", opts, argc, argv,
                       &args, &done);
    if (done)
        return rc;
    if (!cli_net_load(&net, "status"))
        return CLI_EXIT_USAGE;
    rpc_client *c = cli_open_scheduler(&net, "status");
    if (c == NULL)
        return CLI_EXIT_USAGE;
    cluster_node *nodes = NULL;
    size_t n = 0;
    uint64_t uptime = 0;
    char detail[RPC_DETAIL_LEN + 64];
    rpc_code code = rpc_wait_ready(c, "Cluster", "Ping", (int)timeout_ms);
    if (code == RPC_OK)
        code = cluster_status(c, &nodes, &n, &uptime, detail, sizeof detail);
    else
        snprintf(detail, sizeof detail, "%s", rpc_code_name(code));
    rpc_client_close(c);
    if (code != RPC_OK)
        return cli_rpc_fail(&net, "status", code, detail);
    double *rtt = calloc(n ? n : 1, sizeof *rtt);
    for (size_t i = 0; ping && rtt && i < n; i++) {
        rtt[i] = -1;
        if (!nodes[i].address[0] || nodes[i].state == CLUSTER_NODE_DEAD)
            continue;
        rpc_client *pc = NULL;
        char err[CN_ERRBUF_LEN];
        rpc_client_opts o = {.url = nodes[i].address, .token = net.token, .tls = cli_net_tls(&net)};
        if (rpc_client_open(&pc, &o, err, sizeof err) != CN_OK)
            continue;
        uint64_t t0 = cn_now_ns();
        if (cluster_ping(pc, 2000, NULL, 0) == RPC_OK)
            rtt[i] = (double)(cn_now_ns() - t0) / 1e6;
        rpc_client_close(pc);
    }
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "scheduler", net.scheduler);
        cJSON_AddNumberToObject(root, "uptime_ms", (double)uptime);
        cJSON *arr = cJSON_AddArrayToObject(root, "nodes");
        for (size_t i = 0; i < n; i++) {
            cJSON *o = cJSON_CreateObject();
            char id[17];
            snprintf(id, sizeof id, "%016" PRIx64, nodes[i].node_id);
            cJSON_AddStringToObject(o, "node_id", id);
            cJSON_AddStringToObject(o, "role", cluster_role_name(nodes[i].role));
            cJSON_AddNumberToObject(o, "rank", nodes[i].rank);
            cJSON_AddStringToObject(o, "address", nodes[i].address);
            cJSON_AddStringToObject(o, "name", nodes[i].name);
            cJSON_AddStringToObject(o, "state", cluster_state_name(nodes[i].state));
            cJSON_AddNumberToObject(o, "last_heartbeat_ms", (double)nodes[i].last_heartbeat_ms_ago);
            cJSON_AddNumberToObject(o, "threads", nodes[i].threads);
            cJSON_AddStringToObject(o, "status", nodes[i].status);
            if (ping && rtt)
                cJSON_AddNumberToObject(o, "ping_ms", rtt[i]);
            cJSON_AddItemToArray(arr, o);
        }
        char *text = cJSON_PrintUnformatted(root);
        printf("%s\n", text ? text : "{}");
        free(text);
        cJSON_Delete(root);
    } else {
        printf("scheduler %s, up %.1f s, %zu %s\n", net.scheduler, (double)uptime / 1000.0, n,
               cn_plural(n, "node", "nodes"));
        printf("%-16s %-9s %-4s %-28s %-8s %-10s %-7s %s\n", "NODE", "ROLE", "RANK", "ADDRESS",
               "STATE", "HEARTBEAT", "THREADS", ping ? "PING  STATUS" : "STATUS");
        for (size_t i = 0; i < n; i++) {
            char hb[32] = "-", pingtxt[32] = "";
            if (nodes[i].role != CLUSTER_ROLE_SCHEDULER)
                snprintf(hb, sizeof hb, "%.1fs ago",
                         (double)nodes[i].last_heartbeat_ms_ago / 1000.0);
            if (ping && rtt)
                snprintf(pingtxt, sizeof pingtxt, rtt[i] < 0 ? "unreachable " : "%.2fms ", rtt[i]);
            printf("%-16s %-9s %-4u %-28s %-8s %-10s %-7u %s%s\n", nodes[i].name,
                   cluster_role_name(nodes[i].role), nodes[i].rank, nodes[i].address,
                   cluster_state_name(nodes[i].state), hb, nodes[i].threads, pingtxt,
                   nodes[i].status);
        }
    }
    free(rtt);
    free(nodes);
    return CLI_EXIT_OK;
}
