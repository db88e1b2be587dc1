/* trainer/evaluate.h's scoring and gathering, without a model: the probabilities, predictions and the
 * mean cross-entropy against torch (softmax, argmax, cross_entropy in float64 on the same float logits),
 * the samples placed by index whatever order the ranks delivered them in, and the faults a gather must
 * catch (a sample twice, a sample missing, a rank that failed), in a TCP group of one and in two forked
 * processes forming a TCP group of two. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/trainer_unit/trainer_unit_test.h"
#include "trainer/evaluate.h"

enum { N = 13, C = 7 };

/* The same logits and labels as the reference below: a logit far above the rest (probabilities near
 * 1e-39) in sample 3, a tie for the largest in sample 5, every fourth sample unlabelled. */
static float logit_at(int i, int c) {
    if (i == 3 && c == 2) return 90.0f;
    if (i == 5 && (c == 1 || c == 4)) return 5.0f;
    return (float)(3.0 * sin(0.7 * i + 1.3 * c));
}
static int64_t label_at(int i) { return i % 4 == 3 ? -100 : (i * 5 + 2) % C; }

static const char *const ref =
    "import math, torch\n"
    "import torch.nn.functional as F\n"
    "N, C = 13, 7\n"
    "def logit(i, c):\n"
    "    if i == 3 and c == 2: return 90.0\n"
    "    if i == 5 and c in (1, 4): return 5.0\n"
    "    return 3.0 * math.sin(0.7 * i + 1.3 * c)\n"
    "x = torch.tensor([[logit(i, c) for c in range(C)] for i in range(N)], dtype=torch.float32)\n"
    "y = torch.tensor([-100 if i % 4 == 3 else (i * 5 + 2) % C for i in range(N)])\n"
    "p = torch.softmax(x.double(), dim=1)\n"
    "loss = F.cross_entropy(x.double(), y, ignore_index=-100, reduction='sum') / (y != -100).sum()\n"
    "print(repr(loss.item()))\n"
    "for i in range(N):\n"
    "    print(int(x[i].argmax()), ' '.join(repr(v) for v in p[i].tolist()))\n";

static void fill_logits(float *z, int64_t *y, int64_t *index, const int *which, int count) {
    for (int k = 0; k < count; k++) {
        int i = which[k];
        index[k] = i;
        y[k] = label_at(i);
        for (int c = 0; c < C; c++) z[k * C + c] = logit_at(i, c);
    }
}

/* Scores the samples `which` into a. */
static int add_samples(tr_eval_acc *a, const int *which, int count, char *err, size_t errlen) {
    float z[N * C];
    int64_t y[N], index[N];
    fill_logits(z, y, index, which, count);
    return tr_eval_acc_add(a, z, y, index, (size_t)count, err, errlen);
}

