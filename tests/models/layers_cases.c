/* models/layers.h against torch.nn (ref_layers.py): every layer's outputs, the gradient of every
 * parameter and of the differentiable inputs, for modules whose state_dict torch loads, strict, from
 * our parameter names. One python process serves the whole group: the group setup builds every layer,
 * writes all parameters and inputs to one file and runs the reference before any of our forwards
 * (BatchNorm's running statistics change in place). Each test then runs its layers and compares.
 * The default initialisers are checked against torch's bounds and against the draws of torch's own
 * modules' reset_parameters() for the same shapes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "models/layers.h"
#include "tests/models/models_test.h"

#define CPU ((tc_device){TC_CPU, 0})
#define TOL 1e-4
#define MAX_INPUTS 64

enum {
    L_LIN, L_LIN_NB, L_EMB, L_LN, L_GN, L_BN, L_BN2, L_DROP, L_MLP_RELU, L_MLP_GELU, L_MLP_GELU_TANH,
    L_MLP_TANH, L_MLP_NONE, L_CONV1D_A, L_CONV1D_B, L_CONV1D_DW, L_CONV2D, L_CONV2D_NB, L_MHA1, L_MHA2,
    L_MHA4, L_MHA_KV, L_MHA_PAD, L_MHA_DROP, L_LSTM, L_LSTM1, L_POOL, L_MEAN, L_INIT, N_LAYERS
};

/* Prefix and ref_layers.py spec of each layer; the spec must describe what setup_layers builds (a
 * mismatch fails torch's strict load). */
static const char *const SPEC[N_LAYERS][2] = {
    [L_LIN] = {"lin", "linear in=6 out=5 bias=1"},
    [L_LIN_NB] = {"lin_nb", "linear in=6 out=5 bias=0"},
    [L_EMB] = {"emb", "embedding num=11 dim=5"},
    [L_LN] = {"ln", "layer_norm dim=8 eps=1e-05"},
    [L_GN] = {"gn", "group_norm groups=3 channels=6 eps=1e-05"},
    [L_BN] = {"bn", "batch_norm channels=4 eps=1e-05 momentum=0.1"},
    [L_BN2] = {"bn2", "batch_norm channels=3 eps=0.001 momentum=0.3"},
    [L_DROP] = {"drop", "dropout p=0.3 seed=7"},
    [L_MLP_RELU] = {"mlp_relu", "mlp dims=6,10,8,3 act=relu dropout=0.25 act_last=0 seed=5"},
    [L_MLP_GELU] = {"mlp_gelu", "mlp dims=5,7,4 act=gelu dropout=0.1 act_last=1"},
    [L_MLP_GELU_TANH] = {"mlp_gelu_tanh", "mlp dims=5,6 act=gelu_tanh dropout=0.0 act_last=1"},
    [L_MLP_TANH] = {"mlp_tanh", "mlp dims=4,6,2 act=tanh dropout=0.0 act_last=0"},
    [L_MLP_NONE] = {"mlp_none", "mlp dims=4,3,2 act=none dropout=0.0 act_last=1"},
    [L_CONV1D_A] = {"conv1d_a", "conv1d in=4 out=6 kernel=3 stride=2 padding=1 dilation=2 groups=2 bias=1"},
    [L_CONV1D_B] = {"conv1d_b", "conv1d in=3 out=5 kernel=4 stride=1 padding=0 dilation=1 groups=1 bias=0"},
    [L_CONV1D_DW] = {"conv1d_dw", "conv1d in=4 out=8 kernel=5 stride=1 padding=2 dilation=1 groups=4 bias=1"},
    [L_CONV2D] = {"conv2d", "conv2d in=3 out=8 kernel=4 stride=4 bias=1"},
    [L_CONV2D_NB] = {"conv2d_nb", "conv2d in=2 out=4 kernel=3 stride=2 bias=0"},
    [L_MHA1] = {"mha1", "mha embed=8 heads=1"},
    [L_MHA2] = {"mha2", "mha embed=8 heads=2"},
    [L_MHA4] = {"mha4", "mha embed=8 heads=4"},
    [L_MHA_KV] = {"mha_kv", "mha embed=8 heads=2"},
    [L_MHA_PAD] = {"mha_pad", "mha embed=8 heads=2"},
    [L_MHA_DROP] = {"mha_drop", "mha embed=8 heads=2 dropout=0.2 training=1 seed=9"},
    [L_LSTM] = {"lstm", "lstm input=5 hidden=6 layers=2 bidirectional=1"},
    [L_LSTM1] = {"lstm1", "lstm input=5 hidden=4 layers=1 bidirectional=0"},
    [L_POOL] = {"pool", "attn_pool embed=6"},
    [L_MEAN] = {"mean", "masked_mean"},
    [L_INIT] = {"init", NULL},
};

/* The default-initialised modules of the init checks (unperturbed, prefix "init."). */
typedef struct {
    ml_linear lin;
    ml_conv1d conv1d;
    ml_conv2d conv2d;
    ml_lstm lstm;
    ml_mha mha;
    ml_embedding emb;
    ml_layer_norm ln;
    ml_group_norm gn;
    ml_batch_norm bn;
    ml_attn_pool pool;
    ml_mlp mlp;
} init_mods;

/* Mixed lengths, unsorted, one of 1; a pooling mask with an empty row. */
static const int64_t LEN_LSTM[4] = {7, 3, 5, 1}, LEN_LSTM1[3] = {2, 6, 4};
static const float VALID_POOL[3 * 5] = {1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1};

