// sched_client.c: typed clients for the Data, Jobs and Work services (see
// sched_client.h).
#include "proto/sched_client.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_buf.h"
#include "common/cn_file.h"
#include "data.pb-c.h"
#include "jobs.pb-c.h"
#include "proto/cluster_client.h"
#include "work.pb-c.h"

#define FETCH_CHUNK (16u << 20)

bool sched_sha_valid(const char *s)
{
    if (s == NULL || strlen(s) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static void copy_str(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

// read_raw reads a file's bytes as they are (gzip stays gzip).
static cn_err read_raw(const char *path, size_t max_bytes, cn_buf *out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return cn_errf(err, errlen, errno == ENOENT ? CN_ENOTFOUND : CN_EIO, "%s: %s", path,
                       strerror(errno));
    char chunk[1 << 16];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        cn_buf_append(out, chunk, n);
        if (max_bytes && out->len > max_bytes) {
            fclose(f);
            return cn_errf(err, errlen, CN_ETOOBIG, "%s: larger than %zu bytes", path, max_bytes);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return cn_errf(err, errlen, CN_EIO, "%s: read error", path);
    if (out->oom)
        return cn_errf(err, errlen, CN_ENOMEM, "%s: out of memory", path);
    return CN_OK;
}

cn_err sched_data_upload(rpc_client *c, const char *role, const char *path, size_t max_bytes,
                         sched_data_ref *ref, bool *uploaded, char *err, size_t errlen)
{
    memset(ref, 0, sizeof *ref);
    if (uploaded)
        *uploaded = false;
    cn_buf b;
    cn_buf_init(&b);
    cn_err e = read_raw(path, max_bytes, &b, err, errlen);
    if (e != CN_OK) {
        cn_buf_fini(&b);
        return e;
    }
    copy_str(ref->role, sizeof ref->role, role);
    cn_file_sha256_hex(b.data ? b.data : "", b.len, ref->sha256);
    ref->size = b.len;
    char *copy = strdup(path);
    copy_str(ref->name, sizeof ref->name, copy ? basename(copy) : path);
    free(copy);

    Canopy__Data__HasRequest hq = CANOPY__DATA__HAS_REQUEST__INIT;
    hq.sha256 = ref->sha256;
    Canopy__Data__HasReply *hr = NULL;
    char detail[RPC_DETAIL_LEN + 128];
    rpc_code code = cluster_call(c, "Data", "Has", &hq.base, RPC_IDEMPOTENT, 30000,
                                 &canopy__data__has_reply__descriptor, (ProtobufCMessage **)&hr,
                                 detail, sizeof detail);
    bool present = code == RPC_OK && hr && hr->present;
    if (hr)
        protobuf_c_message_free_unpacked(&hr->base, NULL);
    if (code == RPC_OK && !present) {
        Canopy__Data__PutRequest pq = CANOPY__DATA__PUT_REQUEST__INIT;
        pq.sha256 = ref->sha256;
        pq.name = ref->name;
        rpc_request r = {.service = "Data",
                         .method = "Put",
                         .body = &pq.base,
                         .payload = b.data,
                         .payload_len = b.len,
                         .deadline_ms = 300000,
                         .flags = RPC_IDEMPOTENT};
        rpc_reply rep;
        memset(&rep, 0, sizeof rep);
        code = rpc_client_call(c, &r, &rep);
        if (code != RPC_OK)
            snprintf(detail, sizeof detail, "Data/Put: %s: %s", rpc_code_name(code), rep.detail);
        rpc_reply_fini(&rep);
        if (code == RPC_OK && uploaded)
            *uploaded = true;
    }
    cn_buf_fini(&b);
    if (code == RPC_OK)
        return CN_OK;
    cn_err ce = code == RPC_INVALID_ARGUMENT || code == RPC_RESOURCE_EXHAUSTED ? CN_EINVAL
                : code == RPC_UNAUTHENTICATED                                  ? CN_EAUTH
                                                                               : CN_EUNAVAIL;
    return cn_errf(err, errlen, ce, "%s (%s): %s", path, ref->sha256, detail);
}

cn_err sched_data_fetch(rpc_client *c, const char *sha, size_t max_bytes, uint8_t **bytes,
                        size_t *len, char *err, size_t errlen)
{
    *bytes = NULL;
    *len = 0;
    if (!sched_sha_valid(sha))
        return cn_errf(err, errlen, CN_EINVAL, "\"%.80s\" is not a SHA-256 hex digest", sha);
    cn_buf buf;
    cn_buf_init(&buf);
    uint64_t total = UINT64_MAX;
    while ((uint64_t)buf.len < total) {
        Canopy__Data__FetchRequest req = CANOPY__DATA__FETCH_REQUEST__INIT;
        req.sha256 = (char *)sha;
        req.offset = buf.len;
        req.length = FETCH_CHUNK;
        rpc_request r = {.service = "Data",
                         .method = "Fetch",
                         .body = &req.base,
                         .deadline_ms = 120000,
                         .flags = RPC_IDEMPOTENT};
        rpc_reply rep;
        memset(&rep, 0, sizeof rep);
        rpc_code code = rpc_client_call(c, &r, &rep);
        if (code != RPC_OK) {
            cn_err ce = code == RPC_NOT_FOUND ? CN_ENOTFOUND : CN_EUNAVAIL;
            cn_errf(err, errlen, ce, "fetching data set %.12s: %s: %s", sha, rpc_code_name(code),
                    rep.detail);
            rpc_reply_fini(&rep);
            cn_buf_fini(&buf);
            return ce;
        }
        Canopy__Data__FetchReply *fr = (Canopy__Data__FetchReply *)rpc_reply_unpack(
            &rep, &canopy__data__fetch_reply__descriptor);
        bool bad = fr == NULL || (rep.payload_len == 0 && buf.len < fr->total) ||
                   (total != UINT64_MAX && fr->total != total);
        if (!bad) {
            total = fr->total;
            if (max_bytes && total > max_bytes) {
                protobuf_c_message_free_unpacked(&fr->base, NULL);
                rpc_reply_fini(&rep);
                cn_buf_fini(&buf);
                return cn_errf(err, errlen, CN_ETOOBIG, "data set %.12s: %llu bytes, over %zu", sha,
                               (unsigned long long)total, max_bytes);
            }
            cn_buf_append(&buf, rep.payload, rep.payload_len);
        }
        if (fr)
            protobuf_c_message_free_unpacked(&fr->base, NULL);
        rpc_reply_fini(&rep);
        if (bad) {
            cn_buf_fini(&buf);
            return cn_errf(err, errlen, CN_EPROTO, "fetching data set %.12s: malformed reply", sha);
        }
        if (buf.oom) {
            cn_buf_fini(&buf);
            return cn_errf(err, errlen, CN_ENOMEM, "out of memory fetching data set %.12s", sha);
        }
    }
    char got[SCHED_SHA_LEN];
    cn_file_sha256_hex(buf.data ? buf.data : "", buf.len, got);
    if (strcmp(got, sha) != 0) {
        cn_buf_fini(&buf);
        return cn_errf(err, errlen, CN_EFORMAT, "data set %.12s arrived corrupted (hash %.12s)",
                       sha, got);
    }
    *len = buf.len;
    *bytes = (uint8_t *)buf.data; // handed over: the buffer is ours to give
    if (*bytes == NULL)
        *bytes = calloc(1, 1);
    return CN_OK;
}

// ---------------------------------------------------------------- Jobs

rpc_code sched_jobs_submit(rpc_client *c, const sched_submit *sub, sched_submitted *out,
                           char *detail, size_t detail_len)
{
    memset(out, 0, sizeof *out);
    Canopy__Jobs__DataRef *refs = calloc(sub->n_data + 1, sizeof *refs);
    Canopy__Jobs__DataRef **rp = calloc(sub->n_data + 1, sizeof *rp);
    if (refs == NULL || rp == NULL) {
        free(refs);
        free(rp);
        snprintf(detail, detail_len, "out of memory");
        return RPC_RESOURCE_EXHAUSTED;
    }
    for (size_t i = 0; i < sub->n_data; i++) {
        Canopy__Jobs__DataRef init = CANOPY__JOBS__DATA_REF__INIT;
        refs[i] = init;
        refs[i].role = (char *)sub->data[i].role;
        refs[i].sha256 = (char *)sub->data[i].sha256;
        refs[i].size = sub->data[i].size;
        refs[i].name = (char *)sub->data[i].name;
        rp[i] = &refs[i];
    }
    Canopy__Jobs__SubmitRequest req = CANOPY__JOBS__SUBMIT_REQUEST__INIT;
    req.kind = (char *)sub->kind;
    req.spec_json = (char *)sub->spec_json;
    req.spec_name = (char *)(sub->spec_name ? sub->spec_name : "job");
    req.n_data = sub->n_data;
    req.data = rp;
    req.resume = sub->resume;
    req.fresh = sub->fresh;
    Canopy__Jobs__SubmitReply *rep = NULL;
    rpc_code code = cluster_call(c, "Jobs", "Submit", &req.base, RPC_IDEMPOTENT, 120000,
                                 &canopy__jobs__submit_reply__descriptor, (ProtobufCMessage **)&rep,
                                 detail, detail_len);
    free(refs);
    free(rp);
    if (code == RPC_OK) {
        copy_str(out->job_id, sizeof out->job_id, rep->job_id);
        copy_str(out->results_dir, sizeof out->results_dir, rep->results_dir);
        out->existing = rep->existing;
        out->status = cJSON_Parse(rep->status_json);
        protobuf_c_message_free_unpacked(&rep->base, NULL);
    }
    return code;
}

rpc_code sched_jobs_status(rpc_client *c, const char *job_id, char state[16], cJSON **status,
                           char *detail, size_t detail_len)
{
    *status = NULL;
    Canopy__Jobs__StatusRequest req = CANOPY__JOBS__STATUS_REQUEST__INIT;
    req.job_id = (char *)job_id;
    Canopy__Jobs__StatusReply *rep = NULL;
    rpc_code code = cluster_call(c, "Jobs", "Status", &req.base, RPC_IDEMPOTENT, 10000,
                                 &canopy__jobs__status_reply__descriptor, (ProtobufCMessage **)&rep,
                                 detail, detail_len);
    if (code != RPC_OK)
        return code;
    copy_str(state, 16, rep->state);
    *status = cJSON_Parse(rep->status_json);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    if (*status == NULL) {
        snprintf(detail, detail_len, "Jobs/Status: the status document is not JSON");
        return RPC_INTERNAL;
    }
    return RPC_OK;
}

rpc_code sched_jobs_list(rpc_client *c, const char *kind, sched_job_info **jobs, size_t *n,
                         char *detail, size_t detail_len)
{
    *jobs = NULL;
    *n = 0;
    Canopy__Jobs__ListRequest req = CANOPY__JOBS__LIST_REQUEST__INIT;
    req.kind = (char *)(kind ? kind : "");
    Canopy__Jobs__ListReply *rep = NULL;
    rpc_code code = cluster_call(c, "Jobs", "List", &req.base, RPC_IDEMPOTENT, 10000,
                                 &canopy__jobs__list_reply__descriptor, (ProtobufCMessage **)&rep,
                                 detail, detail_len);
    if (code != RPC_OK)
        return code;
    sched_job_info *v = calloc(rep->n_jobs + 1, sizeof *v);
    if (v == NULL) {
        protobuf_c_message_free_unpacked(&rep->base, NULL);
        snprintf(detail, detail_len, "out of memory");
        return RPC_RESOURCE_EXHAUSTED;
    }
    for (size_t i = 0; i < rep->n_jobs; i++) {
        const Canopy__Jobs__JobInfo *j = rep->jobs[i];
        copy_str(v[i].job_id, sizeof v[i].job_id, j->job_id);
        copy_str(v[i].kind, sizeof v[i].kind, j->kind);
        copy_str(v[i].state, sizeof v[i].state, j->state);
        copy_str(v[i].name, sizeof v[i].name, j->name);
        copy_str(v[i].results_dir, sizeof v[i].results_dir, j->results_dir);
        copy_str(v[i].error, sizeof v[i].error, j->error);
        v[i].progress = j->progress;
        v[i].created_unix_ms = j->created_unix_ms;
        v[i].elapsed_seconds = j->elapsed_seconds;
    }
    *n = rep->n_jobs;
    *jobs = v;
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    return RPC_OK;
}

rpc_code sched_jobs_cancel(rpc_client *c, const char *job_id, const char *reason, char state[16],
                           char *detail, size_t detail_len)
{
    Canopy__Jobs__CancelRequest req = CANOPY__JOBS__CANCEL_REQUEST__INIT;
    req.job_id = (char *)job_id;
    req.reason = (char *)(reason ? reason : "");
    Canopy__Jobs__CancelReply *rep = NULL;
    rpc_code code = cluster_call(c, "Jobs", "Cancel", &req.base, RPC_IDEMPOTENT, 30000,
                                 &canopy__jobs__cancel_reply__descriptor, (ProtobufCMessage **)&rep,
                                 detail, detail_len);
    if (code == RPC_OK) {
        copy_str(state, 16, rep->state);
        protobuf_c_message_free_unpacked(&rep->base, NULL);
    }
    return code;
}

// ---------------------------------------------------------------- Work

rpc_code sched_work_get(rpc_client *c, uint64_t node, uint32_t slot, uint32_t wait_ms,
                        sched_work_item *item, bool *got, bool *shutdown, char *detail,
                        size_t detail_len)
{
    memset(item, 0, sizeof *item);
    *got = false;
    *shutdown = false;
    Canopy__Work__GetRequest req = CANOPY__WORK__GET_REQUEST__INIT;
    req.node_id = node;
    req.slot = slot;
    req.wait_ms = wait_ms;
    Canopy__Work__GetReply *rep = NULL;
    // The deadline leaves room for the held call and its reply.
    rpc_code code = cluster_call(c, "Work", "Get", &req.base, 0, (int)wait_ms + 5000,
                                 &canopy__work__get_reply__descriptor, (ProtobufCMessage **)&rep,
                                 detail, detail_len);
    if (code != RPC_OK)
        return code;
    *shutdown = rep->shutdown;
    if (rep->has_work && rep->item) {
        const Canopy__Work__Item *it = rep->item;
        copy_str(item->job_id, sizeof item->job_id, it->job_id);
        copy_str(item->kind, sizeof item->kind, it->kind);
        item->item = it->item;
        item->attempt = it->attempt;
        item->lease_ms = it->lease_ms;
        item->task = cJSON_Parse(it->task_json);
        if (!cJSON_IsObject(item->task)) {
            snprintf(detail, detail_len, "Work/Get: the task of %s item %llu is not a JSON object",
                     it->job_id, (unsigned long long)it->item);
            cJSON_Delete(item->task);
            item->task = NULL;
            code = RPC_INTERNAL;
        } else {
            *got = true;
        }
    }
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    return code;
}

void sched_work_item_fini(sched_work_item *item)
{
    if (item == NULL)
        return;
    cJSON_Delete(item->task);
    item->task = NULL;
}

rpc_code sched_work_report(rpc_client *c, const sched_report *r, bool *stop, bool *duplicate,
                           char *detail, size_t detail_len)
{
    if (stop)
        *stop = false;
    if (duplicate)
        *duplicate = false;
    char *text = r->result ? cJSON_PrintUnformatted(r->result) : NULL;
    Canopy__Work__ReportRequest req = CANOPY__WORK__REPORT_REQUEST__INIT;
    req.node_id = r->node;
    req.job_id = (char *)r->job_id;
    req.item = r->item;
    req.attempt = r->attempt;
    req.final = r->final;
    req.ok = r->ok;
    req.error = (char *)(r->error ? r->error : "");
    req.result_json = text ? text : (char *)"{}";
    Canopy__Work__ReportReply *rep = NULL;
    rpc_code code = cluster_call(c, "Work", "Report", &req.base, RPC_IDEMPOTENT,
                                 r->final ? 60000 : 10000, &canopy__work__report_reply__descriptor,
                                 (ProtobufCMessage **)&rep, detail, detail_len);
    free(text);
    if (code == RPC_OK) {
        if (stop)
            *stop = rep->stop;
        if (duplicate)
            *duplicate = rep->duplicate;
        protobuf_c_message_free_unpacked(&rep->base, NULL);
    }
    return code;
}