static comm_group *group_of_one(void) {
    static const char *const vars[] = {"RANK", "WORLD_SIZE", "MASTER_ADDR", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE",
                                       "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
    setenv("EMPD_COMM", "tcp", 1);
    comm_group *g = NULL;
    char err[512];
    if (comm_init(NULL, NULL, &g, err, sizeof err)) fprintf(stderr, "%s\n", err);
    assert_non_null(g);
    return g;
}

void test_eval_vs_torch(void **state) {
    (void)state;
    char dir[64], script[128], cmd[256], err[512];
    assert_int_equal(tf_make_temp_dir(dir, "test_trainer_unit"), 0);
    snprintf(script, sizeof script, "%s/ref.py", dir);
    tf_write_text(script, ref);
    snprintf(cmd, sizeof cmd, "%s %s", EMPD_PYTHON, script);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    double want_loss, want_p[N * C];
    int want_pred[N];
    assert_int_equal(fscanf(p, "%lf", &want_loss), 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(fscanf(p, "%d", &want_pred[i]), 1);
        for (int c = 0; c < C; c++) assert_int_equal(fscanf(p, "%lf", &want_p[i * C + c]), 1);
    }
    assert_int_equal(pclose(p), 0);
    tf_remove_tree(dir);

    /* Two "ranks'" deliveries, out of order, into room for 16 (the padding rows stay unused). */
    comm_group *g = group_of_one();
    tr_eval_acc a;
    assert_int_equal(tr_eval_acc_init(&a, C, 16, err, sizeof err), 0);
    static const int late[] = {8, 9, 10, 11, 12}, early[] = {4, 5, 6, 7, 0, 1, 2, 3};
    assert_int_equal(add_samples(&a, late, 5, err, sizeof err), 0);
    assert_int_equal(add_samples(&a, early, 8, err, sizeof err), 0);
    tr_eval e;
    if (tr_eval_acc_finish(g, &a, 0, N, &e, err, sizeof err)) fprintf(stderr, "%s\n", err);
    assert_int_equal(e.n, N);
    assert_int_equal(e.n_classes, C);
    double worst = 0, pmax = 0;
    int64_t confusion[C * C] = {0}, labelled = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(e.pred[i], want_pred[i]);
        assert_int_equal(e.label[i], label_at(i) < 0 ? -1 : label_at(i));
        for (int c = 0; c < C; c++) {
            worst = fmax(worst, fabs(e.probs[i * C + c] - want_p[i * C + c]));
            pmax = fmax(pmax, fabs(want_p[i * C + c]));
        }
        if (label_at(i) >= 0) confusion[label_at(i) * C + want_pred[i]]++, labelled++;
    }
    /* The tiny probabilities too, relative to themselves. */
    assert_true(fabs(e.probs[3 * C] - want_p[3 * C]) <= 1e-12 * want_p[3 * C] && want_p[3 * C] < 1e-30);
    assert_int_equal(e.metrics.total, labelled);
    assert_memory_equal(e.metrics.confusion, confusion, sizeof confusion);
    double loss_err = fabs(e.loss - want_loss) / want_loss;
    /* The mean is the sum over samples over their count, not a mean of per-batch means. */
    assert_true(e.loss == a.loss_sum / a.labelled && a.labelled == (double)labelled);
    printf("evaluate: %d samples, probabilities max |ours - torch| / max|torch| = %.3g, loss rel %.3g\n", N,
           worst / pmax, loss_err);
    assert_true(worst / pmax <= 1e-12 && loss_err <= 1e-12);
    tr_eval_free(&e);
    tr_eval_acc_free(&a);

    /* Metrics only: no per-sample arrays. */
    assert_int_equal(tr_eval_acc_init(&a, C, 0, err, sizeof err), 0);
    assert_int_equal(add_samples(&a, early, 8, err, sizeof err), 0);
    assert_int_equal(tr_eval_acc_finish(g, &a, 0, N, &e, err, sizeof err), 0);
    assert_true(e.probs == NULL && e.label == NULL && e.n == 0 && e.metrics.total > 0);
    tr_eval_acc_free(&a);
    assert_int_equal(comm_finalize(g, err, sizeof err), 0);
}

/* Runs one gather into a fresh accumulator: the samples `which`, optionally a local failure. */
static int gather(comm_group *g, const int *which, int count, int failed, size_t n, tr_eval *e, char *err,
                  size_t errlen) {
    tr_eval_acc a;
    int rc = tr_eval_acc_init(&a, C, 16, err, errlen);
    if (rc == 0) rc = add_samples(&a, which, count, err, errlen);
    rc = tr_eval_acc_finish(g, &a, failed || rc, n, e, err, errlen);
    tr_eval_acc_free(&a);
    return rc;
}

static void expect_fail(int rc, const char *err, const char *part) {
    if (rc != -1 || !strstr(err, part)) {
        fprintf(stderr, "rc %d, err \"%s\", expected \"%s\"\n", rc, err, part);
        fail();
    }
}

void test_eval_gather_faults(void **state) {
    (void)state;
    comm_group *g = group_of_one();
    char err[512];
    tr_eval e;
    static const int twice[] = {0, 1, 2, 1}, some[] = {0, 1, 3}, far[] = {0, 1, 2, 13};
    expect_fail(gather(g, twice, 4, 0, 3, &e, err, sizeof err), err, "sample 1 was scored twice (ranks 0 and 0)");
    expect_fail(gather(g, some, 3, 0, 4, &e, err, sizeof err), err,
                "evaluate: 1 of 4 samples were never scored (the first: sample 2)");
    expect_fail(gather(g, far, 4, 0, 4, &e, err, sizeof err), err, "rank 0 scored sample 13 of a split of 4");
    assert_null(e.probs);
    snprintf(err, sizeof err, "the rank's own line");
    expect_fail(gather(g, some, 3, 1, 4, &e, err, sizeof err), err, "the rank's own line");

    tr_eval_acc a;
    assert_int_equal(tr_eval_acc_init(&a, C, 2, err, sizeof err), 0);
    expect_fail(add_samples(&a, some, 3, err, sizeof err), err, "evaluate: 3 samples scored where 2 were expected");
    float z[C] = {0};
    int64_t y = 7, index = 4;
    expect_fail(tr_eval_acc_add(&a, z, &y, &index, 1, err, sizeof err), err,
                "evaluate: sample 4 has label 7, outside 0..6");
    tr_eval_acc_free(&a);
    expect_fail(tr_eval_acc_init(&a, 33, 0, err, sizeof err), err, "evaluate: 33 classes (2..32 can be scored)");
    assert_int_equal(comm_finalize(g, err, sizeof err), 0);
}