static const char *const INIT_SPEC[][2] = {
    {"init.lin", "linear in=64 out=48 bias=1"},
    {"init.conv1d", "conv1d in=8 out=12 kernel=5 stride=1 padding=2 dilation=1 groups=2 bias=1"},
    {"init.conv2d", "conv2d in=3 out=16 kernel=4 stride=4 bias=1"},
    {"init.lstm", "lstm input=16 hidden=32 layers=2 bidirectional=1"},
    {"init.mha", "mha embed=32 heads=4"},
    {"init.emb", "embedding num=100 dim=32"},
    {"init.ln", "layer_norm dim=16 eps=1e-05"},
    {"init.gn", "group_norm groups=4 channels=16 eps=1e-05"},
    {"init.bn", "batch_norm channels=16 eps=1e-05 momentum=0.1"},
    {"init.pool", "attn_pool embed=64"},
    {"init.mlp", "mlp dims=64,32,8 act=relu dropout=0.0 act_last=0"},
};
#define N_INIT (int)(sizeof INIT_SPEC / sizeof INIT_SPEC[0])

static void init_build(mp_params *ps, uint64_t seed, init_mods *m) {
    assert_int_equal(mp_params_init(ps, seed), TC_OK);
    ml_linear_init_default(&m->lin, ps, "init.lin", 64, 48, 1);
    ml_conv1d_init(&m->conv1d, ps, "init.conv1d", 8, 12, 5, 1, 2, 1, 2, 1);
    ml_conv2d_init(&m->conv2d, ps, "init.conv2d", 3, 16, 4, 4, 1);
    ml_lstm_init(&m->lstm, ps, "init.lstm", 16, 32, 2, 1, 0.0);
    ml_mha_init(&m->mha, ps, "init.mha", 32, 4, 0.0);
    ml_embedding_init(&m->emb, ps, "init.emb", 100, 32, 1.0);
    ml_layer_norm_init(&m->ln, ps, "init.ln", 16, 1e-5);
    ml_group_norm_init(&m->gn, ps, "init.gn", 4, 16, 1e-5);
    ml_batch_norm_init(&m->bn, ps, "init.bn", 16, 1e-5, 0.1);
    ml_attn_pool_init(&m->pool, ps, "init.pool", 64);
    ml_mlp_init(&m->mlp, ps, "init.mlp", (const int64_t[]){64, 32, 8}, 3, ML_ACT_RELU, 0.0, 0);
    assert_int_equal(ps->status, TC_OK);
}

static struct {
    mp_params ps[N_LAYERS];
    ml_linear lin, lin_nb;
    ml_embedding emb;
    ml_layer_norm ln;
    ml_group_norm gn;
    ml_batch_norm bn, bn2;
    ml_mlp mlp[5]; /* L_MLP_RELU.. L_MLP_NONE */
    ml_conv1d conv1d[3];
    ml_conv2d conv2d[2];
    ml_mha mha[6]; /* L_MHA1.. L_MHA_DROP */
    ml_lstm lstm, lstm1;
    ml_attn_pool pool;
    init_mods init;
    tc_scope *inputs; /* the inputs live here from setup to teardown */
    char in_name[MAX_INPUTS][48];
    tc_tensor *in[MAX_INPUTS];
    int n_in;
    double err[N_LAYERS][3]; /* worst outputs, parameter gradients, input gradients; -1 unchecked */
    tm_ref ref;
} F;

/* "in.<layer's prefix>.<leaf>" */
static void input_name(char *buf, size_t size, int layer, const char *leaf) {
    snprintf(buf, size, "in.%s.%s", SPEC[layer][0], leaf);
}

static void add_input(int layer, const char *leaf, tc_tensor *t, int grad) {
    assert_non_null(t);
    assert_true(F.n_in < MAX_INPUTS);
    if (grad) assert_int_equal(tc_set_requires_grad(t, 1), TC_OK);
    input_name(F.in_name[F.n_in], sizeof F.in_name[F.n_in], layer, leaf);
    F.in[F.n_in++] = t;
}

/* f32 [rows, cols] from a 0/1 pattern. */
static tc_tensor *mask(const float *v, int64_t rows, int64_t cols) {
    return tc_from_data(v, (const int64_t[]){rows, cols}, 2, TC_F32);
}

static tc_tensor *in(int layer, const char *leaf) {
    char name[64];
    input_name(name, sizeof name, layer, leaf);
    for (int i = 0; i < F.n_in; i++)
        if (!strcmp(F.in_name[i], name)) return F.in[i];
    fail_msg("no input %s", name);
    return NULL;
}

