/* synth_face.c: a talking face drawn with cairo, one frame at a time, converted to YUV 4:2:0 with noise. */
#include <cairo.h>
#include <math.h>
#include <stdlib.h>

#include "dataset/synth_media_internal.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

typedef struct {
    double r, g, b;
} rgb;

struct sm_face {
    cairo_surface_t *surf;
    cairo_t *cr;
    int w, h, fps;
    rgb skin, hair, bg, shirt, lip;
    int long_hair, child, elderly;
    /* the expression at this utterance's intensity */
    double open, smile, width, smirk, eye, brow, tilt, sneer;
    /* motion and the camera's imperfections, fixed per utterance */
    double talk_amp, talk_hz, talk_phase, blink_period, blink_phase;
    double phase[4], off_x, off_y, scale;
    double noise_amp, contrast, bright;
    uint64_t noise_seed;
};

static const rgb skins[] = {{0.98, 0.86, 0.74}, {0.93, 0.76, 0.60}, {0.80, 0.60, 0.42},
                            {0.62, 0.44, 0.30}, {0.45, 0.31, 0.21}, {0.96, 0.80, 0.69}};
static const rgb hairs[] = {{0.10, 0.07, 0.05}, {0.35, 0.22, 0.10}, {0.75, 0.58, 0.30},
                            {0.55, 0.20, 0.08}, {0.20, 0.18, 0.17}};
static const rgb backgrounds[] = {{0.55, 0.65, 0.75}, {0.70, 0.72, 0.70}, {0.80, 0.74, 0.62},
                                  {0.45, 0.55, 0.48}, {0.62, 0.58, 0.70}, {0.30, 0.33, 0.38}};

static double lerp(double a, double b, double t) { return a + (b - a) * t; }

sm_face *sm_face_open(const sm_utt *u)
{
    sm_face *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->w = u->width;
    f->h = u->height;
    f->fps = u->fps;
    f->surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, f->w, f->h);
    f->cr = cairo_create(f->surf);
    if (cairo_status(f->cr) != CAIRO_STATUS_SUCCESS) {
        sm_face_close(f);
        return NULL;
    }
    /* Coarser curve flattening: a quarter pixel is invisible at these sizes and halves cairo's time. */
    cairo_set_tolerance(f->cr, 0.25);
    sm_rng look = {u->person.look ^ 0xfaceULL};
    f->skin = skins[sm_rng_below(&look, NELEM(skins))];
    f->hair = hairs[sm_rng_below(&look, NELEM(hairs))];
    f->bg = backgrounds[sm_rng_below(&look, NELEM(backgrounds))];
    f->shirt = (rgb){sm_rng_unit(&look) * 0.7, sm_rng_unit(&look) * 0.7, sm_rng_unit(&look) * 0.7};
    f->lip = (rgb){0.70, 0.30 + 0.1 * sm_rng_unit(&look), 0.30};
    f->long_hair = u->person.female;
    f->child = u->person.age == 0;
    f->elderly = u->person.age == 3;
    if (f->elderly)
        f->hair = (rgb){0.78, 0.78, 0.76};

    const sm_style *s = &sm_styles[u->video_cue], *n = &sm_neutral;
    double I = u->intensity_video;
    f->open = lerp(n->mouth_open, s->mouth_open, I);
    f->smile = lerp(n->smile, s->smile, I);
    f->width = lerp(n->mouth_width, s->mouth_width, I);
    f->smirk = lerp(n->smirk, s->smirk, I);
    f->eye = lerp(n->eye_open, s->eye_open, I);
    f->brow = lerp(n->brow_raise, s->brow_raise, I);
    f->tilt = lerp(n->brow_tilt, s->brow_tilt, I);
    f->sneer = lerp(n->sneer, s->sneer, I);

    sm_rng r = {sm_stream(u->seed, u->cid, u->k, 0xf0ceu)};
    f->talk_amp = u->text[0] ? sm_rng_range(&r, 0.15, 0.3) : 0;
    f->talk_hz = sm_rng_range(&r, 3.0, 5.0);
    f->talk_phase = sm_rng_range(&r, 0, 6.283);
    f->blink_period = sm_rng_range(&r, 2.0, 4.0);
    f->blink_phase = sm_rng_range(&r, 0, f->blink_period);
    for (int i = 0; i < 4; i++)
        f->phase[i] = sm_rng_range(&r, 0, 6.283);
    f->off_x = sm_rng_range(&r, -0.05, 0.05);
    f->off_y = sm_rng_range(&r, -0.04, 0.04);
    f->scale = sm_rng_range(&r, 0.9, 1.1);
    f->noise_amp = sm_rng_range(&r, 1, 3);
    f->contrast = sm_rng_range(&r, 0.85, 1.1);
    f->bright = sm_rng_range(&r, -12, 12);
    f->noise_seed = sm_rng_next(&r);
    return f;
}

