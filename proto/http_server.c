// http_server.c: the read-only HTTP server (http_server.h) over nng's
// supplemental HTTP server.
//
// Each routed path is one nng handler whose callback checks the
// credentials first (in this order: loopback binding, bearer header,
// session cookie), then calls the route's handler into an http_reply and
// turns that into an nng response with the security headers. The login
// form and POST /login are the server's own routes, present only when a
// token is required.
#include "proto/http_server.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#define MAX_ROUTES 32
#define SESSION_COOKIE "canopy_session"

static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                          "frame-ancestors 'none'; base-uri 'none'";

static const char LOGIN_PAGE[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<title>canopy: sign in</title></head><body>\n<h1>canopy</h1>\n<p>%s</p>\n"
    "<form method=\"post\" action=\"/login\"><label>Cluster token "
    "<input type=\"password\" name=\"token\" autocomplete=\"current-password\" autofocus>"
    "</label> <button type=\"submit\">Sign in</button></form>\n</body></html>\n";

typedef struct route {
    http_server *srv;
    http_handler fn;
    void *arg;
} route;

struct http_server {
    nng_http_server *srv;
    nng_url *url;
    char addr[256];
    char token[256];
    char session[65]; // random; the cookie's value
    bool auth;
    route routes[MAX_ROUTES];
    size_t n_routes;
};

bool http_addr_is_loopback(const char *addr)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL)
        return false;
    size_t n = (size_t)(colon - addr);
    if (n >= sizeof host)
        return false;
    memcpy(host, addr, n);
    host[n] = 0;
    if (host[0] == '[' && n >= 2 && host[n - 1] == ']') {
        memmove(host, host + 1, n - 2);
        host[n - 2] = 0;
    }
    if (strcmp(host, "localhost") == 0)
        return true;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

// same compares in time independent of where a and b first differ.
static bool same(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return d == 0 && la > 0;
}

typedef enum { AUTH_OK, AUTH_MISSING, AUTH_WRONG } auth_result;

static auth_result check_auth(const http_server *s, nng_http_req *req)
{
    if (!s->auth)
        return AUTH_OK;
    const char *h = nng_http_req_get_header(req, "Authorization");
    if (h && strncasecmp(h, "Bearer ", 7) == 0)
        return same(h + 7, s->token) ? AUTH_OK : AUTH_WRONG;
    const char *c = nng_http_req_get_header(req, "Cookie");
    for (const char *p = c; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        size_t kl = strlen(SESSION_COOKIE);
        if (len > kl && strncmp(p, SESSION_COOKIE "=", kl + 1) == 0) {
            char v[128];
            snprintf(v, sizeof v, "%.*s", (int)(len - kl - 1), p + kl + 1);
            return same(v, s->session) ? AUTH_OK : AUTH_WRONG;
        }
        p = end;
    }
    return AUTH_MISSING;
}

