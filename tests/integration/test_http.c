// test_http.c: the scheduler's dashboard over real HTTP on loopback: a
// cluster runs a short sweep, then the JSON API, a figure and /metrics (the
// scheduler's and a worker's --metrics) are fetched and parsed; the pages
// carry the security headers and nothing answers a write. Bound beyond
// loopback, the token is required (bearer or login cookie), refused when
// wrong, and never echoed in a reply or a log.
#include <arpa/inet.h>
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/support.h"

#define TOKEN "http-secret-7f3a9c"

static char dir[256], url[64], log_path[512], state[300], spec[300], http_addr[64];
static char metrics_addr[64];
static int http_port, metrics_port;

typedef struct reply {
    int status;
    char *head; // status line and headers
    char *body;
} reply;

static void reply_free(reply *r)
{
    free(r->head);
    free(r->body);
}

// http does one request on a fresh connection to 127.0.0.1:port.
static reply http(int port, const char *method, const char *path, const char *headers,
                  const char *body)
{
    reply r = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[4096];
    int n =
        snprintf(req, sizeof req,
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                 "Content-Length: %zu\r\n\r\n%s",
                 method, path, headers ? headers : "", body ? strlen(body) : 0, body ? body : "");
    ck_assert_int_eq(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (ssize_t got; (got = read(fd, buf + len, cap - len - 1)) > 0;) {
        len += (size_t)got;
        if (cap - len < 1024)
            buf = realloc(buf, cap *= 2);
    }
    close(fd);
    buf[len] = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    ck_assert_msg(sep != NULL, "no HTTP reply: %s", buf);
    *sep = 0;
    r.head = strdup(buf);
    r.body = strdup(sep + 4);
    free(buf);
    ck_assert_int_eq(sscanf(r.head, "HTTP/1.1 %d", &r.status), 1);
    return r;
}

static reply get(int port, const char *path, const char *headers)
{
    return http(port, "GET", path, headers, NULL);
}

static cJSON *get_json(const char *path)
{
    reply r = get(http_port, path, NULL);
    ck_assert_msg(r.status == 200, "%s: %d %s", path, r.status, r.body);
    ck_assert_ptr_nonnull(strstr(r.head, "Content-Type: application/json"));
    cJSON *o = cJSON_Parse(r.body);
    ck_assert_msg(o != NULL, "%s: not JSON: %s", path, r.body);
    reply_free(&r);
    return o;
}

static void setup(void)
{
    ts_tmpdir(dir, sizeof dir);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ts_free_port());
    do {
        http_port = ts_free_port();
        metrics_port = ts_free_port();
    } while (http_port == metrics_port);
    snprintf(http_addr, sizeof http_addr, "127.0.0.1:%d", http_port);
    snprintf(metrics_addr, sizeof metrics_addr, "127.0.0.1:%d", metrics_port);
    snprintf(log_path, sizeof log_path, "%s/cluster.log", dir);
    snprintf(state, sizeof state, "%s/state", dir);
    snprintf(spec, sizeof spec, "%s/sweep.json", dir);
    char data[512], text[1024];
    ts_source_path("data/covertype-kaggle-train.csv.gz", data, sizeof data);
    snprintf(text, sizeof text,
             "{\"name\": \"http\", \"data\": {\"path\": \"%s\"}, \"cv\": {\"folds\": 2, "
             "\"seed\": 1}, \"fixed\": {\"n_estimators\": 4}, \"space\": {\"max_features\": "
             "{\"choice\": [\"sqrt\", 0.5]}}, \"search\": {\"algorithm\": \"grid\"}}",
             data);
    ts_write_file(spec, text);
    setenv("CANOPY_TOKEN", TOKEN, 1);
}

static void teardown(void)
{
    ts_reap_all();
    ts_rmtree(dir);
}

// scheduler_argv fills argv (10 entries) with a scheduler serving the
// dashboard on addr.
static void scheduler_argv(char **argv, const char *addr, bool insecure)
{
    char *v[] = {(char *)ts_canopy_bin(),
                 "scheduler",
                 "--listen",
                 url,
                 "--state-dir",
                 state,
                 "--http",
                 (char *)addr,
                 insecure ? "--insecure" : NULL,
                 NULL};
    memcpy(argv, v, sizeof v);
}