/* The layers of the comparisons, perturbed off their initial values so every parameter matters. */
static void setup_layers(void) {
    for (int i = 0; i < L_INIT; i++) assert_int_equal(mp_params_init(&F.ps[i], 100 + (uint64_t)i), TC_OK);
    ml_linear_init_default(&F.lin, &F.ps[L_LIN], "lin", 6, 5, 1);
    ml_linear_init_default(&F.lin_nb, &F.ps[L_LIN_NB], "lin_nb", 6, 5, 0);
    ml_embedding_init(&F.emb, &F.ps[L_EMB], "emb", 11, 5, 1.0);
    ml_layer_norm_init(&F.ln, &F.ps[L_LN], "ln", 8, 1e-5);
    ml_group_norm_init(&F.gn, &F.ps[L_GN], "gn", 3, 6, 1e-5);
    ml_batch_norm_init(&F.bn, &F.ps[L_BN], "bn", 4, 1e-5, 0.1);
    ml_batch_norm_init(&F.bn2, &F.ps[L_BN2], "bn2", 3, 1e-3, 0.3);
    ml_mlp_init(&F.mlp[0], &F.ps[L_MLP_RELU], "mlp_relu", (const int64_t[]){6, 10, 8, 3}, 4, ML_ACT_RELU, 0.25, 0);
    ml_mlp_init(&F.mlp[1], &F.ps[L_MLP_GELU], "mlp_gelu", (const int64_t[]){5, 7, 4}, 3, ML_ACT_GELU, 0.1, 1);
    ml_mlp_init(&F.mlp[2], &F.ps[L_MLP_GELU_TANH], "mlp_gelu_tanh", (const int64_t[]){5, 6}, 2, ML_ACT_GELU_TANH,
                0.0, 1);
    ml_mlp_init(&F.mlp[3], &F.ps[L_MLP_TANH], "mlp_tanh", (const int64_t[]){4, 6, 2}, 3, ML_ACT_TANH, 0.0, 0);
    ml_mlp_init(&F.mlp[4], &F.ps[L_MLP_NONE], "mlp_none", (const int64_t[]){4, 3, 2}, 3, ML_ACT_NONE, 0.0, 1);
    ml_conv1d_init(&F.conv1d[0], &F.ps[L_CONV1D_A], "conv1d_a", 4, 6, 3, 2, 1, 2, 2, 1);
    ml_conv1d_init(&F.conv1d[1], &F.ps[L_CONV1D_B], "conv1d_b", 3, 5, 4, 1, 0, 1, 1, 0);
    ml_conv1d_init(&F.conv1d[2], &F.ps[L_CONV1D_DW], "conv1d_dw", 4, 8, 5, 1, 2, 1, 4, 1);
    ml_conv2d_init(&F.conv2d[0], &F.ps[L_CONV2D], "conv2d", 3, 8, 4, 4, 1);
    ml_conv2d_init(&F.conv2d[1], &F.ps[L_CONV2D_NB], "conv2d_nb", 2, 4, 3, 2, 0);
    static const int heads[6] = {1, 2, 4, 2, 2, 2};
    for (int i = 0; i < 6; i++)
        ml_mha_init(&F.mha[i], &F.ps[L_MHA1 + i], SPEC[L_MHA1 + i][0], 8, heads[i], i == 5 ? 0.2 : 0.0);
    ml_lstm_init(&F.lstm, &F.ps[L_LSTM], "lstm", 5, 6, 2, 1, 0.0);
    ml_lstm_init(&F.lstm1, &F.ps[L_LSTM1], "lstm1", 5, 4, 1, 0, 0.0);
    ml_attn_pool_init(&F.pool, &F.ps[L_POOL], "pool", 6);
    for (int i = 0; i < L_INIT; i++) {
        assert_int_equal(F.ps[i].status, TC_OK);
        tm_perturb(&F.ps[i], 300 + (uint64_t)i, 0.1);
    }
    init_build(&F.ps[L_INIT], 11, &F.init);
}

/* The N(0, 1) inputs, all differentiable. */
static const struct {
    int layer;
    const char *leaf;
    int ndim;
    int64_t shape[4];
} RANDN[] = {
    {L_LIN, "x", 3, {3, 4, 6}}, {L_LIN_NB, "x", 2, {7, 6}}, {L_LN, "x", 3, {3, 4, 8}}, {L_GN, "x", 3, {2, 6, 5}},
    {L_BN, "x_train", 3, {5, 4, 3}}, {L_BN, "x_eval", 3, {2, 4, 3}}, {L_BN2, "x_train", 2, {6, 3}},
    {L_BN2, "x_eval", 2, {4, 3}}, {L_DROP, "x", 2, {4, 50}}, {L_MLP_RELU, "x", 2, {4, 6}},
    {L_MLP_GELU, "x", 2, {3, 5}}, {L_MLP_GELU_TANH, "x", 2, {3, 5}}, {L_MLP_TANH, "x", 2, {3, 4}},
    {L_MLP_NONE, "x", 2, {3, 4}}, {L_CONV1D_A, "x", 3, {2, 4, 11}}, {L_CONV1D_B, "x", 3, {2, 3, 9}},
    {L_CONV1D_DW, "x", 3, {2, 4, 10}}, {L_CONV2D, "x", 4, {2, 3, 8, 12}}, {L_CONV2D_NB, "x", 4, {1, 2, 7, 9}},
    {L_MHA1, "x", 3, {2, 5, 8}}, {L_MHA2, "x", 3, {3, 4, 8}}, {L_MHA4, "q", 3, {3, 4, 8}}, {L_MHA4, "k", 3, {3, 6, 8}},
    {L_MHA4, "v", 3, {3, 6, 8}}, {L_MHA_KV, "q", 3, {2, 3, 8}}, {L_MHA_KV, "k", 3, {2, 5, 8}},
    {L_MHA_PAD, "x", 3, {3, 4, 8}}, {L_MHA_DROP, "x", 3, {2, 5, 8}}, {L_LSTM, "x", 3, {4, 7, 5}},
    {L_LSTM1, "x", 3, {3, 6, 5}}, {L_POOL, "x", 3, {3, 5, 6}}, {L_MEAN, "x", 3, {3, 5, 6}},
};

