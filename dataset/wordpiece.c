/* BERT WordPiece, uncased. The text is read in one streaming pass: decode, clean, fold (lower-case
 * plus accent stripping) and split happen per code point, and only the current word is buffered, so
 * encoding allocates nothing and any line length costs constant memory. */
#include "dataset/wordpiece.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/md5.h"
#include "dataset/wordpiece_tables.h"

#define WP_EOF 0xFFFFFFFFu
#define WP_REPLACEMENT 0xFFFDu
#define WP_CAPITAL_SIGMA 0x3A3u

struct wp_vocab {
    char *blob;         /* the file's bytes, each line end replaced by NUL */
    uint32_t *offset;   /* token id -> start in blob */
    uint32_t *length;   /* token id -> length in bytes */
    uint32_t *slot;     /* open-addressing hash: id + 1, 0 = empty */
    size_t nslot;       /* power of two, at least twice the token count */
    size_t ntok;
    size_t max_bytes;   /* longest token, for cutting the longest-match search short */
    uint32_t unk, cls, sep;
    char md5[33];
};

/* ---- vocabulary ---- */

static uint32_t wp_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static int wp_lookup(const wp_vocab *v, const char *s, size_t n)
{
    for (size_t i = wp_hash(s, n) & (v->nslot - 1);; i = (i + 1) & (v->nslot - 1)) {
        uint32_t id = v->slot[i];
        if (!id)
            return -1;
        id--;
        if (v->length[id] == n && !memcmp(v->blob + v->offset[id], s, n))
            return (int)id;
    }
}

static void wp_insert(wp_vocab *v, uint32_t id)
{
    const char *s = v->blob + v->offset[id];
    size_t n = v->length[id];
    size_t i = wp_hash(s, n) & (v->nslot - 1);
    for (; v->slot[i]; i = (i + 1) & (v->nslot - 1)) {
        uint32_t old = v->slot[i] - 1;
        if (v->length[old] == n && !memcmp(v->blob + v->offset[old], s, n))
            break;   /* a repeated token takes its later id, as HF's dict assignment does */
    }
    v->slot[i] = id + 1;
}

static char *wp_read_file(const char *path, size_t *size, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 18, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *grown = realloc(buf, 2 * cap + 1);
        if (!grown) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        cap *= 2;
    }
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory reading the vocabulary", path);
    } else if (ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = n;
    return buf;
}

static int wp_require(const wp_vocab *v, const char *token, uint32_t *id, const char *path, char *err,
                      size_t errlen)
{
    int i = wp_lookup(v, token, strlen(token));
    if (i < 0) {
        snprintf(err, errlen, "%s: vocabulary has no %s token (is this a BERT vocab.txt?)", path, token);
        return -1;
    }
    *id = (uint32_t)i;
    return 0;
}