static pid_t start_scheduler(const char *addr, bool insecure)
{
    char *argv[10];
    scheduler_argv(argv, addr, insecure);
    return ts_spawn(argv, log_path);
}

static bool dashboard_up(void *arg)
{
    (void)arg;
    return ts_file_contains(log_path, "dashboard on http://");
}

static int run(char **argv)
{
    char out[400];
    snprintf(out, sizeof out, "%s/cmd.out", dir);
    pid_t pid = ts_spawn(argv, out);
    int st = 0;
    ck_assert(ts_wait_exit(pid, 120000, &st));
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// check_exposition parses Prometheus text: every sample's family was
// declared by a # TYPE line before it, labels are well-formed and the value
// is a number. Returns the number of samples.
static size_t check_exposition(const char *text)
{
    char families[256][128];
    size_t nf = 0, samples = 0;
    char *copy = strdup(text), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[128], type[32];
            ck_assert_int_eq(sscanf(line + 7, "%127s %31s", name, type), 2);
            ck_assert_msg(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                              strcmp(type, "histogram") == 0,
                          "bad type: %s", line);
            ck_assert_uint_lt(nf, 256);
            snprintf(families[nf++], sizeof families[0], "%s", name);
            continue;
        }
        if (line[0] == '#')
            continue;
        size_t nl = strcspn(line, "{ ");
        bool declared = false;
        for (size_t i = 0; i < nf; i++) {
            size_t fl = strlen(families[i]);
            declared |= strncmp(line, families[i], fl) == 0 &&
                        (nl == fl || (nl > fl && line[fl] == '_' &&
                                      (strncmp(line + fl, "_bucket", 7) == 0 ||
                                       strncmp(line + fl, "_sum", 4) == 0 ||
                                       strncmp(line + fl, "_count", 6) == 0)));
        }
        ck_assert_msg(declared, "sample of an undeclared family: %s", line);
        const char *v = line + nl;
        if (*v == '{') {
            v = strchr(v, '}');
            ck_assert_msg(v != NULL, "unclosed labels: %s", line);
            v++;
        }
        ck_assert_msg(*v == ' ', "no value: %s", line);
        char *end;
        double x = strtod(v + 1, &end);
        ck_assert_msg(end != v + 1 && *end == 0 && !isnan(x), "bad value: %s", line);
        samples++;
    }
    free(copy);
    return samples;
}