static void setup_inputs(void) {
    static const float valid_mha1[2 * 5] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    static const float valid_mha4[3 * 6] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 1, 0, 1};
    static const float valid_pad[3 * 4] = {1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0};
    int64_t ids[3 * 4];
    for (int i = 0; i < 12; i++) ids[i] = (i * 7 + 3) % 11;
    tc_generator *g = tc_generator_new(2024, CPU);
    F.inputs = tc_scope_new();
    assert_int_equal(tc_scope_enter(F.inputs), TC_OK);
    for (size_t i = 0; i < sizeof RANDN / sizeof RANDN[0]; i++)
        add_input(RANDN[i].layer, RANDN[i].leaf, tc_randn(RANDN[i].shape, RANDN[i].ndim, 0.0, 1.0, g), 1);
    add_input(L_EMB, "ids", tc_from_data(ids, (const int64_t[]){3, 4}, 2, TC_I64), 0);
    add_input(L_MHA1, "key_valid", mask(valid_mha1, 2, 5), 0);
    add_input(L_MHA4, "key_valid", mask(valid_mha4, 3, 6), 0);
    add_input(L_MHA_PAD, "key_valid", mask(valid_pad, 3, 4), 0);
    add_input(L_LSTM, "lengths", tc_from_data(LEN_LSTM, (const int64_t[]){4}, 1, TC_I64), 0);
    add_input(L_LSTM1, "lengths", tc_from_data(LEN_LSTM1, (const int64_t[]){3}, 1, TC_I64), 0);
    add_input(L_POOL, "valid", mask(VALID_POOL, 3, 5), 0);
    add_input(L_MEAN, "valid", mask(VALID_POOL, 3, 5), 0);
    assert_int_equal(tc_scope_status(F.inputs), TC_OK);
    assert_int_equal(tc_scope_leave(F.inputs), TC_OK);
    tc_generator_free(g);
}

static int group_setup(void **state) {
    (void)state;
    memset(&F, 0, sizeof F);
    for (int i = 0; i < N_LAYERS; i++) F.err[i][0] = F.err[i][1] = F.err[i][2] = -1;
    setup_layers();
    setup_inputs();
    const char *meta[2 * (N_LAYERS + N_INIT)];
    int n_meta = 0;
    for (int i = 0; i < N_LAYERS + N_INIT; i++) {
        const char *const *spec = i < N_LAYERS ? SPEC[i] : INIT_SPEC[i - N_LAYERS];
        if (spec[1]) {
            meta[2 * n_meta] = spec[0];
            meta[2 * n_meta++ + 1] = spec[1];
        }
    }
    int n = F.n_in;
    for (int i = 0; i < N_LAYERS; i++) n += F.ps[i].n;
    const char **names = calloc((size_t)n, sizeof *names);
    tc_tensor **ts = calloc((size_t)n, sizeof *ts);
    int k = 0;
    for (int i = 0; i < N_LAYERS; i++)
        for (int j = 0; j < F.ps[i].n; j++, k++) {
            names[k] = F.ps[i].v[j].name;
            ts[k] = F.ps[i].v[j].t;
        }
    for (int i = 0; i < F.n_in; i++, k++) {
        names[k] = F.in_name[i];
        ts[k] = F.in[i];
    }
    tm_ref_run(&F.ref, "ref_layers.py", "layers", NULL, names, ts, n, meta, n_meta);
    free(names);
    free(ts);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    printf("layers: worst normalised error per layer (outputs, parameter grads, input grads; - = none)\n");
    for (int i = 0; i < L_INIT; i++) {
        char cell[3][16];
        for (int c = 0; c < 3; c++)
            snprintf(cell[c], sizeof cell[c], F.err[i][c] < 0 ? "-" : "%.2g", F.err[i][c]);
        printf("layers: %-14s %-9s %-9s %s\n", SPEC[i][0], cell[0], cell[1], cell[2]);
    }
    tm_ref_close(&F.ref);
    tc_scope_free(F.inputs);
    for (int i = 0; i < N_LAYERS; i++) mp_params_free(&F.ps[i]);
    return 0;
}

static void note(int layer, int what, double e) {
    if (e > F.err[layer][what]) F.err[layer][what] = e;
}

/* sum(y * w), w the fixed index hash of ref_layers.py's loss_weight. */
static tc_tensor *weighted(tc_tensor *y) {
    int64_t n = tc_numel(y), shape[TC_MAX_DIMS];
    assert_true(n > 0);
    float *w = malloc((size_t)n * sizeof *w);
    for (int64_t i = 0; i < n; i++) {
        uint64_t h = ((uint64_t)(i + 1) * 2654435761u) & 0xffffffffu;
        w[i] = (float)((double)h / 4294967296.0 - 0.5);
    }
    for (int d = 0; d < tc_ndim(y); d++) shape[d] = tc_size(y, d);
    tc_tensor *r = tc_sum_all(tc_mul(y, tc_from_data(w, shape, tc_ndim(y), TC_F32)));
    free(w);
    return r;
}

static void backward(tc_scope *s, tc_tensor *const *ys, int n) {
    tc_tensor *loss = weighted(ys[0]);
    for (int i = 1; i < n; i++) loss = tc_add(loss, weighted(ys[i]));
    assert_int_equal(tc_scope_status(s), TC_OK);
    assert_int_equal(tc_backward(loss), TC_OK);
}

static void check_out(int layer, const char *out, tc_tensor *got) {
    char name[96];
    snprintf(name, sizeof name, "out.%s.%s", SPEC[layer][0], out);
    note(layer, 0, tm_check(SPEC[layer][0], got, &F.ref, name, TOL));
}

static void check_grads(int layer, const char *const *noise) {
    note(layer, 1, tm_check_grads(SPEC[layer][0], &F.ps[layer], &F.ref, TOL, noise));
}

static void check_input_grad(int layer, const char *leaf) {
    char name[96];
    snprintf(name, sizeof name, "grad.in.%s.%s", SPEC[layer][0], leaf);
    note(layer, 2, tm_check(SPEC[layer][0], tc_grad(in(layer, leaf)), &F.ref, name, TOL));
}

