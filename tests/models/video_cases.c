/* models/video_vit.h against torch.nn modules (ref_video.py): the joint encoder against
 * nn.Conv2d + nn.TransformerEncoderLayer(norm_first) + nn.LayerNorm, the divided one against a
 * composition of nn.MultiheadAttention, nn.LayerNorm and nn.Linear, on the same weights and u8
 * frames, eval mode: the pooled output and the gradient of every parameter. Also the frames'
 * normalisation against numpy, bad frame shapes, and dropout's train/eval behaviour. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "models/video_vit.h"
#include "tests/models/models_test.h"

#define CPU ((tc_device){TC_CPU, 0})
#define VIDEO_TOL 1e-4
#define N 2

static vv_config small_config(vv_attention attention)
{
    return (vv_config){.image = 64, .frames = 4, .patch = 16, .dim = 32, .heads = 4, .layers = 2, .ffn = 64,
                       .dropout = 0.3, .ln_eps = 1e-5, .attention = attention};
}

static void make_model(mp_params *ps, vv_model *m, const vv_config *cfg, uint64_t seed)
{
    assert_int_equal(mp_params_init(ps, seed), TC_OK);
    assert_int_equal(vv_init(m, ps, "video", cfg), TC_OK);
}

/* u8 frames [n, F, h, w, 3] from a fixed LCG, in the current scope. */
static tc_tensor *make_frames(int64_t n, int64_t f, int64_t h, int64_t w, uint64_t seed)
{
    size_t count = (size_t)(n * f * h * w * 3);
    uint8_t *buf = malloc(count);
    for (size_t i = 0; i < count; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        buf[i] = (uint8_t)(seed >> 56);
    }
    tc_tensor *t = tc_from_data(buf, (const int64_t[]){n, f, h, w, 3}, 5, TC_U8);
    free(buf);
    return t;
}

/* cfg's encoder on n clips, its parameters moved by N(0, perturb) noise, against the reference MODE
 * on the same weights and frames: the pooled output and every gradient, errors printed under label. */
static void compare_config(const char *label, const vv_config *cfg, const char *mode, int params_per_layer,
                           int64_t n, double perturb)
{
    mp_params ps;
    vv_model m;
    char heads[16], eps[32];
    snprintf(heads, sizeof heads, "%lld", (long long)cfg->heads);
    snprintf(eps, sizeof eps, "%.17g", cfg->ln_eps);
    make_model(&ps, &m, cfg, 2025);
    assert_int_equal(ps.n, 6 + params_per_layer * cfg->layers);
    assert_string_equal(ps.v[0].name, "video.patch_embed.weight");
    assert_non_null(mp_find(&ps, "video.layers.1.self_attn.out_proj.weight"));
    assert_string_equal(ps.v[ps.n - 1].name, "video.norm.bias");
    tm_perturb(&ps, 91, perturb);

    tc_scope *s = tc_scope_begin();
    tc_generator *g = tc_generator_new(3, CPU);
    tc_tensor *in[] = {make_frames(n, cfg->frames, cfg->image, cfg->image, 17),
                       tc_randn((const int64_t[]){n, cfg->dim}, 2, 0, 1, g)};
    tc_generator_free(g);
    for (int i = 0; i < ps.n; i++) assert_int_equal(tc_zero_grad(ps.v[i].t), TC_OK);
    tc_tensor *out = vv_forward(&m, in[0], 0, NULL);
    assert_int_equal(tc_scope_status(s), TC_OK);
    assert_int_equal(tc_backward(tc_sum_all(tc_mul(out, in[1]))), TC_OK);

    static const char *const names[] = {"input.frames", "input.w"};
    const char *const meta[] = {"prefix", "video", "heads", heads, "eps", eps};
    tm_ref r;
    tm_ref_run(&r, "ref_video.py", mode, &ps, names, in, 2, meta, 3);
    tm_check(label, out, &r, "out", VIDEO_TOL);
    tm_check_grads(label, &ps, &r, VIDEO_TOL, NULL);
    tm_ref_close(&r);
    assert_int_equal(tc_scope_end(s), TC_OK);
    mp_params_free(&ps);
}