START_TEST(test_http_api_figures_and_metrics_of_a_finished_sweep)
{
    start_scheduler(http_addr, false);
    ck_assert_msg(ts_wait_until(dashboard_up, NULL, 20000), "no dashboard (see %s)", log_path);
    char cache[400];
    snprintf(cache, sizeof cache, "%s/cache", dir);
    char *wargv[] = {(char *)ts_canopy_bin(),
                     "worker",
                     "--scheduler",
                     url,
                     "--name",
                     "w-0",
                     "--threads",
                     "1",
                     "--cache-dir",
                     cache,
                     "--metrics",
                     metrics_addr,
                     NULL};
    ts_spawn(wargv, log_path);
    char *targv[] = {(char *)ts_canopy_bin(), "tune", spec, "--scheduler", url, NULL};
    ck_assert_int_eq(run(targv), 0);
    char *sargv[] = {(char *)ts_canopy_bin(), "status", "--ping", "--scheduler", url, NULL};
    ck_assert_int_eq(run(sargv), 0);

    cJSON *nodes = get_json("/api/nodes");
    const cJSON *arr = cJSON_GetObjectItem(nodes, "nodes");
    ck_assert_int_eq(cJSON_GetArraySize(arr), 1);
    const cJSON *w = cJSON_GetArrayItem(arr, 0);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(w, "name")), "w-0");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(w, "role")), "worker");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(w, "state")), "alive");
    ck_assert_double_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(w, "slots_in_use")), 0);
    ck_assert_double_gt(cJSON_GetNumberValue(cJSON_GetObjectItem(
                            cJSON_GetObjectItem(nodes, "scheduler"), "rpc_calls_total")),
                        0);
    cJSON_Delete(nodes);

    cJSON *jobs = get_json("/api/jobs");
    ck_assert_int_eq(cJSON_GetArraySize(jobs), 1);
    const cJSON *j = cJSON_GetArrayItem(jobs, 0);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(j, "state")), "done");
    char id[256], path[512];
    snprintf(id, sizeof id, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(j, "job_id")));
    cJSON_Delete(jobs);

    snprintf(path, sizeof path, "/api/jobs/%s", id);
    cJSON *one = get_json(path);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(one, "view")), "sweep");
    char *figs = cJSON_PrintUnformatted(cJSON_GetObjectItem(one, "figures"));
    ck_assert_str_eq(figs, "[\"score-max_features\",\"timeline\"]");
    free(figs);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(one, "trials")), 3);
    cJSON_Delete(one);

    snprintf(path, sizeof path, "/api/jobs/%s/records/fold", id);
    cJSON *folds = get_json(path);
    ck_assert_int_eq(cJSON_GetArraySize(folds), 3 * 2); // trials x folds
    cJSON_Delete(folds);

    snprintf(path, sizeof path, "/api/jobs/%s/timeline.svg", id);
    reply r = get(http_port, path, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.head, "Content-Type: image/svg+xml"));
    char svg[400];
    snprintf(svg, sizeof svg, "%s/timeline.svg", dir);
    ts_write_file(svg, r.body);
    ck_assert(ts_xml_parses(svg));
    ck_assert_ptr_nonnull(strstr(r.body, "data-points=\"12\"")); // 6 units x 2 ends
    reply_free(&r);

    snprintf(path, sizeof path, "/api/jobs/%s/nosuch.svg", id);
    r = get(http_port, path, NULL);
    ck_assert_int_eq(r.status, 404);
    reply_free(&r);
    r = get(http_port, "/api/jobs/no-such-job", NULL);
    ck_assert_int_eq(r.status, 404);
    ck_assert_ptr_nonnull(strstr(r.body, "no such job"));
    reply_free(&r);
    r = get(http_port, "/api/jobs/a%2F..%2Fb", NULL);
    ck_assert_int_eq(r.status, 400);
    reply_free(&r);

    // Pages: the shell, the script and the style sheet, all from the binary,
    // with the security headers; nothing accepts a write.
    r = get(http_port, "/cluster", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "data-page=\"cluster\""));
    ck_assert_ptr_nonnull(strstr(r.body, "<script src=\"/app.js\""));
    ck_assert_ptr_nonnull(strstr(r.head, "Content-Security-Policy: default-src 'none'; "
                                         "script-src 'self';"));
    ck_assert_ptr_nonnull(strstr(r.head, "frame-ancestors 'none'"));
    ck_assert_ptr_nonnull(strstr(r.head, "X-Frame-Options: DENY"));
    ck_assert_ptr_nonnull(strstr(r.head, "X-Content-Type-Options: nosniff"));
    reply_free(&r);
    r = get(http_port, "/app.js", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "/api/nodes"));
    reply_free(&r);
    r = http(http_port, "POST", "/api/jobs", NULL, "{}");
    ck_assert_int_eq(r.status, 405);
    reply_free(&r);
    r = http(http_port, "DELETE", "/api/jobs/x", NULL, NULL);
    ck_assert_int_eq(r.status, 405);
    reply_free(&r);

    // /metrics: the scheduler's RPC counters and the job and node gauges.
    r = get(http_port, "/metrics", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_gt(check_exposition(r.body), 20);
    ck_assert_ptr_nonnull(strstr(r.body, "canopy_jobs{kind=\"sweep\",state=\"done\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "canopy_nodes{role=\"worker\",state=\"alive\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(
        r.body, "canopy_rpc_requests_total{service=\"Work\",method=\"Report\",code=\"OK\"}"));
    char prog[400];
    snprintf(prog, sizeof prog, "canopy_job_progress{job=\"%s\",kind=\"sweep\"} 1\n", id);
    ck_assert_ptr_nonnull(strstr(r.body, prog));
    reply_free(&r);
    // A worker's --metrics: its own RPC server (the pings of `status --ping`).
    r = get(metrics_port, "/metrics", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_gt(check_exposition(r.body), 0);
    ck_assert_ptr_nonnull(strstr(
        r.body, "canopy_rpc_requests_total{service=\"Cluster\",method=\"Ping\",code=\"OK\"}"));
    reply_free(&r);
}
END_TEST

// no_token checks that a reply does not carry the token anywhere.
static void no_token(const reply *r)
{
    ck_assert_msg(strstr(r->head, TOKEN) == NULL, "token echoed in headers: %s", r->head);
    ck_assert_msg(strstr(r->body, TOKEN) == NULL, "token echoed in the body");
}

START_TEST(test_http_beyond_loopback_requires_the_token_and_never_echoes_it)
{
    // Off loopback without --insecure: refused before anything starts.
    char any[64];
    snprintf(any, sizeof any, "0.0.0.0:%d", http_port);
    char *argv[10];
    scheduler_argv(argv, any, false);
    ck_assert_int_eq(run(argv), 2);
    // And without a token, the dashboard refuses to open.
    unsetenv("CANOPY_TOKEN");
    scheduler_argv(argv, any, true);
    ck_assert_int_eq(run(argv), 1);
    char out[400];
    snprintf(out, sizeof out, "%s/cmd.out", dir);
    ck_assert(ts_file_contains(out, "is not loopback, so the dashboard needs the cluster token"));
    setenv("CANOPY_TOKEN", TOKEN, 1);

    start_scheduler(any, true);
    ck_assert_msg(ts_wait_until(dashboard_up, NULL, 20000), "no dashboard (see %s)", log_path);
    reply r = get(http_port, "/api/jobs", NULL);
    ck_assert_int_eq(r.status, 401);
    ck_assert_ptr_nonnull(strstr(r.head, "WWW-Authenticate: Bearer"));
    no_token(&r);
    reply_free(&r);
    r = get(http_port, "/metrics", "Authorization: Bearer wrong-token\r\n");
    ck_assert_int_eq(r.status, 403);
    no_token(&r);
    reply_free(&r);
    r = get(http_port, "/metrics", "Authorization: Bearer " TOKEN "x\r\n");
    ck_assert_int_eq(r.status, 403);
    reply_free(&r);
    r = get(http_port, "/api/jobs", "Authorization: Bearer " TOKEN "\r\n");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "[]\n");
    no_token(&r);
    reply_free(&r);
    // A page without credentials is the login form, which holds no token.
    r = get(http_port, "/jobs", NULL);
    ck_assert_int_eq(r.status, 401);
    ck_assert_ptr_nonnull(strstr(r.body, "<form method=\"post\" action=\"/login\">"));
    no_token(&r);
    reply_free(&r);
    r = http(http_port, "POST", "/login", "Content-Type: application/x-www-form-urlencoded\r\n",
             "token=guess");
    ck_assert_int_eq(r.status, 403);
    ck_assert_ptr_null(strstr(r.head, "Set-Cookie"));
    reply_free(&r);
    r = http(http_port, "POST", "/login", "Content-Type: application/x-www-form-urlencoded\r\n",
             "token=" TOKEN);
    ck_assert_int_eq(r.status, 303);
    no_token(&r);
    const char *c = strstr(r.head, "Set-Cookie: canopy_session=");
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(strstr(c, "HttpOnly"));
    ck_assert_ptr_nonnull(strstr(c, "SameSite=Strict"));
    char cookie[200];
    snprintf(cookie, sizeof cookie, "Cookie: %.*s\r\n",
             (int)strcspn(c + strlen("Set-Cookie: "), ";"), c + strlen("Set-Cookie: "));
    reply_free(&r);
    r = get(http_port, "/jobs", cookie);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "data-page=\"jobs\""));
    no_token(&r);
    reply_free(&r);
    r = get(http_port, "/api/nodes", "Cookie: canopy_session=0123456789abcdef\r\n");
    ck_assert_int_eq(r.status, 403);
    reply_free(&r);
    ck_assert(!ts_file_contains(log_path, TOKEN));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("http");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_http_api_figures_and_metrics_of_a_finished_sweep);
    tcase_add_test(tc, test_http_beyond_loopback_requires_the_token_and_never_echoes_it);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