/* The output y, every parameter's gradient and x's gradient of a layer with input x. */
static void check_xy(int layer, tc_tensor *y) {
    check_out(layer, "y", y);
    check_grads(layer, NULL);
    check_input_grad(layer, "x");
}

static void test_linear_embedding(void **state) {
    (void)state;
    tc_scope *s = tc_scope_begin();
    tc_tensor *y = ml_linear_forward(&F.lin, in(L_LIN, "x"));
    tc_tensor *y_nb = ml_linear_forward(&F.lin_nb, in(L_LIN_NB, "x"));
    tc_tensor *e = ml_embedding_forward(&F.emb, in(L_EMB, "ids"));
    backward(s, (tc_tensor *[]){y, y_nb, e}, 3);
    check_xy(L_LIN, y);
    check_xy(L_LIN_NB, y_nb);
    check_out(L_EMB, "y", e);
    check_grads(L_EMB, NULL);
    assert_int_equal(tc_scope_end(s), TC_OK);
}

static void test_layer_and_group_norm(void **state) {
    (void)state;
    tc_scope *s = tc_scope_begin();
    tc_tensor *y_ln = ml_layer_norm_forward(&F.ln, in(L_LN, "x"));
    tc_tensor *y_gn = ml_group_norm_forward(&F.gn, in(L_GN, "x"));
    backward(s, (tc_tensor *[]){y_ln, y_gn}, 2);
    check_xy(L_LN, y_ln);
    check_xy(L_GN, y_gn);
    assert_int_equal(tc_scope_end(s), TC_OK);
}

/* A training step (batch statistics, running ones updated in place), then evaluation with the
 * updated running statistics: [N, C, L] and [N, C] inputs. */
static void test_batch_norm(void **state) {
    (void)state;
    tc_scope *s = tc_scope_begin();
    const ml_batch_norm *bn[2] = {&F.bn, &F.bn2};
    tc_tensor *y[4];
    for (int i = 0; i < 2; i++) {
        y[2 * i] = ml_batch_norm_forward(bn[i], in(L_BN + i, "x_train"), 1);
        y[2 * i + 1] = ml_batch_norm_forward(bn[i], in(L_BN + i, "x_eval"), 0);
    }
    backward(s, y, 4);
    for (int i = 0; i < 2; i++) {
        check_out(L_BN + i, "y_train", y[2 * i]);
        check_out(L_BN + i, "y_eval", y[2 * i + 1]);
        check_out(L_BN + i, "running_mean", bn[i]->running_mean);
        check_out(L_BN + i, "running_var", bn[i]->running_var);
        check_grads(L_BN + i, NULL);
        check_input_grad(L_BN + i, "x_train");
        check_input_grad(L_BN + i, "x_eval");
    }
    assert_int_equal(tc_scope_end(s), TC_OK);
}

static double max_abs_diff(tc_tensor *a, tc_tensor *b) {
    return tc_item(tc_max(tc_reshape(tc_abs(tc_sub(a, b)), (const int64_t[]){-1}, 1), 0, 0));
}

/* tc_dropout with a generator seeded s against F.dropout after torch.manual_seed(s). */
static void test_dropout(void **state) {
    (void)state;
    tc_scope *s = tc_scope_begin();
    tc_generator *g = tc_generator_new(7, CPU);
    tc_tensor *x = in(L_DROP, "x");
    tc_tensor *y = tc_dropout(x, 0.3, 1, g);
    assert_true(max_abs_diff(tc_dropout(x, 0.3, 0, g), x) == 0.0);
    backward(s, &y, 1);
    check_out(L_DROP, "y", y);
    check_input_grad(L_DROP, "x");
    tc_generator_free(g);
    assert_int_equal(tc_scope_end(s), TC_OK);
}

/* ml_mlp against nn.Sequential(Linear, act, Dropout, ...): evaluation for every activation, and
 * training with dropout (our generator seeded as torch's). */
static void test_mlp(void **state) {
    (void)state;
    tc_scope *s = tc_scope_begin();
    tc_generator *g = tc_generator_new(5, CPU);
    tc_tensor *y[6];
    for (int i = 0; i < 5; i++) y[i] = ml_mlp_forward(&F.mlp[i], in(L_MLP_RELU + i, "x"), 0, NULL);
    y[5] = ml_mlp_forward(&F.mlp[0], in(L_MLP_RELU, "x"), 1, g);
    backward(s, y, 6);
    for (int i = 0; i < 5; i++) {
        check_out(L_MLP_RELU + i, "y_eval", y[i]);
        check_grads(L_MLP_RELU + i, NULL);
        check_input_grad(L_MLP_RELU + i, "x");
    }
    check_out(L_MLP_RELU, "y_train", y[5]);
    tc_generator_free(g);
    assert_int_equal(tc_scope_end(s), TC_OK);
}

static void test_convolutions(void **state) {
    (void)state;
    tc_scope *s = tc_scope_begin();
    tc_tensor *y[5];
    for (int i = 0; i < 3; i++) y[i] = ml_conv1d_forward(&F.conv1d[i], in(L_CONV1D_A + i, "x"));
    for (int i = 0; i < 2; i++) y[3 + i] = ml_conv2d_forward(&F.conv2d[i], in(L_CONV2D + i, "x"));
    backward(s, y, 5);
    for (int i = 0; i < 5; i++) check_xy(L_CONV1D_A + i, y[i]);
    assert_int_equal(tc_scope_end(s), TC_OK);
}

