// wk_loop.c: start and stop of a worker's background loop (see wk_loop.h).
#include "worker/wk_loop.h"

cn_err wk_loop_start(wk_loop *l, const char *url, const char *token, rpc_tls tls, uint64_t node_id,
                     void *(*fn)(void *), void *arg, const char *what, char *err, size_t errlen)
{
    l->stopping = 0;
    rpc_client_opts co = {.url = url, .token = token, .node_id = node_id, .tls = tls};
    cn_err e = rpc_client_open(&l->client, &co, err, errlen);
    if (e != CN_OK)
        return e;
    if (pthread_create(&l->thread, NULL, fn, arg) != 0) {
        rpc_client_close(l->client);
        l->client = NULL;
        return cn_errf(err, errlen, CN_ENOMEM, "cannot start the %s thread", what);
    }
    return CN_OK;
}

void wk_loop_stop(wk_loop *l)
{
    l->stopping = 1;
    pthread_join(l->thread, NULL);
    rpc_client_close(l->client);
    l->client = NULL;
}
