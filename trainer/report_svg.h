/* The pictures of empd's reports, as SVG text: line charts of training curves and confusion-matrix heat
 * maps. Each picture is one <svg> element without xmlns, as HTML takes it inline; a .svg file of its own
 * needs xmlns="http://www.w3.org/2000/svg" added to that first tag. Fonts are generic families and
 * nothing is fetched: no URL appears in the output. Sizes are in user units with a viewBox, so the
 * pictures scale with the page.
 *
 * The text goes into a growing buffer (tr_text); an allocation failure sets t->failed and every later
 * append does nothing, so a writer checks once at the end. */
#ifndef EMPD_TRAINER_REPORT_SVG_H
#define EMPD_TRAINER_REPORT_SVG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *s;     /* NUL-terminated once anything was added */
    size_t len, cap;
    int failed;  /* out of memory at some append */
} tr_text;

void tr_text_add(tr_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s with & < > " ' as character references (text and attribute values of HTML and SVG). */
void tr_text_esc(tr_text *t, const char *s);
void tr_text_free(tr_text *t);

/* One line of a chart: points (x[i], y[i]); a non-finite y breaks the line there. */
typedef struct {
    const char *name;  /* in the legend; NULL: not listed */
    const double *x, *y;
    size_t n;
    const char *color; /* CSS color */
    double width;      /* stroke width */
    double opacity;    /* 0: 1 */
    int markers;       /* a dot at every point (for series of few points) */
} tr_svg_series;

typedef struct {
    const char *title, *xlabel, *ylabel;
    int width, height;
    double xfrom, xto; /* the x axis spans at least this (several charts of one run alike); NaN: the data */
    int include_zero;  /* the y axis reaches 0 */
    double ylo, yhi;   /* the y axis stays inside [ylo, yhi] (e.g. 0..1 for a ratio); NaN: unbounded */
    double mark_x;     /* a dashed vertical line there (the best step); NaN: none */
    const char *mark_label;
    const double *bad_x; /* x of non-finite values (a diverged loss): red ticks on the x axis */
    size_t n_bad;
} tr_svg_chart;

/* A line chart with axes, ticks, grid, labels and a legend. Series of more points than the plot has
 * pixels are drawn by their min and max per pixel column. No finite point at all: the frame with
 * "no data yet". */
void tr_svg_lines(tr_text *t, const tr_svg_chart *c, const tr_svg_series *s, int n_series);

/* A k x k confusion matrix (conf[true * k + predicted]) as a heat map: each cell's count, its color
 * the count's share of its row (the true class), the share in percent below the count; row and
 * column labels from names (k strings). */
void tr_svg_confusion(tr_text *t, const char *title, const int64_t *conf, int k, const char *const *names);

/* Horizontal bars of ratios in [0, 1]: a group of n_series bars per row, each labelled with its value;
 * the row `highlight` (-1: none) on a tinted band. */
typedef struct {
    const char *title;
    int width;
    int n_rows, n_series;
    const char *const *rows, *const *series, *const *colors;
    const double *values; /* [row * n_series + series] */
    int highlight;
} tr_svg_bars_spec;
void tr_svg_bars(tr_text *t, const tr_svg_bars_spec *b);

#endif