static void finish(nng_aio *aio, nng_http_res *res)
{
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

// respond sends status, type and body with the security headers.
static void respond(nng_aio *aio, int status, const char *type, const void *body, size_t len,
                    const char *extra_name, const char *extra_value)
{
    nng_http_res *res;
    if (nng_http_res_alloc(&res) != 0) {
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    nng_http_res_set_status(res, (uint16_t)status);
    nng_http_res_set_header(res, "Content-Type", type);
    nng_http_res_set_header(res, "Content-Security-Policy", CSP);
    nng_http_res_set_header(res, "X-Frame-Options", "DENY");
    nng_http_res_set_header(res, "X-Content-Type-Options", "nosniff");
    nng_http_res_set_header(res, "Referrer-Policy", "no-referrer");
    nng_http_res_set_header(res, "Cache-Control", "no-store");
    if (extra_name)
        nng_http_res_set_header(res, extra_name, extra_value);
    if (len > 0 && nng_http_res_copy_data(res, body, len) != 0) {
        nng_http_res_free(res);
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    finish(aio, res);
}

static bool wants_page(const char *uri)
{
    return strncmp(uri, "/api/", 5) != 0 && strncmp(uri, "/metrics", 8) != 0;
}

static void refuse(nng_aio *aio, const char *uri, auth_result why)
{
    int status = why == AUTH_WRONG ? 403 : 401;
    const char *msg = why == AUTH_WRONG ? "The token or session was refused; sign in again."
                                        : "This dashboard needs the cluster token.";
    if (wants_page(uri)) {
        char page[sizeof LOGIN_PAGE + 128];
        int n = snprintf(page, sizeof page, LOGIN_PAGE, msg);
        respond(aio, status, "text/html; charset=utf-8", page, (size_t)n, "WWW-Authenticate",
                "Bearer realm=\"canopy\"");
        return;
    }
    char body[160];
    int n =
        snprintf(body, sizeof body, "{\"error\":\"%s (send Authorization: Bearer TOKEN)\"}\n", msg);
    respond(aio, status, "application/json", body, (size_t)n, "WWW-Authenticate",
            "Bearer realm=\"canopy\"");
}

static void on_request(nng_aio *aio)
{
    nng_http_req *req = nng_aio_get_input(aio, 0);
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    route *r = nng_http_handler_get_data(h);
    const char *uri = nng_http_req_get_uri(req);
    auth_result a = check_auth(r->srv, req);
    if (a != AUTH_OK) {
        refuse(aio, uri, a);
        return;
    }
    char path[1024];
    const char *q = strchr(uri, '?');
    size_t pl = q ? (size_t)(q - uri) : strlen(uri);
    snprintf(path, sizeof path, "%.*s", (int)(pl < sizeof path ? pl : sizeof path - 1), uri);
    http_request hr = {.path = path, .query = q ? q + 1 : ""};
    http_reply rep = {.status = 200, .content_type = "application/json"};
    cn_buf_init(&rep.body);
    r->fn(&hr, &rep, r->arg);
    if (rep.body.oom)
        respond(aio, 500, "text/plain", "out of memory\n", 14, NULL, NULL);
    else
        respond(aio, rep.status, rep.content_type, rep.body.data, rep.body.len, NULL, NULL);
    cn_buf_fini(&rep.body);
}

// form_value finds key's value in an x-www-form-urlencoded body and
// percent-decodes it into out.
static bool form_value(const char *body, size_t len, const char *key, char *out, size_t n)
{
    size_t kl = strlen(key), i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && body[end] != '&')
            end++;
        if (end - i > kl && strncmp(body + i, key, kl) == 0 && body[i + kl] == '=') {
            size_t k = 0;
            for (size_t j = i + kl + 1; j < end && k + 1 < n; j++) {
                char c = body[j];
                if (c == '+')
                    c = ' ';
                else if (c == '%' && j + 2 < end + 1) {
                    char hex[3] = {body[j + 1], body[j + 2], 0};
                    c = (char)strtol(hex, NULL, 16);
                    j += 2;
                }
                out[k++] = c;
            }
            out[k] = 0;
            return true;
        }
        i = end + 1;
    }
    return false;
}

static void on_login(nng_aio *aio)
{
    nng_http_req *req = nng_aio_get_input(aio, 0);
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    http_server *s = nng_http_handler_get_data(h);
    void *body;
    size_t len;
    nng_http_req_get_data(req, &body, &len);
    char token[256] = "";
    if (!form_value(body, len, "token", token, sizeof token) || !same(token, s->token)) {
        memset(token, 0, sizeof token);
        refuse(aio, "/login", AUTH_WRONG);
        return;
    }
    memset(token, 0, sizeof token);
    char cookie[160];
    snprintf(cookie, sizeof cookie, SESSION_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict",
             s->session);
    nng_http_res *res;
    if (nng_http_res_alloc(&res) != 0) {
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    nng_http_res_set_status(res, 303);
    nng_http_res_set_header(res, "Location", "/");
    nng_http_res_set_header(res, "Set-Cookie", cookie);
    nng_http_res_set_header(res, "Content-Security-Policy", CSP);
    nng_http_res_set_header(res, "X-Frame-Options", "DENY");
    nng_http_res_set_header(res, "Cache-Control", "no-store");
    finish(aio, res);
}

cn_err http_server_open(http_server **out, const http_server_opts *o, char *err, size_t errlen)
{
    *out = NULL;
    const char *colon = o->addr ? strrchr(o->addr, ':') : NULL;
    if (colon == NULL || colon == o->addr || colon[1] == 0 ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return cn_errf(err, errlen, CN_EINVAL,
                       "HTTP address \"%s\": expected HOST:PORT, e.g. 127.0.0.1:8080",
                       o->addr ? o->addr : "");
    bool auth = !http_addr_is_loopback(o->addr);
    if (auth && (o->token == NULL || !*o->token))
        return cn_errf(err, errlen, CN_EINVAL,
                       "HTTP address %s is not loopback, so the dashboard needs the cluster "
                       "token: set --token-file or $CANOPY_TOKEN (or bind 127.0.0.1)",
                       o->addr);
    http_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return CN_ENOMEM;
    s->auth = auth;
    snprintf(s->addr, sizeof s->addr, "%s", o->addr);
    snprintf(s->token, sizeof s->token, "%s", o->token ? o->token : "");
    unsigned char raw[32];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        free(s);
        return cn_errf(err, errlen, CN_EIO, "cannot draw a random session value");
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(s->session + 2 * i, 3, "%02x", raw[i]);
    char url[300];
    snprintf(url, sizeof url, "http://%s", o->addr);
    int rv;
    if ((rv = nng_url_parse(&s->url, url)) != 0 ||
        (rv = nng_http_server_hold(&s->srv, s->url)) != 0) {
        http_server_close(s);
        return cn_errf(err, errlen, CN_EINVAL, "HTTP address \"%s\": %s", o->addr,
                       nng_strerror(rv));
    }
    if (auth) {
        nng_http_handler *h;
        if ((rv = nng_http_handler_alloc(&h, "/login", on_login)) != 0) {
            http_server_close(s);
            return CN_ENOMEM;
        }
        nng_http_handler_set_method(h, "POST");
        nng_http_handler_collect_body(h, true, 4096);
        nng_http_handler_set_data(h, s, NULL);
        if ((rv = nng_http_server_add_handler(s->srv, h)) != 0) {
            nng_http_handler_free(h);
            http_server_close(s);
            return CN_ENOMEM;
        }
    }
    *out = s;
    return CN_OK;
}

cn_err http_server_route(http_server *s, const char *path, bool tree, http_handler fn, void *arg)
{
    if (s->n_routes == MAX_ROUTES)
        return CN_ENOMEM;
    route *r = &s->routes[s->n_routes];
    *r = (route){.srv = s, .fn = fn, .arg = arg};
    nng_http_handler *h;
    if (nng_http_handler_alloc(&h, path, on_request) != 0)
        return CN_ENOMEM;
    nng_http_handler_set_data(h, r, NULL);
    nng_http_handler_collect_body(h, true, 0);
    if (tree)
        nng_http_handler_set_tree(h);
    int rv = nng_http_server_add_handler(s->srv, h);
    if (rv != 0) {
        nng_http_handler_free(h);
        return rv == NNG_EADDRINUSE ? CN_EEXIST : CN_ENOMEM;
    }
    s->n_routes++;
    return CN_OK;
}

cn_err http_server_start(http_server *s, char *err, size_t errlen)
{
    int rv = nng_http_server_start(s->srv);
    if (rv != 0)
        return cn_errf(err, errlen, CN_EIO, "cannot serve HTTP on %s: %s", s->addr,
                       nng_strerror(rv));
    return CN_OK;
}

void http_server_url(const http_server *s, char *buf, size_t n)
{
    nng_sockaddr sa;
    int port = 0;
    if (nng_http_server_get_addr(s->srv, &sa) == 0) {
        if (sa.s_family == NNG_AF_INET)
            port = ntohs(sa.s_in.sa_port);
        else if (sa.s_family == NNG_AF_INET6)
            port = ntohs(sa.s_in6.sa_port);
    }
    const char *colon = strrchr(s->addr, ':');
    snprintf(buf, n, "http://%.*s:%d", (int)(colon - s->addr), s->addr, port);
}

bool http_server_auth_required(const http_server *s)
{
    return s->auth;
}

void http_server_close(http_server *s)
{
    if (s == NULL)
        return;
    if (s->srv) {
        nng_http_server_stop(s->srv);
        nng_http_server_release(s->srv);
    }
    nng_url_free(s->url);
    memset(s->token, 0, sizeof s->token);
    free(s);
}
