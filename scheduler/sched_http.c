// sched_http.c: the dashboard's routes (sched_http.h). Each handler builds
// its reply from a snapshot taken under the owner's lock (membership table,
// job kernel) and from the job's files on disk, never holding a lock while
// it reads files or renders.
#include "scheduler/sched_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_clock.h"
#include "proto/cluster_client.h"
#include "proto/http_server.h"
#include "scheduler/sched_figures.h"
#include "scheduler/sched_http_assets.h"

struct sched_http {
    http_server *srv;
    sched_http_opts o;
    char url[300];
    uint64_t started_ms;
};

static void reply_json(http_reply *rep, cJSON *o)
{
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    if (text == NULL) {
        rep->status = 500;
        cn_buf_printf(&rep->body, "{\"error\":\"out of memory\"}\n");
    } else {
        cn_buf_printf(&rep->body, "%s\n", text);
    }
    free(text);
    cJSON_Delete(o);
}

static void reply_error(http_reply *rep, int status, const char *msg)
{
    rep->status = status;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    reply_json(rep, o);
}

static void h_page(const http_request *req, http_reply *rep, void *arg)
{
    (void)arg;
    static const char *const pages[] = {"cluster", "jobs", "sweep", "training", "federated"};
    const char *page = NULL;
    if (strcmp(req->path, "/") == 0)
        page = "jobs";
    for (size_t i = 0; i < sizeof pages / sizeof pages[0] && page == NULL; i++)
        if (strcmp(req->path + 1, pages[i]) == 0)
            page = pages[i];
    if (page == NULL) {
        rep->status = 404;
        snprintf(rep->content_type, sizeof rep->content_type, "text/plain; charset=utf-8");
        cn_buf_printf(&rep->body, "no page %s (try /jobs)\n", req->path);
        return;
    }
    snprintf(rep->content_type, sizeof rep->content_type, "text/html; charset=utf-8");
    // The shell names its page wherever it says {{page}}.
    const char *t = sched_asset_index_html;
    for (const char *m; (m = strstr(t, "{{page}}")) != NULL; t = m + 8) {
        cn_buf_append(&rep->body, t, (size_t)(m - t));
        cn_buf_printf(&rep->body, "%s", page);
    }
    cn_buf_printf(&rep->body, "%s", t);
}

static void h_asset(const http_request *req, http_reply *rep, void *arg)
{
    (void)arg;
    bool js = strcmp(req->path, "/app.js") == 0;
    snprintf(rep->content_type, sizeof rep->content_type, "%s",
             js ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8");
    cn_buf_printf(&rep->body, "%s", js ? sched_asset_app_js : sched_asset_app_css);
}

// rpc_calls_total sums the scheduler's answered calls from its metrics.
static double rpc_calls_total(rpc_server *srv)
{
    cn_buf m;
    cn_buf_init(&m);
    rpc_server_metrics(srv, &m);
    double total = 0;
    static const char key[] = "canopy_rpc_requests_total{";
    for (const char *p = m.data; p && (p = strstr(p, key)) != NULL; p++) {
        const char *sp = strchr(p, '}');
        if (sp)
            total += strtod(sp + 1, NULL);
    }
    cn_buf_fini(&m);
    return total;
}

static void h_nodes(const http_request *req, http_reply *rep, void *arg)
{
    (void)req;
    sched_http *h = arg;
    cluster_node *nodes;
    size_t n;
    if (sched_members_snapshot(h->o.members, &nodes, &n) != CN_OK) {
        reply_error(rep, 500, "out of memory");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *s = cJSON_AddObjectToObject(o, "scheduler");
    char url[256] = "";
    rpc_server_url(h->o.server, url, sizeof url);
    cJSON_AddStringToObject(s, "address", url);
    cJSON_AddNumberToObject(s, "uptime_seconds", (double)(cn_now_ms() - h->started_ms) / 1000);
    cJSON_AddNumberToObject(s, "rpc_calls_total", rpc_calls_total(h->o.server));
    cJSON *arr = cJSON_AddArrayToObject(o, "nodes");
    for (size_t i = 0; i < n; i++) {
        const cluster_node *c = &nodes[i];
        cJSON *e = cJSON_CreateObject();
        char id[24];
        snprintf(id, sizeof id, "%016llx", (unsigned long long)c->node_id);
        cJSON_AddStringToObject(e, "node_id", id);
        cJSON_AddStringToObject(e, "name", c->name);
        cJSON_AddStringToObject(e, "role", cluster_role_name(c->role));
        cJSON_AddNumberToObject(e, "rank", c->rank);
        cJSON_AddStringToObject(e, "state", cluster_state_name(c->state));
        cJSON_AddNumberToObject(e, "last_heartbeat_ms_ago", (double)c->last_heartbeat_ms_ago);
        cJSON_AddStringToObject(e, "address", c->address);
        cJSON_AddStringToObject(e, "status", c->status);
        cJSON_AddNumberToObject(e, "threads", c->threads);
        cJSON_AddNumberToObject(e, "slots_in_use",
                                c->role == CLUSTER_ROLE_WORKER
                                    ? (double)sched_jobs_leases_of(h->o.jobs, c->node_id)
                                    : 0);
        cJSON_AddItemToArray(arr, e);
    }
    free(nodes);
    reply_json(rep, o);
}

// job_results loads the files of the job whose status is st; a running
// sweep's trials come from the status (its trials.csv is written at the end).
static sched_results *job_results(const cJSON *st)
{
    const char *dir = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "results_dir"));
    sched_results *r = NULL;
    char err[256];
    if (dir == NULL || sched_results_load(dir, &r, err, sizeof err) != CN_OK)
        return NULL;
    const cJSON *trials = cJSON_GetObjectItemCaseSensitive(st, "trials");
    if (r->kind == FIG_SWEEP && cJSON_IsArray(trials))
        sched_results_set_trials(r, cJSON_Duplicate(trials, true));
    return r;
}

