/* SVG pictures of the reports (report_svg.h): line charts and confusion heat maps. */
#include "trainer/report_svg.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tr_text_add(tr_text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->cap - t->len;
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->s && (size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *s = realloc(t->s, cap);
        if (!s) {
            t->failed = 1;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
}

void tr_text_esc(tr_text *t, const char *s)
{
    for (const char *p = s; *p; p++) {
        size_t run = strcspn(p, "&<>\"'");
        if (run) {
            tr_text_add(t, "%.*s", (int)run, p);
            p += run;
            if (!*p)
                break;
        }
        switch (*p) {
        case '&': tr_text_add(t, "&amp;"); break;
        case '<': tr_text_add(t, "&lt;"); break;
        case '>': tr_text_add(t, "&gt;"); break;
        case '"': tr_text_add(t, "&quot;"); break;
        default: tr_text_add(t, "&#39;"); break;
        }
    }
}

void tr_text_free(tr_text *t)
{
    free(t->s);
    memset(t, 0, sizeof *t);
}

#define FONT "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""

/* ---- Axes ------------------------------------------------------------------------------------------ */

/* 1, 2 or 5 times a power of ten near range / target. */
static double nice_step(double range, int target)
{
    double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* A tick label with as many digits as the tick step needs: 0.25, 300, 1.5e-5. */
static void tick_label(char *buf, size_t n, double v, double step)
{
    if (fabs(v) < fabs(step) * 1e-6) {
        snprintf(buf, n, "0");
        return;
    }
    if (fabs(step) >= 1e-4 && fabs(v) < 1e7) {
        int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        snprintf(buf, n, "%.*f", dec, v);
        return;
    }
    int digits = (int)(floor(log10(fabs(v))) - floor(log10(step) + 1e-9));
    char tmp[48];
    snprintf(tmp, sizeof tmp, "%.*e", digits > 0 ? digits : 0, v);
    /* "1.50e-05" -> "1.5e-5" */
    char *e = strchr(tmp, 'e'), mant[32];
    snprintf(mant, sizeof mant, "%.*s", (int)(e - tmp), tmp);
    if (strchr(mant, '.')) {
        size_t l = strlen(mant);
        while (l && mant[l - 1] == '0')
            mant[--l] = 0;
        if (l && mant[l - 1] == '.')
            mant[--l] = 0;
    }
    snprintf(buf, n, "%se%d", mant, atoi(e + 1));
}

typedef struct {
    double lo, hi, step;
} axis;

/* Ticks over [lo, hi], the axis widened to whole ticks, then kept within [bound_lo, bound_hi]. */
static axis make_axis(double lo, double hi, double bound_lo, double bound_hi)
{
    /* A range too narrow for its magnitude (or none) is widened, so that ticks have a step. */
    if (!(hi - lo > 1e-9 * fmax(fabs(lo), fabs(hi)))) {
        double pad = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1;
        lo -= pad;
        hi += pad;
    }
    axis a = {.step = nice_step(hi - lo, 5)};
    a.lo = floor(lo / a.step + 1e-9) * a.step;
    a.hi = ceil(hi / a.step - 1e-9) * a.step;
    axis open = a;
    if (!isnan(bound_lo) && a.lo < bound_lo)
        a.lo = bound_lo;
    if (!isnan(bound_hi) && a.hi > bound_hi)
        a.hi = bound_hi;
    return a.hi > a.lo ? a : open;
}

/* ---- Line charts ----------------------------------------------------------------------------------- */

typedef struct {
    double x0, y0, w, h; /* plot area */
    axis ax, ay;
} frame;

static double px(const frame *f, double x) { return f->x0 + (x - f->ax.lo) / (f->ax.hi - f->ax.lo) * f->w; }
static double py(const frame *f, double y)
{
    double v = f->y0 + f->h - (y - f->ay.lo) / (f->ay.hi - f->ay.lo) * f->h;
    return v < f->y0 - 4 ? f->y0 - 4 : v > f->y0 + f->h + 4 ? f->y0 + f->h + 4 : v;
}

/* The path of one series: a new subpath after every gap; "l0,0" makes a lone point a round dot. Points
 * beyond two per pixel column are reduced to each column's first, lowest, highest and last. */
static void series_path(tr_text *t, const frame *f, const tr_svg_series *s)
{
    int thin = s->n > (size_t)(2 * f->w), pen = 0;
    long col = -1;
    size_t first = 0, lo = 0, hi = 0, last = 0;
    for (size_t i = 0; i <= s->n; i++) {
        int ok = i < s->n && isfinite(s->y[i]) && isfinite(s->x[i]);
        long c = ok ? lround(px(f, s->x[i])) : -2;
        if (thin && col >= 0 && (!ok || c != col)) {
            size_t pick[4] = {first, lo < hi ? lo : hi, lo < hi ? hi : lo, last};
            for (int k = 0; k < 4; k++)
                tr_text_add(t, pen++ ? " L%.1f,%.1f" : " M%.1f,%.1f l0,0", px(f, s->x[pick[k]]), py(f, s->y[pick[k]]));
            col = -1;
        }
        if (!ok) {
            pen = 0;
            continue;
        }
        if (!thin) {
            tr_text_add(t, pen++ ? " L%.1f,%.1f" : " M%.1f,%.1f l0,0", px(f, s->x[i]), py(f, s->y[i]));
            continue;
        }
        if (col < 0) {
            col = c;
            first = lo = hi = i;
        }
        lo = s->y[i] < s->y[lo] ? i : lo;
        hi = s->y[i] > s->y[hi] ? i : hi;
        last = i;
    }
}

static void legend(tr_text *t, const tr_svg_chart *c, const tr_svg_series *s, int n, double right, double y)
{
    double x = right;
    /* Laid out from the right edge leftwards, so the entries end flush with the plot. */
    if (c->n_bad) {
        x -= 7.0 * 14 + 8;
        tr_text_add(t, "<path d=\"M%.1f,%.1f v-10\" stroke=\"#d62728\" stroke-width=\"2\"/>", x, y + 4);
        tr_text_add(t, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#333\">not finite (%zu)</text>", x + 6, y + 1,
                    c->n_bad);
    }
    for (int i = n - 1; i >= 0; i--) {
        if (!s[i].name)
            continue;
        x -= 7.0 * (double)strlen(s[i].name) + 34;
        tr_text_add(t, "<path d=\"M%.1f,%.1f h18\" stroke=\"%s\" stroke-width=\"%.1f\" stroke-opacity=\"%.2f\"/>", x,
                    y - 3, s[i].color, s[i].width > 2 ? s[i].width : 2.5,
                    s[i].opacity > 0 && s[i].opacity < 1 ? fmax(s[i].opacity, 0.45) : 1.0);
        tr_text_add(t, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#333\">", x + 23, y + 1);
        tr_text_esc(t, s[i].name);
        tr_text_add(t, "</text>");
    }
}

void tr_svg_lines(tr_text *t, const tr_svg_chart *c, const tr_svg_series *s, int n)
{
    const double W = c->width, H = c->height;
    frame f = {.x0 = 66, .y0 = 46, .w = W - 66 - 18, .h = H - 46 - 50};
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < s[i].n; k++)
            if (isfinite(s[i].x[k]) && isfinite(s[i].y[k])) {
                xlo = fmin(xlo, s[i].x[k]);
                xhi = fmax(xhi, s[i].x[k]);
                ylo = fmin(ylo, s[i].y[k]);
                yhi = fmax(yhi, s[i].y[k]);
            }
    int empty = !(xlo <= xhi);
    tr_text_add(t, "<svg viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" " FONT
                   " role=\"img\"><title>", c->width, c->height, c->width, c->height);
    tr_text_esc(t, c->title);
    tr_text_add(t, "</title><rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>");
    tr_text_add(t, "<text x=\"%.1f\" y=\"20\" font-size=\"15\" font-weight=\"bold\" fill=\"#222\">", f.x0);
    tr_text_esc(t, c->title);
    tr_text_add(t, "</text>");
    if (empty) {
        tr_text_add(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fafafa\" stroke=\"#ccc\"/>"
                       "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" fill=\"#888\" text-anchor=\"middle\">no data yet</text>"
                       "</svg>",
                    f.x0, f.y0, f.w, f.h, f.x0 + f.w / 2, f.y0 + f.h / 2);
        return;
    }
    const double xs[3] = {c->mark_x, c->xfrom, c->xto};
    for (int i = 0; i < 3; i++)
        if (isfinite(xs[i])) {
            xlo = fmin(xlo, xs[i]);
            xhi = fmax(xhi, xs[i]);
        }
    if (c->include_zero) {
        ylo = fmin(ylo, 0);
        yhi = fmax(yhi, 0);
    }
    double pad = (yhi - ylo) * 0.04;
    f.ax = make_axis(xlo, xhi, NAN, NAN);
    f.ay = make_axis(ylo - (c->include_zero && ylo == 0 ? 0 : pad), yhi + pad, c->ylo, c->yhi);
    /* The plot starts right of the widest y tick label and the axis title. */
    char lab[48];
    size_t widest = 1;
    for (int i = 0; i < 60 && f.ay.lo + i * f.ay.step <= f.ay.hi + f.ay.step * 1e-6; i++) {
        tick_label(lab, sizeof lab, f.ay.lo + i * f.ay.step, f.ay.step);
        widest = strlen(lab) > widest ? strlen(lab) : widest;
    }
    f.x0 = 36 + 7.2 * (double)widest + 10;
    f.w = W - f.x0 - 18;

    /* Grid and ticks. */
    tr_text_add(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fcfcfd\" stroke=\"#bbb\"/>", f.x0,
                f.y0, f.w, f.h);
    for (int i = 0; i < 60; i++) {
        double v = f.ay.lo + i * f.ay.step;
        if (v > f.ay.hi + f.ay.step * 1e-6)
            break;
        double y = py(&f, v);
        tick_label(lab, sizeof lab, v, f.ay.step);
        tr_text_add(t, "<path d=\"M%.1f,%.1f h%.1f\" stroke=\"#e4e4e8\"/><path d=\"M%.1f,%.1f h-5\" stroke=\"#888\"/>"
                       "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#444\" text-anchor=\"end\">%s</text>",
                    f.x0, y, f.w, f.x0, y, f.x0 - 8, y + 4, lab);
    }
    for (int i = 0; i < 60; i++) {
        double v = f.ax.lo + i * f.ax.step;
        if (v > f.ax.hi + f.ax.step * 1e-6)
            break;
        double x = px(&f, v);
        tick_label(lab, sizeof lab, v, f.ax.step);
        tr_text_add(t, "<path d=\"M%.1f,%.1f v%.1f\" stroke=\"#eeeef2\"/><path d=\"M%.1f,%.1f v5\" stroke=\"#888\"/>"
                       "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#444\" text-anchor=\"middle\">%s</text>",
                    x, f.y0, f.h, x, f.y0 + f.h, x, f.y0 + f.h + 19, lab);
    }
    tr_text_add(t, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" fill=\"#333\" text-anchor=\"middle\">", f.x0 + f.w / 2,
                H - 10);
    tr_text_esc(t, c->xlabel);
    tr_text_add(t, "</text><text transform=\"translate(16,%.1f) rotate(-90)\" font-size=\"13\" fill=\"#333\" "
                   "text-anchor=\"middle\">", f.y0 + f.h / 2);
    tr_text_esc(t, c->ylabel);
    tr_text_add(t, "</text>");

    if (isfinite(c->mark_x)) {
        double x = px(&f, c->mark_x);
        int right = x > f.x0 + f.w * 0.75;
        tr_text_add(t, "<path d=\"M%.1f,%.1f v%.1f\" stroke=\"#777\" stroke-dasharray=\"5,4\"/>", x, f.y0, f.h);
        if (c->mark_label) {
            tr_text_add(t, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555\" text-anchor=\"%s\">",
                        right ? x - 4 : x + 4, f.y0 + 13, right ? "end" : "start");
            tr_text_esc(t, c->mark_label);
            tr_text_add(t, "</text>");
        }
    }
    for (size_t i = 0; i < c->n_bad; i++)
        if (isfinite(c->bad_x[i]))
            tr_text_add(t, "<path d=\"M%.1f,%.1f v-9\" stroke=\"#d62728\" stroke-width=\"2\"/>", px(&f, c->bad_x[i]),
                        f.y0 + f.h);

    /* The series (py keeps them within a few pixels of the plot). */
    tr_text_add(t, "<g fill=\"none\" stroke-linejoin=\"round\" stroke-linecap=\"round\">");
    for (int i = 0; i < n; i++) {
        tr_text_add(t, "<path stroke=\"%s\" stroke-width=\"%.2g\"", s[i].color, s[i].width > 0 ? s[i].width : 1.5);
        if (s[i].opacity > 0 && s[i].opacity < 1)
            tr_text_add(t, " stroke-opacity=\"%.2f\"", s[i].opacity);
        tr_text_add(t, " d=\"");
        series_path(t, &f, &s[i]);
        tr_text_add(t, "\"/>");
        for (size_t k = 0; s[i].markers && k < s[i].n; k++)
            if (isfinite(s[i].x[k]) && isfinite(s[i].y[k]))
                tr_text_add(t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.2\" fill=\"%s\" stroke=\"#fff\"/>",
                            px(&f, s[i].x[k]), py(&f, s[i].y[k]), s[i].color);
    }
    tr_text_add(t, "</g>");
    legend(t, c, s, n, f.x0 + f.w, 34);
    tr_text_add(t, "</svg>");
}

/* ---- Confusion heat maps --------------------------------------------------------------------------- */

/* White to dark blue through ColorBrewer's Blues, by share 0..1. */
static void blues(double v, char *out, size_t n)
{
    static const unsigned char stops[5][3] = {{247, 251, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181},
                                              {8, 48, 107}};
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    int i = v >= 1 ? 3 : (int)(v * 4);
    double u = v * 4 - i;
    unsigned char c[3];
    for (int k = 0; k < 3; k++)
        c[k] = (unsigned char)lround(stops[i][k] + (stops[i + 1][k] - stops[i][k]) * u);
    snprintf(out, n, "#%02x%02x%02x", c[0], c[1], c[2]);
}

/* Class labels longer than this are cut (with an ellipsis) so the matrix keeps its size; the cells'
 * tooltips keep the whole name. */
#define LABEL_MAX 16

static size_t label_len(const char *name)
{
    size_t n = strlen(name);
    if (n <= LABEL_MAX)
        return n;
    n = LABEL_MAX - 1;
    while (n && ((unsigned char)name[n] & 0xC0) == 0x80) /* not inside a UTF-8 sequence */
        n--;
    return n;
}

static void label(tr_text *t, const char *name)
{
    size_t n = label_len(name);
    char cut[LABEL_MAX + 1];
    snprintf(cut, sizeof cut, "%.*s", (int)n, name);
    tr_text_esc(t, cut);
    if (n < strlen(name))
        tr_text_add(t, "…");
}

void tr_svg_confusion(tr_text *t, const char *title, const int64_t *conf, int k, const char *const *names)
{
    const int cs = k <= 8 ? 50 : k <= 16 ? 32 : 22;
    const double fs = cs >= 40 ? 14 : cs >= 30 ? 11 : 8.5;
    size_t longest = 4;
    for (int c = 0; c < k; c++)
        longest = label_len(names[c]) + 1 > longest ? label_len(names[c]) + 1 : longest;
    const double lw = 7.2 * (double)longest + 10; /* a label's width at 12 px */
    const double left = 30 + lw, top = 40, grid = (double)(k * cs);
    const double bottom = lw * 0.66 + 36, right = 64;
    double W = left + grid + right, H = top + grid + bottom;
    double tw = 8.5 * (double)strlen(title) + 20;
    W = W < tw ? tw : W;
    tr_text_add(t, "<svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" " FONT
                   " role=\"img\"><title>", W, H, W, H);
    tr_text_esc(t, title);
    tr_text_add(t, "</title><rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>"
                   "<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\" fill=\"#222\">");
    tr_text_esc(t, title);
    tr_text_add(t, "</text>");
    for (int r = 0; r < k; r++) {
        int64_t row = 0;
        for (int c = 0; c < k; c++)
            row += conf[r * k + c];
        double y = top + r * cs;
        tr_text_add(t, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#333\" text-anchor=\"end\">", left - 6,
                    y + cs / 2.0 + 4);
        label(t, names[r]);
        tr_text_add(t, "</text><text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#777\">n=%lld</text>",
                    left + grid + 6, y + cs / 2.0 + 4, (long long)row);
        for (int c = 0; c < k; c++) {
            int64_t v = conf[r * k + c];
            double share = row ? (double)v / (double)row : 0, x = left + c * cs;
            char fill[8];
            blues(share, fill, sizeof fill);
            /* A tooltip per cell; beyond 16 classes they would weigh more than the rest of the page. */
            tr_text_add(t, "<g>");
            if (k <= 16) {
                tr_text_add(t, "<title>true ");
                tr_text_esc(t, names[r]);
                tr_text_add(t, ", predicted ");
                tr_text_esc(t, names[c]);
                tr_text_add(t, ": %lld (%.1f%% of the row)</title>", (long long)v, 100 * share);
            }
            tr_text_add(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"%s\" stroke=\"#fff\"/>",
                        x, y, cs, cs, fill);
            const char *ink = share >= 0.45 ? "#fff" : v ? "#1a1a1a" : "#9a9a9a";
            double ty = cs >= 40 ? y + cs / 2.0 + 1 : y + cs / 2.0 + fs / 2.8;
            tr_text_add(t, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.1f\" fill=\"%s\" text-anchor=\"middle\"%s>%lld</text>",
                        x + cs / 2.0, ty, fs, ink, r == c ? " font-weight=\"bold\"" : "", (long long)v);
            if (cs >= 40 && v)
                tr_text_add(t, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"%s\" text-anchor=\"middle\">%.0f%%</text>",
                            x + cs / 2.0, y + cs / 2.0 + 14, ink, 100 * share);
            tr_text_add(t, "</g>");
        }
    }
    /* The diagonal (the correct predictions) framed, over the cells' white borders. */
    for (int c = 0; c < k; c++)
        tr_text_add(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#4a4f57\" "
                       "stroke-width=\"1.3\"/>", left + c * cs + 0.7, top + c * cs + 0.7, cs - 1, cs - 1);
    for (int c = 0; c < k; c++) {
        double x = left + c * cs + cs / 2.0 + 4, y = top + grid + 10;
        tr_text_add(t, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#333\" text-anchor=\"end\" "
                       "transform=\"rotate(-40 %.1f %.1f)\">", x, y, x, y);
        label(t, names[c]);
        tr_text_add(t, "</text>");
    }
    tr_text_add(t, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" fill=\"#333\" text-anchor=\"middle\">predicted</text>"
                   "<text transform=\"translate(16,%.1f) rotate(-90)\" font-size=\"13\" fill=\"#333\" "
                   "text-anchor=\"middle\">true</text></svg>",
                left + grid / 2, H - 8, top + grid / 2);
}

/* ---- Bar charts ------------------------------------------------------------------------------------ */

void tr_svg_bars(tr_text *t, const tr_svg_bars_spec *b)
{
    const int ns = b->n_series, n = b->n_rows, bh = 15, gap = 12;
    size_t longest = 4;
    for (int r = 0; r < n; r++)
        longest = strlen(b->rows[r]) > longest ? strlen(b->rows[r]) : longest;
    const double left = 7.2 * (double)longest + 40, top = 52, right = 70, W = b->width;
    const double pw = W - left - right, rowh = ns * bh + gap, H = top + n * rowh + 36;
    tr_text_add(t, "<svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" " FONT " role=\"img\"><title>", W, H, W,
                H);
    tr_text_esc(t, b->title);
    tr_text_add(t, "</title><rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>"
                   "<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\" fill=\"#222\">");
    tr_text_esc(t, b->title);
    tr_text_add(t, "</text>");
    double lx = left;
    for (int s = 0; s < ns; s++) {
        tr_text_add(t, "<rect x=\"%.1f\" y=\"32\" width=\"14\" height=\"11\" fill=\"%s\"/>"
                       "<text x=\"%.1f\" y=\"42\" font-size=\"12\" fill=\"#333\">", lx, b->colors[s], lx + 19);
        tr_text_esc(t, b->series[s]);
        tr_text_add(t, "</text>");
        lx += 7.0 * (double)strlen(b->series[s]) + 40;
    }
    for (int i = 0; i <= 10; i += 2) {
        double x = left + pw * i / 10.0;
        tr_text_add(t, "<path d=\"M%.1f,%.1f v%.1f\" stroke=\"%s\"/>"
                       "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555\" text-anchor=\"middle\">%.1f</text>",
                    x, top - 4, n * rowh, i ? "#e6e7eb" : "#999", x, top + n * rowh + 14, i / 10.0);
    }
    for (int r = 0; r < n; r++) {
        double y = top + r * rowh;
        if (r == b->highlight)
            tr_text_add(t, "<rect x=\"4\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fff4cc\"/>", y - gap / 2.0 + 2,
                        W - 8, rowh - 4);
        tr_text_add(t, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12.5\" fill=\"#222\" text-anchor=\"end\"%s>", left - 8,
                    y + ns * bh / 2.0 + 4, r == b->highlight ? " font-weight=\"bold\"" : "");
        tr_text_esc(t, b->rows[r]);
        tr_text_add(t, "</text>");
        for (int s = 0; s < ns; s++) {
            double v = b->values[r * ns + s], w = isfinite(v) ? fmax(0, fmin(1, v)) * pw : 0;
            tr_text_add(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>"
                           "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#333\">%.4f</text>",
                        left, y + s * bh, w, bh - 2, b->colors[s], left + w + 4, y + s * bh + bh - 5, v);
        }
    }
    tr_text_add(t, "</svg>");
}