static void check_against_torch(vv_attention attention, const char *mode, int params_per_layer)
{
    const vv_config cfg = small_config(attention);
    compare_config(mode, &cfg, mode, params_per_layer, N, 0.05);
}

static void test_video_joint_vs_torch(void **state)
{
    (void)state;
    check_against_torch(VV_ATTN_JOINT, "joint", 12);
}

static void test_video_divided_vs_torch(void **state)
{
    (void)state;
    check_against_torch(VV_ATTN_DIVIDED, "divided", 18);
}

/* The seed's encoder at its real size (392 tokens in one joint attention) on one clip. The noise
 * is about the layers' own init scale. */
static void test_video_seed_vs_torch(void **state)
{
    (void)state;
    const vv_config cfg = vv_config_seed();
    compare_config("joint seed", &cfg, "joint", 12, 1, 0.02);
}

static void test_video_normalize_vs_numpy(void **state)
{
    (void)state;
    tc_scope *s = tc_scope_begin();
    tc_tensor *frames = make_frames(2, 3, 5, 7, 99);
    tc_tensor *pixels = vv_normalize_frames(frames);
    assert_int_equal(tc_scope_status(s), TC_OK);
    assert_int_equal(tc_dtype_of(pixels), TC_F32);
    static const char *const names[] = {"input.frames"};
    tm_ref r;
    tm_ref_run(&r, "ref_video.py", "normalize", NULL, names, &frames, 1, NULL, 0);
    tm_check("normalize", pixels, &r, "pixels", 1e-6);
    tm_ref_close(&r);
    assert_int_equal(tc_scope_end(s), TC_OK);
}

/* vv_forward on frames that do not fit: TC_EINVAL in the scope, a message naming the problem. */
static void expect_rejected(const vv_model *m, tc_tensor *frames, const char *part)
{
    char err[256] = "";
    assert_int_equal(vv_check_frames(m, frames, err, sizeof err), TC_EINVAL);
    printf("rejected: %s\n", err);
    if (!strstr(err, part)) fail_msg("message '%s' lacks '%s'", err, part);
    tc_scope *s = tc_scope_begin();
    assert_null(vv_forward(m, frames, 0, NULL));
    assert_int_equal(tc_scope_end(s), TC_EINVAL);
}

static void test_video_rejects_bad_frames(void **state)
{
    (void)state;
    const vv_config cfg = small_config(VV_ATTN_JOINT);
    mp_params ps;
    vv_model m;
    make_model(&ps, &m, &cfg, 1);
    tc_scope *s = tc_scope_begin();
    expect_rejected(&m, make_frames(1, 4, 60, 64, 1), "60x64 is not a multiple of the patch size 16");
    expect_rejected(&m, make_frames(1, 4, 48, 48, 1), "resize the frames to 64x64 or set");
    expect_rejected(&m, make_frames(1, 4, 64, 48, 1), "square");
    expect_rejected(&m, make_frames(1, 3, 64, 64, 1), "clips have 3 frames");
    expect_rejected(&m, tc_zeros((const int64_t[]){1, 4, 64, 64, 3}, 5, TC_F32, CPU), "not u8");
    expect_rejected(&m, tc_zeros((const int64_t[]){4, 64, 64, 3}, 4, TC_U8, CPU), "not 5-dimensional");
    char err[256];
    assert_int_equal(vv_check_frames(&m, make_frames(1, 4, 64, 64, 1), err, sizeof err), TC_OK);
    assert_int_equal(tc_scope_end(s), TC_OK);
    mp_params_free(&ps);

    /* A config whose image is not a multiple of its patch, or whose heads do not divide dim. */
    vv_config bad = cfg;
    bad.image = 70;
    assert_int_equal(mp_params_init(&ps, 1), TC_OK);
    assert_int_equal(vv_init(&m, &ps, "video", &bad), TC_EINVAL);
    bad = cfg;
    bad.heads = 5;
    assert_int_equal(vv_init(&m, &ps, "video", &bad), TC_EINVAL);
    mp_params_free(&ps);
}

