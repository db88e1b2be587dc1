/* empd predict: the emotion of new conversations (or of one utterance) from trained runs and a fusion.
 *
 * The input is encoded exactly as each run's training data was: the sharder runs with that run's
 * training manifest as its model (its categorical vocabularies, token limits and media settings; see
 * ds_sharder_opts.like) into a temporary shards folder, and the run's best checkpoint scores it through
 * the evaluation path (tr_evaluate), so a sample's probabilities are the ones evaluation gives it. The
 * runs' probabilities are then fused with fusion.json's chosen method. */
#define _XOPEN_SOURCE 700 /* nftw */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "comm/comm.h"
#include "dataset/loader.h"
#include "dataset/manifest.h"
#include "dataset/sharder.h"
#include "models/errors.h"
#include "models/torch_c.h"
#include "trainer/checkpoint.h"
#include "trainer/commands.h"
#include "trainer/cpus.h"
#include "trainer/config.h"
#include "trainer/evaluate.h"
#include "trainer/fusion_file.h"
#include "trainer/model.h"
#include "trainer/paths.h"
#include "trainer/predictions.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: empd predict (--fusion FILE | --run RUNDIR...) INPUT [--json] [--threads N] [--vocab FILE]\n\n"
            "  --fusion FILE   fusion.json of empd fuse (or its folder): its runs, fused by its chosen method\n"
            "  --run RUNDIR    a training run (repeatable); with --fusion, replaces fusion.json's runs in order;\n"
            "                  without it, one run's probabilities, or the plain average of several\n"
            "INPUT, one of:\n"
            "  --data DIR      an AvaMERG-format folder: train.json (or --json-file FILE) with audio_v5_0/ and\n"
            "                  video_v5_0/ media; every conversation with a turn is labelled, in file order\n"
            "  --text TEXT     one utterance said by a speaker, with --wav FILE and/or --mp4 FILE optional\n"
            "  --json          print one JSON document instead of the table\n"
            "  --threads N     libtorch threads (default: the CPUs this process may use)\n"
            "  --keep DIR      keep the encoded input (shards per run) in DIR instead of a temporary folder\n");
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

