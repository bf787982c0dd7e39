// http_server.h: a small read-only HTTP server on nng's HTTP server, for
// the scheduler's dashboard and JSON API and every daemon's /metrics. It
// knows nothing of jobs: callers route paths to handlers that fill a reply.
//
// Only GET (and HEAD) reach handlers; nng answers other methods with 405.
// The one exception is POST /login, the server's own, when a token is
// required.
//
// Authentication. Bound to a loopback address (127.0.0.0/8, ::1,
// localhost), the server serves anyone who can connect: they could read
// the state directory anyway. Bound to any other address it requires the
// cluster token on every request, either as "Authorization: Bearer TOKEN"
// (scrapers, curl) or as the session cookie a browser gets from the login
// form (POST /login with the token in a form body). The cookie holds a
// random session value made when the server opened, never the token, and
// is HttpOnly and SameSite=Strict. Without credentials a request gets 401
// (pages: the login form); with a wrong bearer token or session, 403. The
// token never appears in a reply, a URL or a log.
//
// Every reply carries a strict Content-Security-Policy (only this origin's
// scripts, styles, images and fetches; no framing, no plugins, forms post
// only here), X-Frame-Options: DENY, X-Content-Type-Options: nosniff,
// Referrer-Policy: no-referrer and Cache-Control: no-store.
//
// Thread rule: open, route and start from one thread; handlers run on nng's
// threads, several at once; close after which no handler runs.
#ifndef CANOPY_HTTP_SERVER_H
#define CANOPY_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/cn_buf.h"
#include "common/cn_err.h"

typedef struct http_server http_server;

typedef struct http_request {
    const char *path;  // the URI's path, not decoded ("/api/jobs/x")
    const char *query; // after '?', or ""
} http_request;

typedef struct http_reply {
    int status;            // 200 unless the handler sets it
    char content_type[64]; // "application/json" unless the handler sets it
    cn_buf body;           // the handler appends the body here
} http_reply;

// A handler fills rep for req. It runs on an nng thread and must not block
// for long.
typedef void (*http_handler)(const http_request *req, http_reply *rep, void *arg);

typedef struct http_server_opts {
    const char *addr;  // "HOST:PORT" to listen on; port 0 = any free port
    const char *token; // the cluster token; required when addr is not loopback
} http_server_opts;

// http_addr_is_loopback reports whether HOST of "HOST:PORT" is a loopback
// address or "localhost".
bool http_addr_is_loopback(const char *addr);

// http_server_open creates a server for opts->addr (not yet listening).
// Errors: CN_EINVAL (addr is not HOST:PORT, or it is not loopback and no
// token is set: err says to set one), CN_ENOMEM.
cn_err http_server_open(http_server **out, const http_server_opts *opts, char *err, size_t errlen);

// http_server_route sends GET requests for path (and, when tree, every path
// under it) to fn with arg (borrowed until close). Call before start.
// Errors: CN_EEXIST (path already routed), CN_ENOMEM.
cn_err http_server_route(http_server *s, const char *path, bool tree, http_handler fn, void *arg);

// http_server_start starts listening. Errors: CN_EIO (bind failed; err
// says why).
cn_err http_server_start(http_server *s, char *err, size_t errlen);

// http_server_url writes "http://HOST:PORT" with the port actually bound.
void http_server_url(const http_server *s, char *buf, size_t n);

// http_server_auth_required reports whether requests need the token.
bool http_server_auth_required(const http_server *s);

// http_server_close stops listening and frees s. Accepts NULL.
void http_server_close(http_server *s);

#endif