static void add_figures(cJSON *st, const sched_results *r)
{
    cJSON *figs = cJSON_AddArrayToObject(st, "figures");
    const char *mode = r->kind == FIG_SWEEP   ? "sweep"
                       : r->kind == FIG_TRAIN ? "train"
                                              : "federated";
    cJSON_AddStringToObject(st, "view", mode);
    cJSON *params = sched_fig_params(r);
    const cJSON *p;
    cJSON_ArrayForEach(p, params)
    {
        char name[200];
        snprintf(name, sizeof name, "score-%s", p->valuestring);
        cJSON_AddItemToArray(figs, cJSON_CreateString(name));
    }
    cJSON_Delete(params);
    for (const char *const *f = sched_fig_names(r->kind); *f; f++)
        cJSON_AddItemToArray(figs, cJSON_CreateString(*f));
}

static void h_jobs(const http_request *req, http_reply *rep, void *arg)
{
    sched_http *h = arg;
    if (strcmp(req->path, "/api/jobs") == 0 || strcmp(req->path, "/api/jobs/") == 0) {
        reply_json(rep, sched_jobs_status_json(h->o.jobs, NULL));
        return;
    }
    // /api/jobs/ID[/records/TYPE | /FIGURE.svg]
    char id[256], rest[256] = "";
    const char *p = req->path + strlen("/api/jobs/");
    size_t l = strcspn(p, "/");
    if (l == 0 || l >= sizeof id ||
        strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                  "0123456789._-") < l) {
        reply_error(rep, 400, "a job id is made of letters, digits, '.', '_' and '-'");
        return;
    }
    memcpy(id, p, l);
    id[l] = 0;
    if (p[l] == '/')
        snprintf(rest, sizeof rest, "%s", p + l + 1);
    cJSON *st = sched_jobs_status_json(h->o.jobs, id);
    if (st == NULL) {
        reply_error(rep, 404, "no such job on this scheduler (GET /api/jobs lists them)");
        return;
    }
    sched_results *r = job_results(st);
    if (!rest[0]) {
        if (r)
            add_figures(st, r);
        sched_results_free(r);
        reply_json(rep, st);
        return;
    }
    cJSON_Delete(st);
    if (r == NULL) {
        reply_error(rep, 404, "the job has no result files yet");
        return;
    }
    size_t rl = strlen(rest);
    if (strncmp(rest, "records/", 8) == 0) {
        const char *type = rest + 8;
        bool folds = strcmp(type, "fold") == 0;
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < r->n_recs; i++) {
            const char *t =
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r->recs[i], "type"));
            if (folds ? t == NULL : t && strcmp(t, type) == 0)
                cJSON_AddItemToArray(arr, cJSON_Duplicate(r->recs[i], true));
        }
        reply_json(rep, arr);
    } else if (rl > 4 && strcmp(rest + rl - 4, ".svg") == 0) {
        rest[rl - 4] = 0;
        const sched_results *one = r;
        snprintf(rep->content_type, sizeof rep->content_type, "image/svg+xml");
        cn_err e = sched_fig_render(&one, 1, rest, &rep->body);
        if (e != CN_OK) {
            cn_buf_reset(&rep->body);
            snprintf(rep->content_type, sizeof rep->content_type, "application/json");
            reply_error(rep, e == CN_ENOTFOUND ? 404 : 500,
                        e == CN_ENOTFOUND ? "no such figure for this job (see its \"figures\")"
                                          : cn_strerror(e));
        }
    } else {
        reply_error(rep, 404, "unknown job resource (records/TYPE or FIGURE.svg)");
    }
    sched_results_free(r);
}

