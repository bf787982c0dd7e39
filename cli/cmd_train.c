// cmd_train.c: `canopy train JOB.json`: submit a data-parallel training job
// and follow it.
//
// The job file is validated here first (nothing is sent if it is invalid),
// then submitted to the scheduler's Train service. Progress is one line per
// new evaluation or every few seconds: epoch, step, training loss, test
// accuracy, samples/s. At the end: final accuracy, throughput, the
// compute-to-communication ratio, the staleness the shards saw, and where
// the results and the model are.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "common/cn_clock.h"
#include "common/cn_file.h"
#include "proto/cluster_client.h"
#include "scheduler/train.h"
#include "train.pb-c.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int cmd_train_job(int argc, char **argv)
{
    cli_net net;
    cli_net_defaults(&net);
    int64_t poll_ms = 500, timeout_s = 0;
    bool quiet = false;
    cn_opt opts[] = {
        {"poll-ms", CN_OPT_INT, &poll_ms, "how often to ask for progress", 50, 60000, NULL},
        {"timeout-s", CN_OPT_INT, &timeout_s, "give up following after this long (0 = never)", 0,
         1e9, NULL},
        {"quiet", CN_OPT_BOOL, &quiet, "print only the final summary", 0, 0, NULL},
        CLI_NET_OPTS(&net),
        CN_OPT_END,
    };
    cn_args args;
    bool done;
    int rc = cli_parse("train", "train [options] JOB.json", opts, argc, argv, &args, &done);
    if (done)
        return rc;
    if (args.npos != 1)
        return cli_usage_error("train", "expected exactly one job file");
    if (!cli_net_load(&net, "train"))
        return CLI_EXIT_USAGE;
    const char *path = args.pos[0];
    char err[CN_ERRBUF_LEN];
    uint8_t *text = NULL;
    size_t len = 0;
    if (cn_file_read_all(path, 1 << 20, &text, &len, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy train: %s\n", err);
        return CLI_EXIT_DATA;
    }
    train_spec spec;
    if (train_spec_parse((const char *)text, path, &spec, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy train: %s\n", err);
        free(text);
        return CLI_EXIT_USAGE;
    }
    rpc_client *c = cli_open_scheduler(&net, "train");
    if (c == NULL) {
        free(text);
        return CLI_EXIT_UNAVAILABLE;
    }
    Canopy__Train__SubmitRequest req = CANOPY__TRAIN__SUBMIT_REQUEST__INIT;
    req.spec_json = (char *)text;
    req.spec_name = (char *)path;
    Canopy__Train__SubmitReply *sub = NULL;
    char detail[RPC_DETAIL_LEN];
    rpc_code code = cluster_call(c, "Train", "Submit", &req.base, 0, 30000,
                                 &canopy__train__submit_reply__descriptor,
                                 (ProtobufCMessage **)&sub, detail, sizeof detail);
    free(text);
    if (code != RPC_OK) {
        fprintf(stderr, "canopy train: %s: %s\n", rpc_code_name(code), detail);
        rpc_client_close(c);
        return code == RPC_UNAVAILABLE || code == RPC_DEADLINE_EXCEEDED ? CLI_EXIT_UNAVAILABLE
               : code == RPC_INVALID_ARGUMENT                           ? CLI_EXIT_USAGE
                                                                        : CLI_EXIT_FAILURE;
    }
    char job_id[PS_JOB_ID_LEN];
    snprintf(job_id, sizeof job_id, "%s", sub->job_id);
    printf("job %s submitted: %s, %u shards, %u workers, batch %u, %u epochs\n", job_id,
           ps_mode_name(spec.mode), spec.shards, spec.workers, spec.batch, spec.epochs);
    fflush(stdout);
    protobuf_c_message_free_unpacked(&sub->base, NULL);

    uint64_t start = cn_now_ms(), last_print = 0;
    size_t evals_seen = 0;
    int exit_code = CLI_EXIT_FAILURE;
    int misses = 0;
    for (;;) {
        Canopy__Train__StatusRequest sr = CANOPY__TRAIN__STATUS_REQUEST__INIT;
        sr.job_id = job_id;
        Canopy__Train__StatusReply *st = NULL;
        code = cluster_call(c, "Train", "Status", &sr.base, RPC_IDEMPOTENT, 10000,
                            &canopy__train__status_reply__descriptor, (ProtobufCMessage **)&st,
                            detail, sizeof detail);
        if (code != RPC_OK) {
            if (++misses > 20) {
                fprintf(stderr, "canopy train: lost the scheduler: %s: %s\n", rpc_code_name(code),
                        detail);
                exit_code = CLI_EXIT_UNAVAILABLE;
                break;
            }
            sleep_ms((int)poll_ms);
            continue;
        }
        misses = 0;
        bool finished = strcmp(st->state, "done") == 0 || strcmp(st->state, "failed") == 0;
        uint64_t now = cn_now_ms();
        if (!quiet && strcmp(st->state, "running") == 0 &&
            (st->n_evals > evals_seen || now - last_print >= 5000)) {
            char acc[16] = "-";
            if (st->accuracy >= 0)
                snprintf(acc, sizeof acc, "%.4f", st->accuracy);
            printf("epoch %u/%u  step %llu/%llu  loss %.4f  acc %s  %.0f samples/s  [%.1f s]\n",
                   st->epoch + (st->epoch < st->epochs ? 1 : 0), st->epochs,
                   (unsigned long long)st->step, (unsigned long long)st->steps, st->loss, acc,
                   st->samples_per_s, st->elapsed_seconds);
            fflush(stdout);
            evals_seen = st->n_evals;
            last_print = now;
        }
        if (finished) {
            if (strcmp(st->state, "done") == 0) {
                printf("done: test accuracy %.4f, loss %.4f, %.0f samples/s over %.1f s "
                       "(%llu parameters)\n",
                       st->accuracy, st->test_loss, st->samples_per_s, st->elapsed_seconds,
                       (unsigned long long)st->n_params);
                printf("compute/communication %.2f, shard restarts %u\n", st->compute_comm_ratio,
                       st->shard_restarts);
                if (st->n_staleness) {
                    printf("staleness histogram:");
                    for (size_t i = 0; i < st->n_staleness; i++)
                        if (st->staleness[i])
                            printf(" %s%zu:%llu", i + 1 == st->n_staleness ? ">=" : "", i,
                                   (unsigned long long)st->staleness[i]);
                    printf("\n");
                }
                printf("results: %s\nmodel: %s\n", st->results_dir, st->model_path);
                exit_code = CLI_EXIT_OK;
            } else {
                fprintf(stderr, "canopy train: job %s failed: %s\n", job_id, st->error);
                exit_code = CLI_EXIT_FAILURE;
            }
            protobuf_c_message_free_unpacked(&st->base, NULL);
            break;
        }
        protobuf_c_message_free_unpacked(&st->base, NULL);
        if (timeout_s > 0 && now - start > (uint64_t)timeout_s * 1000) {
            fprintf(stderr, "canopy train: still running after %lld s; stopped following %s\n",
                    (long long)timeout_s, job_id);
            break;
        }
        sleep_ms((int)poll_ms);
    }
    rpc_client_close(c);
    return exit_code;
}