/* A port nobody listens on now. */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len)) return -1;
    close(fd);
    return ntohs(a.sin_port);
}

enum { GATHER_OK, GATHER_TWICE, GATHER_FAILED };

/* One rank of a group of two on split of 11 samples, batch 4: the sampler's slices (rank 0: 0-3 and
 * 8-10, rank 1: 4-7 and only padding in the last step), so the ranks send different counts. Returns the
 * exit status: 0 when the rank saw what it should. */
static int two_rank_child(int rank, int port, int mode) {
    char value[16];
    snprintf(value, sizeof value, "%d", rank);
    setenv("RANK", value, 1);
    snprintf(value, sizeof value, "%d", port);
    setenv("MASTER_PORT", value, 1);
    setenv("WORLD_SIZE", "2", 1);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    setenv("EMPD_COMM", "tcp", 1);
    setenv("EMPD_COMM_TIMEOUT", "30", 1);
    setenv("EMPD_RENDEZVOUS_TIMEOUT", "30", 1);
    comm_group *g = NULL;
    char err[512] = "";
    if (comm_init(NULL, NULL, &g, err, sizeof err)) {
        fprintf(stderr, "rank %d: %s\n", rank, err);
        return 2;
    }
    static const int mine0[] = {0, 1, 2, 3, 8, 9, 10}, mine1[] = {4, 5, 6, 7, 2};
    tr_eval e;
    int count = rank ? (mode == GATHER_TWICE ? 5 : 4) : 7;
    if (mode == GATHER_FAILED && rank == 1) snprintf(err, sizeof err, "rank 1 failed here");
    int rc = gather(g, rank ? mine1 : mine0, count, mode == GATHER_FAILED && rank == 1, 11, &e, err, sizeof err);
    int ok;
    if (mode == GATHER_OK) {
        ok = rc == 0 && e.n == 11;
        for (int i = 0; ok && i < 11; i++) {
            float z[C];
            int64_t y, index;
            fill_logits(z, &y, &index, &i, 1);
            double mx = z[0], sum = 0;
            for (int c = 1; c < C; c++) mx = fmax(mx, z[c]);
            for (int c = 0; c < C; c++) sum += exp((double)z[c] - mx);
            ok = e.label[i] == (y < 0 ? -1 : y) && fabs(e.probs[i * C + 1] - exp((double)z[1] - mx) / sum) < 1e-15;
        }
        ok = ok && e.metrics.total == 9;
        tr_eval_free(&e);
    } else if (mode == GATHER_TWICE) {
        ok = rc == -1 && strstr(err, "sample 2 was scored twice (ranks 0 and 1)");
    } else {
        ok = rc == -1 && strstr(err, rank ? "rank 1 failed here" : "another rank failed");
    }
    if (!ok) fprintf(stderr, "rank %d, mode %d: rc %d, err \"%s\"\n", rank, mode, rc, err);
    comm_finalize(g, err, sizeof err);
    return ok ? 0 : 1;
}

void test_eval_gather_two_ranks(void **state) {
    (void)state;
    for (int mode = GATHER_OK; mode <= GATHER_FAILED; mode++) {
        int port = free_port();
        assert_true(port > 0);
        fflush(NULL);
        pid_t pid[2];
        for (int r = 0; r < 2; r++) {
            pid[r] = fork();
            assert_true(pid[r] >= 0);
            if (pid[r] == 0) _exit(two_rank_child(r, port, mode));
        }
        for (int r = 0; r < 2; r++) {
            int status = 0;
            assert_int_equal(waitpid(pid[r], &status, 0), pid[r]);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "mode %d: rank %d ended with status %d\n", mode, r, status);
                fail();
            }
        }
    }
    printf("evaluate: 2 ranks (TCP): uneven counts gathered in order; a sample from both ranks and a failed rank "
           "fail on both\n");
}