static void h_metrics(const http_request *req, http_reply *rep, void *arg)
{
    (void)req;
    sched_http *h = arg;
    snprintf(rep->content_type, sizeof rep->content_type, "text/plain; version=0.0.4");
    rpc_server_metrics(h->o.server, &rep->body);
    cluster_node *nodes;
    size_t n;
    if (sched_members_snapshot(h->o.members, &nodes, &n) == CN_OK) {
        cn_buf_printf(&rep->body, "# HELP canopy_nodes Registered nodes by role and state.\n"
                                  "# TYPE canopy_nodes gauge\n");
        static const int roles[] = {CLUSTER_ROLE_PS, CLUSTER_ROLE_WORKER};
        for (size_t r = 0; r < 2; r++)
            for (int s = CLUSTER_NODE_ALIVE; s <= CLUSTER_NODE_DEAD; s++) {
                size_t c = 0;
                for (size_t i = 0; i < n; i++)
                    c += nodes[i].role == roles[r] && nodes[i].state == s;
                cn_buf_printf(&rep->body, "canopy_nodes{role=\"%s\",state=\"%s\"} %zu\n",
                              cluster_role_name(roles[r]), cluster_state_name(s), c);
            }
        free(nodes);
    }
    cJSON *jobs = sched_jobs_status_json(h->o.jobs, NULL);
    static const char *const states[] = {"queued", "running", "done", "failed", "cancelled"};
    static const char *const kinds[] = {"sweep", "train"};
    cn_buf_printf(&rep->body, "# HELP canopy_jobs Jobs by kind and state.\n"
                              "# TYPE canopy_jobs gauge\n");
    for (size_t k = 0; k < 2; k++)
        for (size_t s = 0; s < 5; s++) {
            size_t c = 0;
            const cJSON *j;
            cJSON_ArrayForEach(j, jobs)
            {
                const char *jk = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "kind"));
                const char *js = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "state"));
                c += jk && js && strcmp(jk, kinds[k]) == 0 && strcmp(js, states[s]) == 0;
            }
            cn_buf_printf(&rep->body, "canopy_jobs{kind=\"%s\",state=\"%s\"} %zu\n", kinds[k],
                          states[s], c);
        }
    cn_buf_printf(&rep->body, "# HELP canopy_job_progress Fraction of a job done (0..1).\n"
                              "# TYPE canopy_job_progress gauge\n");
    const cJSON *j;
    cJSON_ArrayForEach(j, jobs)
    {
        cn_buf_printf(&rep->body, "canopy_job_progress{job=\"%s\",kind=\"%s\"} %g\n",
                      cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "job_id")),
                      cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "kind")),
                      cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "progress")));
    }
    cn_buf_printf(&rep->body, "# HELP canopy_job_items Work items of a job by state.\n"
                              "# TYPE canopy_job_items gauge\n");
    cJSON_ArrayForEach(j, jobs)
    {
        static const char *const is[] = {"pending", "leased", "done", "failed"};
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, "items");
        for (size_t s = 0; s < 4; s++)
            cn_buf_printf(&rep->body, "canopy_job_items{job=\"%s\",state=\"%s\"} %g\n",
                          cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "job_id")),
                          is[s], cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, is[s])));
    }
    cJSON_Delete(jobs);
}

cn_err sched_http_open(sched_http **out, const sched_http_opts *o, char *err, size_t errlen)
{
    *out = NULL;
    sched_http *h = calloc(1, sizeof *h);
    if (h == NULL)
        return CN_ENOMEM;
    h->o = *o;
    h->started_ms = cn_now_ms();
    http_server_opts so = {.addr = o->addr, .token = o->token};
    cn_err e = http_server_open(&h->srv, &so, err, errlen);
    if (e != CN_OK) {
        free(h);
        return e;
    }
    static const char *const pages[] = {"/",      "/cluster",  "/jobs",
                                        "/sweep", "/training", "/federated"};
    for (size_t i = 0; i < sizeof pages / sizeof pages[0] && e == CN_OK; i++)
        e = http_server_route(h->srv, pages[i], false, h_page, h);
    if (e == CN_OK)
        e = http_server_route(h->srv, "/app.js", false, h_asset, h);
    if (e == CN_OK)
        e = http_server_route(h->srv, "/app.css", false, h_asset, h);
    if (e == CN_OK)
        e = http_server_route(h->srv, "/api/nodes", false, h_nodes, h);
    if (e == CN_OK)
        e = http_server_route(h->srv, "/api/jobs", true, h_jobs, h);
    if (e == CN_OK)
        e = http_server_route(h->srv, "/metrics", false, h_metrics, h);
    if (e != CN_OK)
        cn_errf(err, errlen, e, "cannot route the dashboard: %s", cn_strerror(e));
    else
        e = http_server_start(h->srv, err, errlen);
    if (e != CN_OK) {
        sched_http_close(h);
        return e;
    }
    http_server_url(h->srv, h->url, sizeof h->url);
    *out = h;
    return CN_OK;
}

void sched_http_url(const sched_http *h, char *buf, size_t n)
{
    snprintf(buf, n, "%s", h->url);
}

void sched_http_close(sched_http *h)
{
    if (h == NULL)
        return;
    http_server_close(h->srv);
    free(h);
}