/* nn.MultiheadAttention(batch_first=True) with 1, 2 and 4 heads: self-attention with and without
 * key_padding_mask, cross-attention (Lq != Lk) with distinct k and v and with k as v, and training
 * with dropout on the attention weights. */
static void test_mha(void **state) {
    (void)state;
    tc_scope *s = tc_scope_begin();
    tc_generator *g = tc_generator_new(9, CPU);
    tc_tensor *x1 = in(L_MHA1, "x"), *x2 = in(L_MHA2, "x"), *xd = in(L_MHA_DROP, "x"), *kv = in(L_MHA_KV, "k");
    tc_tensor *y[5] = {
        ml_mha_forward(&F.mha[0], x1, x1, x1, in(L_MHA1, "key_valid"), 0, NULL),
        ml_mha_forward(&F.mha[1], x2, x2, x2, NULL, 0, NULL),
        ml_mha_forward(&F.mha[2], in(L_MHA4, "q"), in(L_MHA4, "k"), in(L_MHA4, "v"), in(L_MHA4, "key_valid"), 0,
                       NULL),
        ml_mha_forward(&F.mha[3], in(L_MHA_KV, "q"), kv, kv, NULL, 0, NULL),
        ml_mha_forward(&F.mha[5], xd, xd, xd, NULL, 1, g),
    };
    backward(s, y, 5);
    static const int layer[5] = {L_MHA1, L_MHA2, L_MHA4, L_MHA_KV, L_MHA_DROP};
    for (int i = 0; i < 5; i++) {
        check_out(layer[i], "y", y[i]);
        check_grads(layer[i], NULL);
        if (i == 2 || i == 3) {
            check_input_grad(layer[i], "q");
            check_input_grad(layer[i], "k");
            if (i == 2) check_input_grad(layer[i], "v");
        } else {
            check_input_grad(layer[i], "x");
        }
    }
    tc_generator_free(g);
    assert_int_equal(tc_scope_end(s), TC_OK);
}

/* Sample 1's keys are all padding: torch gives NaN there, ours the uniform average over its keys.
 * Samples 0 and 2 are compared with torch (outputs and gradients), sample 1 with the average. */
static void test_mha_all_padded_row(void **state) {
    (void)state;
    tc_scope *s = tc_scope_begin();
    tc_tensor *x = in(L_MHA_PAD, "x");
    tc_tensor *y = ml_mha_forward(&F.mha[4], x, x, x, in(L_MHA_PAD, "key_valid"), 0, NULL);
    tc_tensor *rows = tc_from_data((const int64_t[]){0, 2}, (const int64_t[]){2}, 1, TC_I64);
    tc_tensor *y_ok = tc_index_select(y, 0, rows), *y_pad = tc_narrow(y, 0, 1, 1);
    backward(s, &y_ok, 1);
    float *h = tm_host_f32(tc_contiguous(y_pad));
    for (int64_t i = 0; i < tc_numel(y_pad); i++) assert_true(isfinite(h[i]));
    free(h);
    check_out(L_MHA_PAD, "y_uniform", y_pad);
    check_xy(L_MHA_PAD, y_ok);
    assert_int_equal(tc_scope_end(s), TC_OK);
}

/* ml_lstm against nn.LSTM(batch_first=True) over pack_padded_sequence(enforce_sorted=False) and
 * pad_packed_sequence(total_length=T): 2 bidirectional layers, and 1 forward layer. */
static void test_lstm(void **state) {
    (void)state;
    tc_scope *s = tc_scope_begin();
    tc_tensor *y = ml_lstm_forward(&F.lstm, in(L_LSTM, "x"), LEN_LSTM, 0, NULL);
    tc_tensor *y1 = ml_lstm_forward(&F.lstm1, in(L_LSTM1, "x"), LEN_LSTM1, 0, NULL);
    backward(s, (tc_tensor *[]){y, y1}, 2);
    check_xy(L_LSTM, y);
    check_xy(L_LSTM1, y1);
    assert_int_equal(tc_scope_end(s), TC_OK);
}

/* What lies past a length changes nothing, comes out as zeros, and lengths outside 1..T are clamped. */
static void test_lstm_padding_invariance(void **state) {
    (void)state;
    tc_scope *s = tc_scope_begin();
    int was = tc_grad_enabled_set(0);
    tc_tensor *x = in(L_LSTM, "x");
    float valid[4 * 7];
    for (int i = 0; i < 4 * 7; i++) valid[i] = (i % 7) < LEN_LSTM[i / 7] ? 1.0f : 0.0f;
    tc_tensor *pad = tc_unsqueeze(tc_add_scalar(tc_neg(tc_from_data(valid, (const int64_t[]){4, 7}, 2, TC_F32)), 1), 2);
    tc_generator *g = tc_generator_new(3, CPU);
    tc_tensor *noise = tc_mul_scalar(tc_randn((const int64_t[]){4, 7, 5}, 3, 0.0, 1.0, g), 10.0);
    tc_tensor *y = ml_lstm_forward(&F.lstm, x, LEN_LSTM, 0, NULL);
    tc_tensor *y_noisy = ml_lstm_forward(&F.lstm, tc_add(x, tc_mul(noise, pad)), LEN_LSTM, 0, NULL);
    assert_true(max_abs_diff(y, y_noisy) == 0.0);
    assert_true(tc_item(tc_sum_all(tc_abs(tc_mul(y, pad)))) == 0.0);
    tc_tensor *x1 = in(L_LSTM1, "x");
    tc_tensor *clamped = ml_lstm_forward(&F.lstm1, x1, (const int64_t[]){0, 9, 4}, 0, NULL);
    assert_true(max_abs_diff(clamped, ml_lstm_forward(&F.lstm1, x1, (const int64_t[]){1, 6, 4}, 0, NULL)) == 0.0);
    printf("lstm: outputs unchanged by padding noise of std 10; lengths 0 and 9 read as 1 and T\n");
    assert_int_equal(tc_scope_status(s), TC_OK);
    tc_generator_free(g);
    tc_grad_enabled_set(was);
    assert_int_equal(tc_scope_end(s), TC_OK);
}