void sm_face_close(sm_face *f)
{
    if (!f)
        return;
    if (f->cr)
        cairo_destroy(f->cr);
    if (f->surf)
        cairo_surface_destroy(f->surf);
    free(f);
}

static void set_rgb(cairo_t *cr, rgb c) { cairo_set_source_rgb(cr, c.r, c.g, c.b); }

static void ellipse(cairo_t *cr, double x, double y, double rx, double ry)
{
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_scale(cr, rx, ry > 1e-3 ? ry : 1e-3);
    cairo_arc(cr, 0, 0, 1, 0, 2 * M_PI);
    cairo_restore(cr);
}

/* One eye at horizontal position x (face units); open is the lid opening, 0 closed. */
static void draw_eye(const sm_face *f, double x, double open)
{
    cairo_t *cr = f->cr;
    double rx = f->child ? 0.16 : 0.13, ry = (f->child ? 0.09 : 0.075) * open;
    if (ry < 0.012) { /* closed lid: a line */
        cairo_move_to(cr, x - rx, -0.15);
        cairo_line_to(cr, x + rx, -0.15);
        cairo_set_source_rgb(cr, 0.2, 0.1, 0.08);
        cairo_set_line_width(cr, 0.025);
        cairo_stroke(cr);
        return;
    }
    ellipse(cr, x, -0.15, rx, ry);
    cairo_set_source_rgb(cr, 0.97, 0.97, 0.95);
    cairo_fill_preserve(cr);
    cairo_save(cr);
    cairo_clip_preserve(cr);
    ellipse(cr, x, -0.15, 0.055, 0.055);
    cairo_set_source_rgb(cr, 0.25, 0.35, 0.45);
    cairo_fill(cr);
    ellipse(cr, x, -0.15, 0.025, 0.025);
    cairo_set_source_rgb(cr, 0.02, 0.02, 0.02);
    cairo_fill(cr);
    cairo_restore(cr);
    cairo_new_path(cr);
    ellipse(cr, x, -0.15, rx, ry);
    cairo_set_source_rgb(cr, 0.2, 0.1, 0.08);
    cairo_set_line_width(cr, 0.018);
    cairo_stroke(cr);
}

/* One brow; side is -1 (viewer's left) or +1. Tilt > 0 lifts the inner end (sad, fear), < 0 lowers it. */
static void draw_brow(const sm_face *f, int side)
{
    cairo_t *cr = f->cr;
    double base = -0.34 - 0.15 * f->brow;
    double inner = base - 0.09 * f->tilt, outer = base + 0.02 * f->tilt;
    cairo_move_to(cr, side * 0.12, inner);
    cairo_curve_to(cr, side * 0.22, inner - 0.03, side * 0.36, outer - 0.04, side * 0.46, outer);
    set_rgb(cr, f->hair);
    cairo_set_line_width(cr, 0.05);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    cairo_stroke(cr);
}

static void draw_nose(const sm_face *f)
{
    cairo_t *cr = f->cr;
    cairo_move_to(cr, 0.0, -0.08);
    cairo_curve_to(cr, 0.02, 0.05, 0.08, 0.12, 0.05, 0.18);
    cairo_line_to(cr, -0.04, 0.19);
    cairo_set_source_rgb(cr, 0.45 * f->skin.r, 0.4 * f->skin.g, 0.4 * f->skin.b);
    cairo_set_line_width(cr, 0.022);
    cairo_stroke(cr);
    if (f->sneer > 0.2) { /* wrinkles beside the nose */
        for (int side = -1; side <= 1; side += 2) {
            cairo_move_to(cr, side * 0.07, 0.02);
            cairo_line_to(cr, side * 0.13, 0.10);
            cairo_move_to(cr, side * 0.05, -0.04);
            cairo_line_to(cr, side * 0.11, 0.02);
        }
        cairo_set_line_width(cr, 0.018 * f->sneer);
        cairo_stroke(cr);
    }
}