/* One utterance as an AvaMERG folder: dir/train.json plus its media under the names the sharder reads. */
static int write_utterance(const char *dir, const char *text, const char *wav, const char *mp4, char *err,
                           size_t errlen)
{
    char path[4300];
    cJSON *conv = cJSON_CreateArray(), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(conv, c);
    cJSON_AddStringToObject(c, "conversation_id", "00000");
    cJSON *sp = cJSON_AddObjectToObject(c, "speaker_profile");
    cJSON_AddNumberToObject(sp, "ID", 1);
    cJSON *lp = cJSON_AddObjectToObject(c, "listener_profile");
    cJSON_AddNumberToObject(lp, "ID", 2);
    cJSON *turns = cJSON_AddArrayToObject(c, "turns");
    cJSON *t = cJSON_CreateObject();
    cJSON_AddItemToArray(turns, t);
    cJSON_AddStringToObject(t, "turn_id", "0");
    cJSON_AddStringToObject(t, "context", "");
    cJSON *h = cJSON_AddArrayToObject(t, "dialogue_history");
    cJSON *u = cJSON_CreateObject();
    cJSON_AddItemToArray(h, u);
    cJSON_AddNumberToObject(u, "index", 0);
    cJSON_AddStringToObject(u, "role", "speaker");
    cJSON_AddStringToObject(u, "utterance", text);
    char *json = cJSON_Print(conv);
    cJSON_Delete(conv);
    snprintf(path, sizeof path, "%s/train.json", dir);
    if (!json)
        return md_fail(err, errlen, "predict: out of memory");
    int rc = tr_write_file_atomic(path, json, strlen(json), err, errlen);
    free(json);
    if (rc)
        return -1;
    const char *media[2] = {wav, mp4}, *sub[2] = {"audio_v5_0", "video_v5_0"}, *ext[2] = {"wav", "mp4"};
    for (int m = 0; m < 2; m++) {
        snprintf(path, sizeof path, "%s/%s", dir, sub[m]);
        if (mkdir(path, 0755) && errno != EEXIST)
            return md_fail(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        if (!media[m])
            continue;
        char abs[4096];
        if (!realpath(media[m], abs))
            return md_fail(err, errlen, "%s: %s", media[m], strerror(errno));
        snprintf(path, sizeof path, "%s/%s/dia00000utt0_1.%s", dir, sub[m], ext[m]);
        if (symlink(abs, path))
            return md_fail(err, errlen, "%s: cannot link: %s", path, strerror(errno));
    }
    return 0;
}

/* Run r's probabilities of every sample of the input, in the input's order. */
typedef struct {
    const char *dir;
    tr_config cfg;
    int have_cfg;
    tr_eval e;
    int have_eval;
    ds_strv ids;
} run_out;

static int score_run(comm_group *g, run_out *ro, const char *data_dir, const char *json_file, const char *vocab,
                     const char *enc_dir, char *err, size_t errlen)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/config.json", ro->dir);
    if (tr_config_load(path, NULL, 0, &ro->cfg, err, errlen))
        return -1;
    ro->have_cfg = 1;
    ds_manifest train_man = {0};
    snprintf(path, sizeof path, "%s/manifest.json", ro->cfg.data.shards);
    if (ds_manifest_read(path, &train_man, err, errlen)) {
        ds_manifest_free(&train_man);
        return -1;
    }
    ds_sharder_opts o;
    ds_sharder_opts_default(&o);
    o.data_dir = data_dir;
    o.json_path = json_file;
    o.out_dir = enc_dir;
    o.vocab_path = vocab;
    o.like = &train_man;
    o.labels = train_man.labels;
    o.utt_max_tokens = train_man.utt_max_tokens;
    o.ctx_max_tokens = train_man.ctx_max_tokens;
    o.audio = train_man.media.audio;
    o.video = train_man.media.video;
    if (o.audio)
        o.audio_max_seconds = train_man.media.audio_max_seconds;
    if (o.video) {
        o.frame_w = train_man.media.frame_w;
        o.frame_h = train_man.media.frame_h;
        o.frame_format = train_man.media.frame_format;
        o.jpeg_quality = train_man.media.jpeg_quality;
    }
    ds_sharder_plan plan;
    int rc = ds_sharder_run(&o, &plan, NULL, err, errlen) ? -1 : 0;
    ds_loader *l = NULL;
    if (!rc)
        rc = ds_loader_open(enc_dir, &l, err, errlen) ? -1 : 0;
    if (!rc && strcmp(ds_loader_manifest(l)->vocab_md5, train_man.vocab_md5))
        rc = md_fail(err, errlen, "%s: the tokenizer vocabulary (md5 %s) is not the one %s was sharded with (md5 %s)",
                      vocab, ds_loader_manifest(l)->vocab_md5, ro->cfg.data.shards, train_man.vocab_md5);
    ds_manifest_free(&train_man);
    tr_model model = {0};
    int have_model = 0;
    if (!rc)
        rc = tr_model_build(&model, &ro->cfg, ds_loader_manifest(l), (uint64_t)ro->cfg.train.seed, err, errlen);
    have_model = rc == 0;
    /* The best checkpoint (what the run's predictions files came from), else the newest. */
    char dir[4300];
    tr_ckpt_state st;
    if (!rc) {
        int found = tr_ckpt_find_latest(ro->dir, dir, sizeof dir, err, errlen);
        if (found < 0)
            rc = -1;
        else if (found == 0)
            rc = md_fail(err, errlen, "%s/checkpoints: no complete checkpoint to predict with", ro->dir);
    }
    if (!rc && (rc = tr_ckpt_load(dir, ro->cfg.model_hash, &st, tr_model_params(&model), NULL, err, errlen)) == 0) {
        int64_t best = st.best_step;
        tr_ckpt_state_free(&st);
        if (best > 0) {
            char best_dir[4300];
            if (!tr_ckpt_find_step(ro->dir, best, best_dir, sizeof best_dir))
                rc = md_fail(err, errlen, "%s/checkpoints: the best checkpoint (step %lld) is gone", ro->dir,
                              (long long)best);
            else if ((rc = tr_ckpt_load(best_dir, ro->cfg.model_hash, &st, tr_model_params(&model), NULL, err,
                                        errlen)) == 0)
                tr_ckpt_state_free(&st);
        }
    }
    if (!rc) {
        rc = tr_evaluate(g, l, &model, &ro->cfg, "test", 0, 1, &ro->e, err, errlen);
        ro->have_eval = rc == 0;
    }
    if (!rc) {
        const ds_manifest_split *ms = ds_manifest_find_split(ds_loader_manifest(l), "test");
        for (size_t i = 0; i < ms->conversation_ids.n && !rc; i++)
            if (ds_strv_push(&ro->ids, ms->conversation_ids.v[i]))
                rc = md_fail(err, errlen, "predict: out of memory");
    }
    if (have_model)
        tr_model_free(&model);
    ds_loader_close(l);
    return rc;
}