static void test_attn_pool_masked_mean(void **state) {
    (void)state;
    tc_scope *s = tc_scope_begin();
    tc_tensor *valid = in(L_POOL, "valid");
    tc_tensor *pooled = ml_attn_pool_forward(&F.pool, in(L_POOL, "x"), valid);
    tc_tensor *mean = ml_masked_mean(in(L_MEAN, "x"), in(L_MEAN, "valid"));
    backward(s, (tc_tensor *[]){pooled, mean}, 2);
    /* Row 1 has no valid position: both pool to exact zeros. */
    assert_true(tc_item(tc_sum_all(tc_abs(tc_select(pooled, 0, 1)))) == 0.0);
    assert_true(tc_item(tc_sum_all(tc_abs(tc_select(mean, 0, 1)))) == 0.0);
    /* The score bias's exact gradient is 0: softmax ignores a shift shared by every position. */
    check_out(L_POOL, "y", pooled);
    check_grads(L_POOL, (const char *const[]){"score.bias", NULL});
    check_input_grad(L_POOL, "x");
    check_out(L_MEAN, "y", mean);
    check_input_grad(L_MEAN, "x");
    assert_int_equal(tc_scope_end(s), TC_OK);
}

static void test_valid_lengths(void **state) {
    (void)state;
    tc_scope *s = tc_scope_begin();
    int64_t lengths[3] = {-1, -1, -1};
    tc_tensor *valid = in(L_POOL, "valid");
    assert_int_equal(ml_valid_lengths(valid, lengths, 3), TC_OK);
    assert_int_equal(lengths[0], 3);
    assert_int_equal(lengths[1], 0);
    assert_int_equal(lengths[2], 5);
    assert_int_equal(ml_valid_lengths(valid, lengths, 2), TC_EINVAL);
    assert_int_equal(ml_valid_lengths(NULL, lengths, 3), TC_EINVAL);
    assert_int_equal(ml_valid_lengths(tc_select(valid, 0, 0), lengths, 5), TC_EINVAL);
    /* A non-contiguous view is read in its logical order. */
    assert_int_equal(ml_valid_lengths(tc_transpose(tc_contiguous(tc_transpose(valid, 0, 1)), 0, 1), lengths, 3),
                     TC_OK);
    assert_int_equal(lengths[2], 5);
    assert_int_equal(tc_scope_end(s), TC_OK);
}

/* What each default initialiser must draw, by parameter-name prefix. UNI: U(-1/sqrt(a), 1/sqrt(a)),
 * a the fan_in (xavier's bound sqrt(6 / (fan_in + fan_out)) written as a = 4E / 6); NORMAL: N(0, a);
 * CONST: every element a. */
typedef enum { UNI, NORMAL, CONST } init_kind;
static const struct {
    const char *prefix;
    init_kind kind;
    double a;
} EXPECT[] = {
    {"init.lin.", UNI, 64}, {"init.conv1d.", UNI, 8 / 2 * 5}, {"init.conv2d.", UNI, 3 * 4 * 4},
    {"init.lstm.", UNI, 32}, {"init.mha.in_proj_weight", UNI, 4 * 32 / 6.0}, {"init.mha.in_proj_bias", CONST, 0},
    {"init.mha.out_proj.weight", UNI, 32}, {"init.mha.out_proj.bias", CONST, 0}, {"init.emb.", NORMAL, 1},
    {"init.ln.weight", CONST, 1}, {"init.ln.bias", CONST, 0}, {"init.gn.weight", CONST, 1}, {"init.gn.bias", CONST, 0},
    {"init.bn.weight", CONST, 1}, {"init.bn.bias", CONST, 0}, {"init.bn.running_mean", CONST, 0},
    {"init.bn.running_var", CONST, 1}, {"init.pool.", UNI, 64}, {"init.mlp.0.", UNI, 64}, {"init.mlp.1.", UNI, 32},
};

static int expect_of(const char *name) {
    for (size_t i = 0; i < sizeof EXPECT / sizeof EXPECT[0]; i++)
        if (!strncmp(name, EXPECT[i].prefix, strlen(EXPECT[i].prefix))) return (int)i;
    fail_msg("%s: no expected initialisation", name);
    return -1;
}

/* Asserts that v looks drawn as (kind, a) says and writes "max |w| M, std S" to text. A uniform
 * tensor of 200 or more elements must also reach 0.9 of its bound and have a std within 15% of
 * bound / sqrt(3); a normal one a std within 5% and a mean within 4 standard errors of 0. */