/* The mouth as two curves between its corners; open (0..1.3) separates them, smile lifts the corners,
 * smirk lifts only the viewer's right corner, sneer raises the upper lip. */
static void draw_mouth(const sm_face *f, double open)
{
    cairo_t *cr = f->cr;
    double y0 = 0.45, half = 0.24 * f->width;
    double yl = y0 - 0.10 * f->smile + 0.02 * f->smirk, yr = y0 - 0.10 * f->smile - 0.13 * f->smirk;
    double top = y0 - 0.04 * open - 0.07 * f->sneer + 0.04 * f->smile;
    double bottom = y0 + 0.22 * open + 0.06 * f->smile;
    cairo_move_to(cr, -half, yl);
    cairo_curve_to(cr, -half * 0.5, top, half * 0.5, top, half, yr);
    cairo_curve_to(cr, half * 0.5, bottom, -half * 0.5, bottom, -half, yl);
    cairo_close_path(cr);
    if (bottom - top > 0.03) {
        cairo_set_source_rgb(cr, 0.25, 0.05, 0.06);
        cairo_fill_preserve(cr);
        if (f->smile > 0.3 || f->sneer > 0.3) { /* teeth show in a smile and a sneer */
            cairo_save(cr);
            cairo_clip_preserve(cr);
            cairo_rectangle(cr, -half, top - 0.05, 2 * half, 0.06 + 0.05);
            cairo_set_source_rgb(cr, 0.96, 0.95, 0.90);
            cairo_fill(cr);
            cairo_restore(cr);
        }
    }
    set_rgb(cr, f->lip);
    cairo_set_line_width(cr, 0.05);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_stroke(cr);
}

static void draw_head(const sm_face *f, double open, double eye)
{
    cairo_t *cr = f->cr;
    set_rgb(cr, f->shirt); /* shoulders */
    ellipse(cr, 0, 1.75, 1.35, 0.75);
    cairo_fill(cr);
    set_rgb(cr, f->skin);
    cairo_rectangle(cr, -0.22, 0.6, 0.44, 0.6);
    cairo_fill(cr);
    if (f->long_hair) { /* the crown behind the head and two locks down to the shoulders */
        set_rgb(cr, f->hair);
        ellipse(cr, 0, -0.15, 0.93, 0.95);
        cairo_fill(cr);
        cairo_rectangle(cr, -0.93, -0.15, 0.45, 1.05);
        cairo_rectangle(cr, 0.48, -0.15, 0.45, 1.05);
        cairo_fill(cr);
    }
    set_rgb(cr, f->skin);
    ellipse(cr, -0.78, 0.0, 0.1, 0.17);
    ellipse(cr, 0.78, 0.0, 0.1, 0.17);
    cairo_fill(cr);
    ellipse(cr, 0, 0, 0.78, 1.0);
    cairo_fill(cr);
    set_rgb(cr, f->hair); /* the cap of hair over the forehead */
    cairo_arc(cr, 0, -0.25, 0.8, M_PI * 1.08, M_PI * 1.92);
    cairo_curve_to(cr, 0.5, -0.62, -0.5, -0.62, -0.8 * cos(M_PI * 0.08), -0.25 - 0.8 * sin(M_PI * 0.08));
    cairo_close_path(cr);
    cairo_fill(cr);
    if (f->elderly) {
        cairo_set_source_rgb(cr, 0.6 * f->skin.r, 0.5 * f->skin.g, 0.45 * f->skin.b);
        cairo_set_line_width(cr, 0.012);
        for (int i = 0; i < 2; i++) {
            cairo_move_to(cr, -0.3, -0.52 + 0.06 * i);
            cairo_curve_to(cr, -0.1, -0.55 + 0.06 * i, 0.1, -0.55 + 0.06 * i, 0.3, -0.52 + 0.06 * i);
        }
        cairo_stroke(cr);
    }
    draw_eye(f, -0.3, eye);
    draw_eye(f, 0.3, eye);
    draw_brow(f, -1);
    draw_brow(f, 1);
    draw_nose(f);
    draw_mouth(f, open);
}

