/* The recipe's losses (trainer/loss.h) against torch: cross-entropy and focal loss, with and without
 * class weights, their values and their gradients with respect to the logits. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "trainer/loss.h"
#include "trainer_unit_test.h"

enum { N = 9, C = 7 };

/* The same logits, targets and weights as the reference below. */
static float logit_at(int i, int c) { return (float)(3.0 * sin(0.7 * i + 1.3 * c)); }
static int64_t target_at(int i) { return (i * 5 + 2) % C; }
static float weight_at(int c) { return (float)(0.5 + 0.25 * c); }

static const char *const ref =
    "import math, sys, torch\n"
    "import torch.nn.functional as F\n"
    "N, C = 9, 7\n"
    "x = torch.tensor([[3.0 * math.sin(0.7 * i + 1.3 * c) for c in range(C)] for i in range(N)], dtype=torch.float32)\n"
    "y = torch.tensor([(i * 5 + 2) % C for i in range(N)])\n"
    "w = torch.tensor([0.5 + 0.25 * c for c in range(C)], dtype=torch.float32)\n"
    "def focal(x, y, gamma, w):\n"
    "    ce = F.cross_entropy(x, y, reduction='none')\n"
    "    fl = (1 - torch.exp(-ce)) ** gamma * ce\n"
    "    return fl.mean() if w is None else (w[y] * fl).sum() / w[y].sum()\n"
    "cases = [lambda x: F.cross_entropy(x, y), lambda x: F.cross_entropy(x, y, weight=w),\n"
    "         lambda x: focal(x, y, 2.0, None), lambda x: focal(x, y, 2.0, w), lambda x: focal(x, y, 0.0, None),\n"
    "         lambda x: focal(x, y, 0.5, w)]\n"
    "for f in cases:\n"
    "    xx = x.clone().requires_grad_(True)\n"
    "    l = f(xx)\n"
    "    l.backward()\n"
    "    print(' '.join(repr(v) for v in [l.item()] + xx.grad.flatten().tolist()))\n";

void test_loss_vs_torch(void **state)
{
    (void)state;
    static const struct {
        int kind, weighted;
        double gamma;
    } cases[] = {{TR_LOSS_CE, 0, 0}, {TR_LOSS_CE, 1, 0}, {TR_LOSS_FOCAL, 0, 2},
                 {TR_LOSS_FOCAL, 1, 2}, {TR_LOSS_FOCAL, 0, 0}, {TR_LOSS_FOCAL, 1, 0.5}};
    char script[64], cmd[256];
    assert_int_equal(tf_make_temp_dir(script, "test_trainer_unit"), 0);
    char dir[64];
    snprintf(dir, sizeof dir, "%s", script);
    strcat(script, "/ref.py");
    tf_write_text(script, ref);
    snprintf(cmd, sizeof cmd, "%s %s", EMPD_PYTHON, script);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    float logits[N * C];
    int64_t y[N];
    for (int i = 0; i < N; i++) {
        y[i] = target_at(i);
        for (int c = 0; c < C; c++)
            logits[i * C + c] = logit_at(i, c);
    }
    double worst = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        double want[1 + N * C];
        for (int j = 0; j < 1 + N * C; j++)
            assert_int_equal(fscanf(p, "%lf", &want[j]), 1);
        tr_loss l = {.kind = cases[k].kind, .gamma = cases[k].gamma, .n_classes = C, .weighted = cases[k].weighted};
        for (int c = 0; c < C; c++)
            l.weights[c] = weight_at(c);
        tc_scope *s = tc_scope_begin();
        tc_tensor *x = tc_clone(tc_from_blob(logits, (int64_t[]){N, C}, 2, TC_F32));
        tc_set_requires_grad(x, 1);
        tc_tensor *loss = tr_loss_forward(&l, x, tc_from_blob(y, (int64_t[]){N}, 1, TC_I64));
        assert_non_null(loss);
        assert_int_equal(tc_backward(loss), TC_OK);
        const float *g = tc_data_ptr(tc_grad(x));
        double got = tc_item(loss), err = fabs(got - want[0]) / fabs(want[0]), gmax = 0, gerr = 0;
        for (int j = 0; j < N * C; j++) {
            gmax = fmax(gmax, fabs(want[1 + j]));
            gerr = fmax(gerr, fabs(g[j] - want[1 + j]));
        }
        assert_int_equal(tc_scope_end(s), TC_OK);
        printf("loss case %zu (kind %d, weighted %d, gamma %g): loss %.8g vs torch %.8g (rel %.2g), grad rel %.2g\n", k,
               cases[k].kind, cases[k].weighted, cases[k].gamma, got, want[0], err, gerr / gmax);
        worst = fmax(worst, fmax(err, gerr / gmax));
    }
    pclose(p);
    tf_remove_tree(dir);
    assert_true(worst < 1e-5);
}