int wp_vocab_load(const char *path, wp_vocab **out, char *err, size_t errlen)
{
    *out = NULL;
    size_t size;
    char *blob = wp_read_file(path, &size, err, errlen);
    if (!blob)
        return -1;
    if (size == 0) {
        snprintf(err, errlen, "%s: empty vocabulary file", path);
        free(blob);
        return -1;
    }
    if (size >= UINT32_MAX) {
        snprintf(err, errlen, "%s: vocabulary file over 4 GiB", path);
        free(blob);
        return -1;
    }
    blob[size] = '\0';
    wp_vocab *v = calloc(1, sizeof *v);
    if (!v) {
        free(blob);
        snprintf(err, errlen, "%s: out of memory loading the vocabulary", path);
        return -1;
    }
    v->blob = blob;
    md5_ctx c;
    uint8_t digest[16];
    md5_init(&c);
    md5_update(&c, blob, size);
    md5_final(&c, digest);
    md5_hex(digest, v->md5);

    size_t lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += blob[i] == '\n';
    lines += blob[size - 1] != '\n';
    v->offset = malloc(lines * sizeof *v->offset);
    v->length = malloc(lines * sizeof *v->length);
    for (v->nslot = 16; v->nslot < 2 * lines; v->nslot *= 2)
        ;
    v->slot = calloc(v->nslot, sizeof *v->slot);
    if (!v->offset || !v->length || !v->slot) {
        wp_vocab_free(v);
        snprintf(err, errlen, "%s: out of memory loading the vocabulary", path);
        return -1;
    }
    size_t start = 0;
    for (size_t i = 0; i <= size && start < size; i++) {
        if (i < size && blob[i] != '\n') {
            if (blob[i] == '\0') {
                snprintf(err, errlen, "%s: line %zu holds a NUL byte", path, v->ntok + 1);
                wp_vocab_free(v);
                return -1;
            }
            continue;
        }
        size_t end = i;
        if (end > start && blob[end - 1] == '\r')   /* CRLF files: HF reads them the same */
            end--;
        blob[end] = '\0';
        v->offset[v->ntok] = (uint32_t)start;
        v->length[v->ntok] = (uint32_t)(end - start);
        if (end - start > v->max_bytes)
            v->max_bytes = end - start;
        wp_insert(v, (uint32_t)v->ntok);
        v->ntok++;
        start = i + 1;
    }
    if (wp_require(v, "[UNK]", &v->unk, path, err, errlen) || wp_require(v, "[CLS]", &v->cls, path, err, errlen) ||
        wp_require(v, "[SEP]", &v->sep, path, err, errlen)) {
        wp_vocab_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

void wp_vocab_free(wp_vocab *v)
{
    if (!v)
        return;
    free(v->blob);
    free(v->offset);
    free(v->length);
    free(v->slot);
    free(v);
}

size_t wp_vocab_size(const wp_vocab *v)
{
    return v->ntok;
}

int wp_vocab_id(const wp_vocab *v, const char *token)
{
    return wp_lookup(v, token, strlen(token));
}

const char *wp_vocab_token(const wp_vocab *v, size_t id)
{
    return v && id < v->ntok ? v->blob + v->offset[id] : NULL;
}

const char *wp_vocab_md5(const wp_vocab *v)
{
    return v->md5;
}

/* ---- Unicode properties ---- */

static bool wp_in(const wp_range *r, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].first)
            hi = mid;
        else if (cp > r[mid].last)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

static bool wp_is_control(uint32_t cp)
{
    if (cp == '\t' || cp == '\n' || cp == '\r')
        return false;
    return wp_in(wp_table_control, wp_table_control_len, cp);
}

static bool wp_is_space(uint32_t cp)
{
    switch (cp) {
    case ' ': case '\t': case '\n': case '\r': case 0xA0: case 0x1680: case 0x202F: case 0x205F:
    case 0x3000: case 0x2028: case 0x2029:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

static bool wp_is_punct(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
               (cp >= 123 && cp <= 126);
    return wp_in(wp_table_punct, wp_table_punct_len, cp);
}

/* BERT's _is_chinese_char: the CJK Unified Ideographs blocks and the compatibility ideographs. */
static bool wp_is_cjk(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static bool wp_is_mn(uint32_t cp)
{
    return cp >= 0x300 && wp_in(wp_table_mn, wp_table_mn_len, cp);
}

static bool wp_is_case_ignorable(uint32_t cp)
{
    return wp_is_mn(cp) || wp_in(wp_table_case_ignorable, wp_table_case_ignorable_len, cp);
}

static bool wp_is_cased(uint32_t cp)
{
    return wp_in(wp_table_cased, wp_table_cased_len, cp);
}

/* lower() then NFD minus Mn marks of one code point (capital sigma excepted: see wp_tokenize).
 * Writes 0 to 3 code points to out and returns how many. */
static int wp_fold(uint32_t cp, uint32_t out[3])
{
    if (cp < 0x80) {
        out[0] = cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
        return 1;
    }
    if (wp_is_mn(cp))
        return 0;
    if (cp >= 0xAC00 && cp <= 0xD7A3) {   /* Hangul syllable -> leading, vowel, trailing jamo */
        uint32_t s = cp - 0xAC00;
        out[0] = 0x1100 + s / 588;
        out[1] = 0x1161 + (s % 588) / 28;
        out[2] = 0x11A7 + s % 28;
        return s % 28 ? 3 : 2;
    }
    size_t lo = 0, hi = wp_table_fold_pairs_len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp == wp_table_fold_pairs[mid].cp) {
            out[0] = wp_table_fold_pairs[mid].out;
            return 1;
        }
        if (cp < wp_table_fold_pairs[mid].cp)
            hi = mid;
        else
            lo = mid + 1;
    }
    for (lo = 0, hi = wp_table_fold_runs_len; lo < hi;) {
        size_t mid = (lo + hi) / 2;
        const wp_fold_run *r = &wp_table_fold_runs[mid];
        if (cp < r->first) {
            hi = mid;
        } else if (cp > r->last) {
            lo = mid + 1;
        } else {
            if ((cp - r->first) % r->stride)
                break;
            out[0] = r->is_const ? (uint32_t)r->value : (uint32_t)((int32_t)cp + r->value);
            return 1;
        }
    }
    for (lo = 0, hi = wp_table_fold_multi_len; lo < hi;) {
        size_t mid = (lo + hi) / 2;
        const wp_fold_multi *m = &wp_table_fold_multi[mid];
        if (cp == m->cp) {
            memcpy(out, m->out, sizeof m->out);
            return m->out[2] ? 3 : 2;
        }
        if (cp < m->cp)
            hi = mid;
        else
            lo = mid + 1;
    }
    out[0] = cp;
    return 1;
}

/* ---- text stream ---- */

typedef struct {
    const uint8_t *p, *end;
} wp_cursor;

/* Next code point of strict UTF-8; a malformed sequence consumes its maximal valid prefix (at least
 * one byte) and reads as U+FFFD, the way Python and WHATWG decoders replace. */
static uint32_t wp_decode(wp_cursor *c)
{
    if (c->p >= c->end)
        return WP_EOF;
    uint8_t b = *c->p++;
    if (b < 0x80)
        return b;
    int need;
    uint32_t cp;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
        cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        cp = b & 0x0F;
        if (b == 0xE0)
            lo = 0xA0;   /* overlong */
        else if (b == 0xED)
            hi = 0x9F;   /* surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        cp = b & 0x07;
        if (b == 0xF0)
            lo = 0x90;
        else if (b == 0xF4)
            hi = 0x8F;   /* above U+10FFFF */
    } else {
        return WP_REPLACEMENT;
    }
    for (int i = 0; i < need; i++, lo = 0x80, hi = 0xBF) {
        if (c->p >= c->end || *c->p < lo || *c->p > hi)
            return WP_REPLACEMENT;
        cp = cp << 6 | (*c->p++ & 0x3F);
    }
    return cp;
}

/* Next code point of the cleaned text: dropped characters skipped, white space as ' '. */
static uint32_t wp_next_clean(wp_cursor *c)
{
    for (;;) {
        uint32_t cp = wp_decode(c);
        if (cp == WP_EOF)
            return cp;
        if (cp == 0 || cp == WP_REPLACEMENT || wp_is_control(cp))
            continue;
        return wp_is_space(cp) ? ' ' : cp;
    }
}

/* Python's final-sigma rule, forward half: no cased letter follows across case-ignorables. Spaces and
 * CJK ideographs (which get spaces around them) are neither, so they end the scan as "not cased". */
static bool wp_sigma_ends_word(wp_cursor after)
{
    for (;;) {
        uint32_t cp = wp_next_clean(&after);
        if (cp == WP_EOF)
            return true;
        if (!wp_is_case_ignorable(cp))
            return !wp_is_cased(cp);
    }
}

/* ---- WordPiece ---- */

typedef struct {
    const wp_vocab *v;
    uint32_t *ids;
    size_t cap, n;
    uint32_t word[WP_MAX_WORD_CHARS + 1];
    size_t wlen;   /* code points in the word, counted beyond what word[] keeps */
} wp_state;

static void wp_emit(wp_state *s, uint32_t id)
{
    if (s->n < s->cap)
        s->ids[s->n] = id;
    s->n++;
}

static size_t wp_put_utf8(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Greedy longest-match-first over the buffered word; all pieces or one [UNK]. */
static void wp_flush(wp_state *s)
{
    size_t n = s->wlen;
    s->wlen = 0;
    if (n == 0)
        return;
    if (n > WP_MAX_WORD_CHARS) {
        wp_emit(s, s->v->unk);
        return;
    }
    char text[4 * WP_MAX_WORD_CHARS], key[2 + 4 * WP_MAX_WORD_CHARS] = "##";
    size_t at[WP_MAX_WORD_CHARS + 1];
    at[0] = 0;
    for (size_t i = 0; i < n; i++)
        at[i + 1] = at[i] + wp_put_utf8(s->word[i], text + at[i]);
    uint32_t piece[WP_MAX_WORD_CHARS];
    size_t npiece = 0;
    for (size_t start = 0; start < n;) {
        const char *from = text + at[start];
        size_t prefix = 0;
        if (start) {   /* pieces after the first are spelled "##piece" in the vocabulary */
            memcpy(key + 2, from, at[n] - at[start]);
            from = key;
            prefix = 2;
        }
        int id = -1;
        size_t end = n;
        for (; end > start; end--) {
            size_t bytes = prefix + at[end] - at[start];
            if (bytes <= s->v->max_bytes && (id = wp_lookup(s->v, from, bytes)) >= 0)
                break;
        }
        if (id < 0) {
            wp_emit(s, s->v->unk);
            return;
        }
        piece[npiece++] = (uint32_t)id;
        start = end;
    }
    for (size_t i = 0; i < npiece; i++)
        wp_emit(s, piece[i]);
}

static void wp_push(wp_state *s, uint32_t cp)
{
    if (s->wlen < WP_MAX_WORD_CHARS + 1)
        s->word[s->wlen] = cp;
    s->wlen++;
}

static void wp_tokenize(wp_state *s, const char *utf8, size_t len)
{
    wp_cursor c = {(const uint8_t *)utf8, (const uint8_t *)utf8 + len};
    bool after_cased = false;   /* final-sigma rule, backward half */
    for (uint32_t cp; (cp = wp_next_clean(&c)) != WP_EOF;) {
        if (cp == ' ') {
            wp_flush(s);
            after_cased = false;
            continue;
        }
        uint32_t f[3];
        int nf;
        if (cp == WP_CAPITAL_SIGMA) {
            f[0] = after_cased && wp_sigma_ends_word(c) ? 0x3C2 : 0x3C3;
            nf = 1;
        } else {
            nf = wp_fold(cp, f);
        }
        if (wp_is_cjk(cp)) {
            wp_flush(s);
            for (int i = 0; i < nf; i++)
                wp_push(s, f[i]);
            wp_flush(s);
            after_cased = false;
            continue;
        }
        if (!wp_is_case_ignorable(cp))
            after_cased = wp_is_cased(cp);
        for (int i = 0; i < nf; i++) {
            if (wp_is_punct(f[i])) {
                wp_flush(s);
                wp_push(s, f[i]);
                wp_flush(s);
            } else {
                wp_push(s, f[i]);
            }
        }
    }
    wp_flush(s);
}

int wp_encode(const wp_vocab *v, const char *utf8, size_t len, uint32_t *ids, size_t cap, size_t *n)
{
    *n = 0;
    if (!v || (!utf8 && len) || (!ids && cap))
        return -1;
    wp_state s = {.v = v, .ids = ids, .cap = cap};
    wp_tokenize(&s, utf8, len);
    *n = s.n;
    return 0;
}

size_t wp_encode_special(const wp_vocab *v, const char *utf8, size_t len, uint32_t *ids, size_t max_len)
{
    size_t n;
    if (max_len < 2 || wp_encode(v, utf8, len, ids + 1, max_len - 2, &n))
        return 0;
    size_t keep = n < max_len - 2 ? n : max_len - 2;
    ids[0] = v->cls;
    ids[keep + 1] = v->sep;
    return keep + 2;
}