static void check_draws(const char *who, const char *name, const float *v, int64_t n, init_kind kind, double a,
                        char *text, size_t size) {
    double mx = 0, sum = 0, sq = 0;
    for (int64_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs((double)v[i]));
        sum += v[i];
        sq += (double)v[i] * v[i];
        if (kind == CONST && v[i] != (float)a)
            fail_msg("%s %s[%ld] = %g, not %g", who, name, (long)i, v[i], a);
    }
    double mean = sum / (double)n, sd = sqrt(fmax(sq / (double)n - mean * mean, 0.0));
    snprintf(text, size, "max |w| %.4f, std %.4f", mx, sd);
    if (kind == UNI) {
        double bound = 1.0 / sqrt(a);
        if (mx > bound * (1 + 1e-6)) fail_msg("%s %s: |w| up to %g, above the bound %g", who, name, mx, bound);
        if (n >= 200 && (mx < 0.9 * bound || fabs(sd * sqrt(3.0) / bound - 1) > 0.15))
            fail_msg("%s %s: max |w| %g, std %g: not U(+-%g)", who, name, mx, sd, bound);
    } else if (kind == NORMAL && (fabs(sd / a - 1) > 0.05 || fabs(mean) > 4 * a / sqrt((double)n))) {
        fail_msg("%s %s: mean %g, std %g: not N(0, %g)", who, name, mean, sd, a);
    }
}

/* Each *_init_default against torch's bounds, and torch's own reset_parameters() draws for the same
 * shapes (written by the reference) against the same bounds. */
static void test_init_default(void **state) {
    (void)state;
    const mp_params *ps = &F.ps[L_INIT];
    for (int i = 0; i < ps->n; i++) {
        const char *name = ps->v[i].name;
        char key[128], ours_text[64], torch_text[64];
        snprintf(key, sizeof key, "torch_init.%s", name);
        const st_tensor *ref = st_find(F.ref.out, key);
        if (!ref) fail_msg("torch's module has no %s", name);
        assert_int_equal(ref->ndim, tc_ndim(ps->v[i].t));
        for (int d = 0; d < ref->ndim; d++) assert_int_equal(ref->shape[d], tc_size(ps->v[i].t, d));
        int e = expect_of(name);
        float *ours = tm_host_f32(ps->v[i].t);
        check_draws("ours", name, ours, tc_numel(ps->v[i].t), EXPECT[e].kind, EXPECT[e].a, ours_text, sizeof ours_text);
        check_draws("torch", name, ref->data, tc_numel(ps->v[i].t), EXPECT[e].kind, EXPECT[e].a, torch_text,
                    sizeof torch_text);
        free(ours);
        const char *kind = EXPECT[e].kind == UNI ? "U(+-b)" : EXPECT[e].kind == NORMAL ? "N(0,s)" : "const";
        double b = EXPECT[e].kind == UNI ? 1.0 / sqrt(EXPECT[e].a) : EXPECT[e].a;
        printf("init: %-28s %-6s %.4f  ours %s; torch %s\n", name, kind, b, ours_text, torch_text);
    }
}

static int same_values(const tc_tensor *a, const tc_tensor *b) {
    float *x = tm_host_f32(a), *y = tm_host_f32(b);
    int same = tc_numel(a) == tc_numel(b) && !memcmp(x, y, (size_t)tc_numel(a) * sizeof *x);
    free(x);
    free(y);
    return same;
}

static void test_init_seeded(void **state) {
    (void)state;
    mp_params a, b, c;
    init_mods ma, mb, mc;
    init_build(&a, 11, &ma);
    init_build(&b, 11, &mb);
    init_build(&c, 12, &mc);
    assert_int_equal(a.n, F.ps[L_INIT].n);
    for (int i = 0; i < a.n; i++) {
        assert_string_equal(a.v[i].name, F.ps[L_INIT].v[i].name);
        assert_true(same_values(a.v[i].t, F.ps[L_INIT].v[i].t));
        assert_true(same_values(a.v[i].t, b.v[i].t));
        assert_int_equal(same_values(a.v[i].t, c.v[i].t), EXPECT[expect_of(a.v[i].name)].kind == CONST);
    }
    mp_params_free(&a);
    mp_params_free(&b);
    mp_params_free(&c);
}

/* The N(0, std) initialisers (BERT's and HF's): weights of that spread, zero biases. */
static void test_init_std(void **state) {
    (void)state;
    mp_params ps;
    ml_linear lin;
    ml_embedding emb;
    assert_int_equal(mp_params_init(&ps, 5), TC_OK);
    assert_int_equal(ml_linear_init(&lin, &ps, "init.lin", 64, 48, 1, 0.02), TC_OK);
    assert_int_equal(ml_embedding_init(&emb, &ps, "init.emb", 100, 32, 0.5), TC_OK);
    const struct {
        tc_tensor *t;
        init_kind kind;
        double a;
    } want[] = {{lin.w, NORMAL, 0.02}, {lin.b, CONST, 0.0}, {emb.w, NORMAL, 0.5}};
    for (int i = 0; i < 3; i++) {
        char text[64];
        float *v = tm_host_f32(want[i].t);
        check_draws("ours", ps.v[i].name, v, tc_numel(want[i].t), want[i].kind, want[i].a, text, sizeof text);
        free(v);
    }
    mp_params_free(&ps);
}

int tm_layers_tests(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_embedding),
        cmocka_unit_test(test_layer_and_group_norm),
        cmocka_unit_test(test_batch_norm),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_mlp),
        cmocka_unit_test(test_convolutions),
        cmocka_unit_test(test_mha),
        cmocka_unit_test(test_mha_all_padded_row),
        cmocka_unit_test(test_lstm),
        cmocka_unit_test(test_lstm_padding_invariance),
        cmocka_unit_test(test_attn_pool_masked_mean),
        cmocka_unit_test(test_valid_lengths),
        cmocka_unit_test(test_init_default),
        cmocka_unit_test(test_init_seeded),
        cmocka_unit_test(test_init_std),
    };
    return cmocka_run_group_tests_name("layers", tests, group_setup, group_teardown);
}