int cmd_predict(int argc, char **argv)
{
    const char *fusion = NULL, *data = NULL, *json_file = NULL, *text = NULL, *wav = NULL, *mp4 = NULL, *keep = NULL;
    const char *run_dirs[TR_FUSE_MAX_MODELS];
    int n_runs = 0, as_json = 0, threads = 0;
    char vocab[4096];
    int have_vocab = tr_default_vocab(vocab, sizeof vocab);
    static const struct option opts[] = {
        {"fusion", required_argument, 0, 'f'}, {"run", required_argument, 0, 'r'},
        {"data", required_argument, 0, 'd'},   {"json-file", required_argument, 0, 'J'},
        {"text", required_argument, 0, 't'},   {"wav", required_argument, 0, 'w'},
        {"mp4", required_argument, 0, 'm'},    {"json", no_argument, 0, 'j'},
        {"threads", required_argument, 0, 'n'}, {"vocab", required_argument, 0, 'v'},
        {"keep", required_argument, 0, 'k'},   {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f': fusion = optarg; break;
        case 'r':
            if (n_runs == TR_FUSE_MAX_MODELS) {
                fprintf(stderr, "empd predict: at most %d --run\n", TR_FUSE_MAX_MODELS);
                return 2;
            }
            run_dirs[n_runs++] = optarg;
            break;
        case 'd': data = optarg; break;
        case 'J': json_file = optarg; break;
        case 't': text = optarg; break;
        case 'w': wav = optarg; break;
        case 'm': mp4 = optarg; break;
        case 'j': as_json = 1; break;
        case 'n': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 1024) {
                fprintf(stderr, "empd predict: --threads '%s' is not a whole number in 1..1024\n", optarg);
                return 2;
            }
            threads = (int)v;
            break;
        }
        case 'v': snprintf(vocab, sizeof vocab, "%s", optarg); have_vocab = 1; break;
        case 'k': keep = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || (!fusion && n_runs == 0) || (!data == !text) || ((wav || mp4) && !text)) {
        if (optind < argc)
            fprintf(stderr, "empd predict: unexpected argument '%s'\n", argv[optind]);
        else
            fprintf(stderr, "empd predict: give --fusion or --run, and exactly one of --data or --text "
                            "(--wav/--mp4 go with --text)\n");
        usage(stderr);
        return 2;
    }
    if (!have_vocab) {
        fprintf(stderr, "empd predict: no BERT vocabulary at %s (run launch/setup, or give --vocab FILE)\n", vocab);
        return 1;
    }
    char err[2048];
    tr_fusion_loaded fl = {0};
    int have_fusion = 0;
    if (fusion) {
        char path[4200];
        struct stat sb;
        snprintf(path, sizeof path, stat(fusion, &sb) == 0 && S_ISDIR(sb.st_mode) ? "%s/fusion.json" : "%s", fusion);
        if (tr_fusion_read(path, &fl, err, sizeof err)) {
            fprintf(stderr, "empd predict: %s\n", err);
            return 1;
        }
        have_fusion = 1;
        if (n_runs && n_runs != fl.n_runs) {
            fprintf(stderr, "empd predict: %s fuses %d runs but %d --run were given\n", path, fl.n_runs, n_runs);
            tr_fusion_loaded_free(&fl);
            return 2;
        }
        for (int r = 0; !n_runs && r < fl.n_runs; r++)
            run_dirs[r] = fl.runs[r];
        n_runs = fl.n_runs;
    }

    int rc = 1;
    comm_group *g = NULL;
    run_out runs[TR_FUSE_MAX_MODELS] = {{0}};
    char tmp[4096] = "";
    if (keep) {
        snprintf(tmp, sizeof tmp, "%s", keep);
        if (mkdir(tmp, 0755) && errno != EEXIST) {
            fprintf(stderr, "empd predict: cannot create %s: %s\n", tmp, strerror(errno));
            goto done;
        }
    } else {
        const char *base = getenv("TMPDIR");
        snprintf(tmp, sizeof tmp, "%s/empd-predict-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmp)) {
            fprintf(stderr, "empd predict: cannot create a temporary folder %s: %s\n", tmp, strerror(errno));
            tmp[0] = '\0';
            goto done;
        }
    }
    char input[4200];
    if (text) {
        snprintf(input, sizeof input, "%s/input", tmp);
        if ((mkdir(input, 0755) && errno != EEXIST) || write_utterance(input, text, wav, mp4, err, sizeof err)) {
            fprintf(stderr, "empd predict: %s\n", err[0] ? err : strerror(errno));
            goto done;
        }
        data = input;
    }
    if (comm_init(NULL, NULL, &g, err, sizeof err)) {
        fprintf(stderr, "empd predict: %s\n", err);
        goto done;
    }
    tc_set_num_threads(threads ? threads : tr_default_threads(1));
    for (int r = 0; r < n_runs; r++) {
        char enc[4300];
        snprintf(enc, sizeof enc, "%s/run%d", tmp, r);
        runs[r].dir = run_dirs[r];
        if (score_run(g, &runs[r], data, json_file, vocab, enc, err, sizeof err)) {
            fprintf(stderr, "empd predict: %s: %s\n", run_dirs[r], err);
            goto done;
        }
    }
    const int k = runs[0].e.n_classes;
    const int64_t n = runs[0].e.n;
    for (int r = 1; r < n_runs; r++)
        if (runs[r].e.n_classes != k || runs[r].e.n != n) {
            fprintf(stderr, "empd predict: %s: %d classes and %lld samples, but %s has %d and %lld\n", run_dirs[r],
                    runs[r].e.n_classes, (long long)runs[r].e.n, run_dirs[0], k, (long long)n);
            goto done;
        }
    if (have_fusion && fl.n_classes != k) {
        fprintf(stderr, "empd predict: the fusion has %d classes, the runs %d\n", fl.n_classes, k);
        goto done;
    }
    const char *const *names = tr_class_names(k);
    tr_fusion avg = {.n_models = n_runs, .k = k};
    const tr_fusion *fit = have_fusion ? &fl.fit : &avg;
    tr_fuse_method method = have_fusion ? fl.method : TR_FUSE_AVERAGE;
    cJSON *doc = as_json ? cJSON_CreateObject() : NULL, *list = NULL;
    if (doc) {
        cJSON_AddStringToObject(doc, "method", n_runs == 1 && !have_fusion ? "single" : tr_fuse_method_name(method));
        list = cJSON_AddArrayToObject(doc, "predictions");
    } else {
        printf("%-12s %-10s %-10s", "id", "label", "predicted");
        for (int cc = 0; cc < k; cc++)
            printf(" %9.9s", names ? names[cc] : "?");
        printf("\n");
    }
    for (int64_t i = 0; i < n; i++) {
        const double *p[TR_FUSE_MAX_MODELS];
        double out[TR_MAX_CLASSES];
        for (int r = 0; r < n_runs; r++)
            p[r] = runs[r].e.probs + (size_t)i * (size_t)k;
        tr_fuse_apply(fit, method, p, out);
        int best = 0;
        for (int cc = 1; cc < k; cc++)
            best = out[cc] > out[best] ? cc : best;
        const int64_t label = runs[0].e.label[i];
        const char *id = runs[0].ids.v[i];
        if (doc) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(list, o);
            cJSON_AddStringToObject(o, "id", id);
            cJSON_AddStringToObject(o, "label", names ? names[best] : "?");
            if (label >= 0)
                cJSON_AddStringToObject(o, "true_label", names ? names[label] : "?");
            cJSON *probs = cJSON_AddObjectToObject(o, "probabilities");
            for (int cc = 0; cc < k; cc++) {
                char num[40];
                snprintf(num, sizeof num, "%.17g", out[cc]);
                cJSON_AddRawToObject(probs, names ? names[cc] : "?", num);
            }
            cJSON *per = cJSON_AddArrayToObject(o, "runs");
            for (int r = 0; r < n_runs; r++) {
                cJSON *ro = cJSON_CreateObject();
                cJSON_AddItemToArray(per, ro);
                cJSON_AddStringToObject(ro, "run", run_dirs[r]);
                cJSON *pr = cJSON_AddObjectToObject(ro, "probabilities");
                for (int cc = 0; cc < k; cc++) {
                    char num[40];
                    snprintf(num, sizeof num, "%.17g", p[r][cc]);
                    cJSON_AddRawToObject(pr, names ? names[cc] : "?", num);
                }
            }
        } else {
            printf("%-12s %-10s %-10s", id, label >= 0 && names ? names[label] : "-", names ? names[best] : "?");
            for (int cc = 0; cc < k; cc++)
                printf(" %9.4f", out[cc]);
            printf("\n");
        }
    }
    if (doc) {
        char *s = cJSON_Print(doc);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(doc);
    }
    rc = 0;
done:
    for (int r = 0; r < n_runs; r++) {
        if (runs[r].have_eval)
            tr_eval_free(&runs[r].e);
        if (runs[r].have_cfg)
            tr_config_free(&runs[r].cfg);
        ds_strv_free(&runs[r].ids);
    }
    if (have_fusion)
        tr_fusion_loaded_free(&fl);
    if (g) {
        char ferr[256];
        comm_finalize(g, ferr, sizeof ferr);
    }
    if (tmp[0] && !keep)
        nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