static int same_values(tc_tensor *a, tc_tensor *b)
{
    float *x = tm_host_f32(a), *y = tm_host_f32(b);
    int same = memcmp(x, y, (size_t)tc_numel(a) * sizeof *x) == 0;
    free(x);
    free(y);
    return same;
}

static void test_video_dropout(void **state)
{
    (void)state;
    for (int a = 0; a < 2; a++) {
        const vv_config cfg = small_config(a ? VV_ATTN_DIVIDED : VV_ATTN_JOINT);
        mp_params ps;
        vv_model m;
        make_model(&ps, &m, &cfg, 5);
        tc_scope *s = tc_scope_begin();
        int was = tc_grad_enabled_set(0);
        tc_tensor *frames = make_frames(N, cfg.frames, cfg.image, cfg.image, 3);
        tc_generator *g[3] = {tc_generator_new(9, CPU), tc_generator_new(9, CPU), tc_generator_new(10, CPU)};
        tc_tensor *eval1 = vv_forward(&m, frames, 0, g[0]);
        tc_tensor *eval2 = vv_forward(&m, frames, 0, g[2]);
        tc_tensor *train1 = vv_forward(&m, frames, 1, g[0]);
        tc_tensor *train2 = vv_forward(&m, frames, 1, g[1]);
        tc_tensor *train3 = vv_forward(&m, frames, 1, g[2]);
        assert_int_equal(tc_scope_status(s), TC_OK);
        assert_int_equal(tc_size(eval1, 0), N);
        assert_int_equal(tc_size(eval1, 1), cfg.dim);
        assert_true(same_values(eval1, eval2));      /* eval ignores the generator */
        assert_false(same_values(eval1, train1));    /* training drops */
        assert_false(same_values(train1, train3));   /* different draws, different masks */
        /* g[0] and g[1] were both seeded 9, but g[0] drew nothing in eval: the same masks. */
        assert_true(same_values(train1, train2));
        for (int i = 0; i < 3; i++) tc_generator_free(g[i]);
        tc_grad_enabled_set(was);
        assert_int_equal(tc_scope_end(s), TC_OK);
        mp_params_free(&ps);
    }
}

static void test_video_seed_config(void **state)
{
    (void)state;
    vv_config cfg = vv_config_seed();
    assert_int_equal(cfg.image, 224);
    assert_int_equal(cfg.patch, 32);
    assert_int_equal(cfg.attention, VV_ATTN_JOINT);
    mp_params ps;
    vv_model m;
    make_model(&ps, &m, &cfg, 42);
    const mp_param *pos = mp_find(&ps, "video.pos_spatial");
    assert_non_null(pos);
    assert_int_equal(tc_size(pos->t, 0), 49);
    assert_int_equal(tc_size(pos->t, 1), 384);
    /* conv + positions + 4 x (attention + feed-forward + 2 norms) + final norm */
    size_t per_layer = 3 * 384 * 384 + 3 * 384 + 384 * 384 + 384 + 2 * 384 * 1536 + 1536 + 384 + 4 * 384;
    assert_int_equal(mp_numel(&ps), 3 * 32 * 32 * 384 + 384 + (49 + 8) * 384 + 4 * per_layer + 2 * 384);
    mp_params_free(&ps);
}

int tm_video_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_video_joint_vs_torch),    cmocka_unit_test(test_video_divided_vs_torch),
        cmocka_unit_test(test_video_normalize_vs_numpy), cmocka_unit_test(test_video_rejects_bad_frames),
        cmocka_unit_test(test_video_dropout),           cmocka_unit_test(test_video_seed_config),
        cmocka_unit_test(test_video_seed_vs_torch),
    };
    return cmocka_run_group_tests_name("video", tests, NULL, NULL);
}
