// rpc_common.c: pieces shared by the RPC server and client: status code
// names, the error-to-status mapping, loading the cluster token, comparing
// tokens in constant time, building nng TLS configurations from files, and
// closing an nng socket with a bound on the time it may take.
#include "proto/rpc.h"
#include "proto/rpc_impl.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cn_clock.h"

const char *rpc_code_name(rpc_code code)
{
    switch (code) {
#define RPC_CODE_NAME(name, num, text)                                                             \
    case name:                                                                                     \
        return text;
        RPC_CODES(RPC_CODE_NAME)
#undef RPC_CODE_NAME
    }
    return "UNKNOWN";
}

rpc_code rpc_code_from_err(cn_err err)
{
    switch (err) {
    case CN_OK:
        return RPC_OK;
    case CN_EINVAL:
    case CN_EFORMAT:
        return RPC_INVALID_ARGUMENT;
    case CN_ERANGE:
        return RPC_OUT_OF_RANGE;
    case CN_ENOTFOUND:
        return RPC_NOT_FOUND;
    case CN_EEXIST:
        return RPC_ALREADY_EXISTS;
    case CN_ETIMEDOUT:
        return RPC_DEADLINE_EXCEEDED;
    case CN_ECLOSED:
    case CN_EUNAVAIL:
        return RPC_UNAVAILABLE;
    case CN_EBUSY:
    case CN_ENOMEM:
    case CN_ETOOBIG:
        return RPC_RESOURCE_EXHAUSTED;
    case CN_EAUTH:
        return RPC_UNAUTHENTICATED;
    case CN_ESTATE:
        return RPC_FAILED_PRECONDITION;
    case CN_ECANCELED:
        return RPC_CANCELLED;
    case CN_EVERSION:
    case CN_EPROTO:
        return RPC_UNIMPLEMENTED;
    case CN_EIO:
        return RPC_UNAVAILABLE;
    default:
        return RPC_INTERNAL;
    }
}

cn_err rpc_err_from_nng(int rv)
{
    switch (rv) {
    case 0:
        return CN_OK;
    case NNG_ENOMEM:
        return CN_ENOMEM;
    case NNG_EINVAL:
    case NNG_EADDRINVAL:
        return CN_EINVAL;
    case NNG_ETIMEDOUT:
        return CN_ETIMEDOUT;
    case NNG_ECLOSED:
        return CN_ECLOSED;
    case NNG_ECANCELED:
        return CN_ECANCELED;
    case NNG_EMSGSIZE:
        return CN_ETOOBIG;
    case NNG_ENOTSUP:
        return CN_EINVAL;
    case NNG_ECRYPTO:
    case NNG_EPEERAUTH:
        return CN_EAUTH;
    default:
        return CN_EIO;
    }
}

cn_err rpc_token_load(const char *path, char out[256], char *err, size_t errlen)
{
    out[0] = '\0';
    char buf[512];
    size_t n = 0;
    if (path && path[0]) {
        FILE *f = fopen(path, "r");
        if (!f)
            return cn_errf(err, errlen, errno == ENOENT ? CN_ENOTFOUND : CN_EIO,
                           "%s: cannot open token file: %s", path, strerror(errno));
        n = fread(buf, 1, sizeof buf - 1, f);
        int bad = ferror(f);
        fclose(f);
        if (bad)
            return cn_errf(err, errlen, CN_EIO, "%s: cannot read token file", path);
    } else {
        const char *env = getenv("CANOPY_TOKEN");
        if (!env)
            return CN_OK;
        n = strlen(env);
        if (n > sizeof buf - 1)
            n = sizeof buf - 1;
        memcpy(buf, env, n);
    }
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        n--;
    buf[n] = '\0';
    if (n > 255)
        return cn_errf(err, errlen, CN_EINVAL,
                       "%s: token is longer than 255 bytes; use a shorter random string",
                       path && path[0] ? path : "CANOPY_TOKEN");
    memcpy(out, buf, n + 1);
    return CN_OK;
}

bool rpc_token_equal(const char *a, const char *b)
{
    // Walk a fixed 256 bytes of both, treating bytes past each string's end
    // as zero, and fold the lengths in, so timing reveals nothing about the
    // position of the first difference.
    size_t la = strnlen(a, 256), lb = strnlen(b, 256);
    unsigned diff = (unsigned)(la ^ lb);
    for (size_t i = 0; i < 256; i++) {
        unsigned char ca = i < la ? (unsigned char)a[i] : 0;
        unsigned char cb = i < lb ? (unsigned char)b[i] : 0;
        diff |= (unsigned)(ca ^ cb);
    }
    return diff == 0 && la < 256;
}

bool rpc_url_is_tls(const char *url)
{
    return url && strncmp(url, "tls+tcp", 7) == 0;
}

cn_err rpc_url_host(const char *url, char *out, size_t n)
{
    const char *p = url ? strstr(url, "://") : NULL;
    if (!p)
        return CN_EINVAL;
    p += 3;
    const char *end;
    if (*p == '[') { // [v6]:port
        p++;
        end = strchr(p, ']');
    } else {
        end = strrchr(p, ':');
    }
    if (!end)
        end = p + strlen(p);
    size_t k = (size_t)(end - p);
    if (k >= n)
        return CN_ERANGE;
    memcpy(out, p, k);
    out[k] = 0;
    return CN_OK;
}