/* BT.601 limited range, the 2x2 chroma blocks averaged; luma gets the clip's lighting and noise (fixed
 * point, 8 fractional bits: this loop touches every pixel of every frame). */
static void to_yuv420(const sm_face *f, int i, uint8_t *const planes[3], const int linesize[3])
{
    const uint8_t *px = cairo_image_surface_get_data(f->surf);
    int stride = cairo_image_surface_get_stride(f->surf);
    sm_rng r = {f->noise_seed + (uint64_t)i * 0x9e3779b97f4a7c15ULL};
    int contrast = (int)(f->contrast * 256), offset = (int)((16 + f->bright) * 256) + 128;
    int amp = (int)(f->noise_amp * 256);
    for (int y = 0; y < f->h; y++) {
        const uint32_t *row = (const uint32_t *)(px + (size_t)y * (size_t)stride);
        uint8_t *yp = planes[0] + (size_t)y * (size_t)linesize[0];
        uint64_t z = 0;
        for (int x = 0; x < f->w; x++) {
            uint32_t p = row[x];
            int R = (int)(p >> 16 & 255), G = (int)(p >> 8 & 255), B = (int)(p & 255);
            int Y = (66 * R + 129 * G + 25 * B + 128) >> 8;
            if (x % 4 == 0) /* 16 random bits per pixel: two bytes summed, a triangle-shaped noise */
                z = sm_rng_next(&r);
            int noise = amp * ((int)(z & 255) + (int)(z >> 8 & 255) - 255) / 256;
            z >>= 16;
            int v = (Y * contrast + offset + noise) >> 8;
            yp[x] = (uint8_t)(v < 16 ? 16 : v > 235 ? 235 : v);
        }
    }
    for (int y = 0; y < f->h / 2; y++) {
        const uint32_t *r0 = (const uint32_t *)(px + (size_t)(2 * y) * (size_t)stride);
        const uint32_t *r1 = (const uint32_t *)(px + (size_t)(2 * y + 1) * (size_t)stride);
        uint8_t *up = planes[1] + (size_t)y * (size_t)linesize[1], *vp = planes[2] + (size_t)y * (size_t)linesize[2];
        for (int x = 0; x < f->w / 2; x++) {
            int R = 0, G = 0, B = 0;
            uint32_t q[4] = {r0[2 * x], r0[2 * x + 1], r1[2 * x], r1[2 * x + 1]};
            for (int j = 0; j < 4; j++) {
                R += (int)(q[j] >> 16 & 255);
                G += (int)(q[j] >> 8 & 255);
                B += (int)(q[j] & 255);
            }
            R = (R + 2) / 4;
            G = (G + 2) / 4;
            B = (B + 2) / 4;
            up[x] = (uint8_t)(((-38 * R - 74 * G + 112 * B + 128) >> 8) + 128);
            vp[x] = (uint8_t)(((112 * R - 94 * G - 18 * B + 128) >> 8) + 128);
        }
    }
}

int sm_face_draw(sm_face *f, int i, uint8_t *const planes[3], const int linesize[3])
{
    cairo_t *cr = f->cr;
    double t = (double)i / f->fps, tau = 2 * M_PI;
    set_rgb(cr, f->bg);
    cairo_paint(cr);
    double unit = 0.4 * (f->w < f->h ? f->w : f->h) * f->scale;
    double dx = 0.04 * f->w * sin(tau * 0.3 * t + f->phase[0]), dy = 0.03 * f->h * sin(tau * 0.45 * t + f->phase[1]);
    double angle = 0.08 * sin(tau * 0.25 * t + f->phase[2]), zoom = 1 + 0.03 * sin(tau * 0.2 * t + f->phase[3]);
    double talk = 0.5 + 0.5 * sin(tau * f->talk_hz * t + f->talk_phase);
    double blink = fmod(t + f->blink_phase, f->blink_period) < 0.12 ? 0.05 : 1.0;
    cairo_save(cr);
    cairo_translate(cr, f->w * (0.5 + f->off_x) + dx, f->h * (0.5 + f->off_y) + dy);
    cairo_rotate(cr, angle);
    cairo_scale(cr, unit * zoom, unit * zoom);
    draw_head(f, f->open + f->talk_amp * talk, f->eye * blink);
    cairo_restore(cr);
    cairo_surface_flush(f->surf);
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        return -1;
    to_yuv420(f, i, planes, linesize);
    return 0;
}