bool rpc_url_exposed(const char *url)
{
    if (!url || strncmp(url, "tcp://", 6) != 0)
        return false; // tls+tcp, ipc, inproc
    char host[256];
    if (rpc_url_host(url, host, sizeof host) != CN_OK)
        return true;
    if (strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0)
        return false;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) != 127;
    return true; // a host name, an IPv6 address, or the wildcard "*"
}

// read_file reads a whole (small) PEM file into a NUL-terminated heap string.
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    while (s) {
        size_t got = fread(s + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
        if (cap - n - 1 == 0) {
            char *t = cap < (1u << 20) ? realloc(s, cap * 2) : NULL;
            if (!t) {
                free(s);
                s = NULL;
                break;
            }
            s = t;
            cap *= 2;
        }
    }
    fclose(f);
    if (s)
        s[n] = '\0';
    return s;
}

cn_err rpc_tls_setup(nng_tls_config **out, const rpc_tls *t, bool server, char *err, size_t errlen)
{
    *out = NULL;
    bool has_cert = t->cert_file && t->cert_file[0];
    bool has_key = t->key_file && t->key_file[0];
    bool has_ca = t->ca_file && t->ca_file[0];
    if (server && (!has_cert || !has_key))
        return cn_errf(err, errlen, CN_EINVAL,
                       "tls+tcp server needs tls.cert_file and tls.key_file");
    if (!server && !has_ca)
        return cn_errf(err, errlen, CN_EINVAL,
                       "tls+tcp client needs tls.ca_file to verify the server");
    if (has_cert != has_key)
        return cn_errf(err, errlen, CN_EINVAL, "tls.cert_file and tls.key_file go together");

    nng_tls_config *cfg = NULL;
    char *cert = NULL, *key = NULL;
    cn_err rc = CN_OK;
    int rv = nng_tls_config_alloc(&cfg, server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT);
    if (rv != 0) {
        rc =
            cn_errf(err, errlen, CN_EAUTH, "cannot create TLS configuration: %s", nng_strerror(rv));
        goto err;
    }
    if (has_cert) {
        cert = read_file(t->cert_file);
        key = read_file(t->key_file);
        if (!cert || !key) {
            rc = cn_errf(err, errlen, CN_EAUTH, "%s: cannot read TLS file",
                         !cert ? t->cert_file : t->key_file);
            goto err;
        }
        rv = nng_tls_config_own_cert(cfg, cert, key, NULL);
        if (rv != 0) {
            rc = cn_errf(err, errlen, CN_EAUTH, "%s / %s: invalid certificate or key: %s",
                         t->cert_file, t->key_file, nng_strerror(rv));
            goto err;
        }
    }
    if (has_ca) {
        rv = nng_tls_config_ca_file(cfg, t->ca_file);
        if (rv != 0) {
            rc = cn_errf(err, errlen, CN_EAUTH, "%s: cannot load CA file: %s", t->ca_file,
                         nng_strerror(rv));
            goto err;
        }
    }
    rv =
        nng_tls_config_auth_mode(cfg, has_ca ? NNG_TLS_AUTH_MODE_REQUIRED : NNG_TLS_AUTH_MODE_NONE);
    if (rv == 0 && !server && t->server_name && t->server_name[0])
        rv = nng_tls_config_server_name(cfg, t->server_name);
    if (rv != 0) {
        rc = cn_errf(err, errlen, CN_EAUTH, "TLS configuration: %s", nng_strerror(rv));
        goto err;
    }
    free(cert);
    free(key);
    *out = cfg;
    return CN_OK;
err:
    free(cert);
    free(key);
    if (cfg)
        nng_tls_config_free(cfg);
    return rc;
}

// ---------------------------------------------------------------- bounded close

// A closer thread owns one nng_close; the caller waits for it with a timeout.
// The record is freed by whichever of the two finishes last.
typedef struct closer {
    nng_socket sock;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    bool abandoned;
} closer;

static atomic_uint_fast64_t close_abandoned;

static void closer_free(closer *k)
{
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    free(k);
}

static void *closer_main(void *arg)
{
    closer *k = arg;
    nng_close(k->sock);
    pthread_mutex_lock(&k->mu);
    k->done = true;
    bool abandoned = k->abandoned;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    if (abandoned)
        closer_free(k);
    return NULL;
}

bool rpc_socket_close_bounded(nng_socket sock, int timeout_ms)
{
    closer *k = calloc(1, sizeof *k);
    pthread_t t;
    if (k) {
        k->sock = sock;
        pthread_mutex_init(&k->mu, NULL);
        cn_cond_init_mono(&k->cv);
    }
    if (!k || pthread_create(&t, NULL, closer_main, k) != 0) {
        // No thread to spare: close inline rather than leak the socket.
        if (k)
            closer_free(k);
        nng_close(sock);
        return true;
    }
    pthread_detach(t);
    uint64_t deadline = cn_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&k->mu);
    while (!k->done) {
        uint64_t now = cn_now_ms();
        if (now >= deadline || cn_cond_wait_ms(&k->cv, &k->mu, deadline - now) == ETIMEDOUT)
            break;
    }
    bool done = k->done;
    if (!done)
        k->abandoned = true;
    pthread_mutex_unlock(&k->mu);
    if (done) {
        closer_free(k);
        return true;
    }
    atomic_fetch_add(&close_abandoned, 1);
    return false;
}

uint64_t rpc_close_abandoned(void)
{
    return atomic_load(&close_abandoned);
}
