#include "dataset/record.h"

#include "dataset/crc32.h"
#include "dataset/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the shard format references uint16 tokens in place: a little-endian host is required"
#endif

#define SEC_ENTRY   12   /* tag, offset, length */
#define SMPL_LEN    88   /* sample index, labels, id length, id[32], meta[12] */
#define UTT_ENTRY   8    /* role, presence, index, avatar, n_tokens */
#define WAVE_HEAD   8    /* rate, n_utt, reserved; then a u32 sample count per utterance */
#define FRMS_HEAD   8    /* format, n_frames, width, height, n_utt; then a u32 length per frame */
#define FRAME_MAX_SIDE 4096

enum { SEC_SMPL, SEC_CTXT, SEC_UTTS, SEC_WAVE, SEC_FRMS, N_SEC };
static const char *const known_tags[N_SEC] = {"SMPL", "CTXT", "UTTS", "WAVE", "FRMS"};

static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

void ds_buf_free(ds_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int buf_reserve(ds_buf *b, size_t n)
{
    if (n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < n)
        cap *= 2;
    unsigned char *d = realloc(b->data, cap);
    if (!d)
        return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

static size_t pad4(size_t n) { return (n + 3) & ~(size_t)3; }

/* Field names of the media rules: the encoder names the struct's fields, the decoder the sections'. */
enum { F_PRESENCE, F_SAMPLES, F_WAVE, F_FRAME_LEN, F_FRAME };

static const char *media_field(char *b, size_t n, int dec, int kind, int i, int k)
{
    static const char *const enc[] = {"utt[%d].presence", "utt[%d].n_samples", "utt[%d].wave",
                                      "utt[%d].frame_len[%d]", "utt[%d].frame[%d]"};
    static const char *const dec_names[] = {"UTTS.utt[%d].presence", "WAVE.n_samples[%d]", "WAVE.samples[%d]",
                                            "FRMS.frame_len[%d][%d]", "FRMS.frame[%d][%d]"};
    snprintf(b, n, (dec ? dec_names : enc)[kind], i, k);
    return b;
}

/* The rules that tie presence bits, sample counts and frame bytes together (FORMAT.md, "Media rules"), on
 * the struct: the encoder checks its input with them (DS_SHARD_EINVAL), the decoder the parsed sections
 * (DS_SHARD_ECORRUPT). Frame geometry must already be in range. */
static int check_media(const ds_record *r, int dec, char *err, size_t errlen)
{
    const int code = dec ? DS_SHARD_ECORRUPT : DS_SHARD_EINVAL;
    const uint64_t raw_len = 3ull * r->frame_w * r->frame_h;
    char f[48];
    for (int i = 0; i < r->n_utt; i++) {
        const ds_utt *u = &r->utt[i];
        const unsigned p = u->presence;
        if (p & ~DS_PRESENT_ALL_BITS)
            return ds_fail(err, errlen, code, "%s = 0x%02x (only bits 0..3 are defined)",
                           media_field(f, sizeof f, dec, F_PRESENCE, i, 0), p);
        if (((p & DS_PRESENT_AUDIO) && (p & DS_PRESENT_AUDIO_BAD)) ||
            ((p & DS_PRESENT_VIDEO) && (p & DS_PRESENT_VIDEO_BAD)))
            return ds_fail(err, errlen, code, "%s = 0x%02x: a medium both present and bad",
                           media_field(f, sizeof f, dec, F_PRESENCE, i, 0), p);
        if (!r->has_audio && (p & (DS_PRESENT_AUDIO | DS_PRESENT_AUDIO_BAD)))
            return ds_fail(err, errlen, code, "%s = 0x%02x: audio bits in a record without audio (section WAVE)",
                           media_field(f, sizeof f, dec, F_PRESENCE, i, 0), p);
        if (!r->has_video && (p & (DS_PRESENT_VIDEO | DS_PRESENT_VIDEO_BAD)))
            return ds_fail(err, errlen, code, "%s = 0x%02x: video bits in a record without video (section FRMS)",
                           media_field(f, sizeof f, dec, F_PRESENCE, i, 0), p);
        if (!(p & DS_PRESENT_AUDIO) != !u->n_samples)
            return ds_fail(err, errlen, code, "%s = %u with the audio presence bit %s",
                           media_field(f, sizeof f, dec, F_SAMPLES, i, 0), (unsigned)u->n_samples,
                           p & DS_PRESENT_AUDIO ? "set" : "clear");
        if (u->n_samples && !u->wave)
            return ds_fail(err, errlen, code, "%s: NULL with %u samples", media_field(f, sizeof f, dec, F_WAVE, i, 0),
                           (unsigned)u->n_samples);
        for (int k = 0; k < DS_N_FRAMES; k++) {
            uint32_t len = u->frame_len[k];
            if (!(p & DS_PRESENT_VIDEO) != !len)
                return ds_fail(err, errlen, code, "%s = %u with the video presence bit %s",
                               media_field(f, sizeof f, dec, F_FRAME_LEN, i, k), (unsigned)len,
                               p & DS_PRESENT_VIDEO ? "set" : "clear");
            if (!len)
                continue;
            const uint8_t *b = u->frame[k];
            if (!b)
                return ds_fail(err, errlen, code, "%s: NULL with %u bytes", media_field(f, sizeof f, dec, F_FRAME, i, k),
                               (unsigned)len);
            if (r->frame_format == DS_FRAME_RAW && len != raw_len)
                return ds_fail(err, errlen, code, "%s = %u (raw %ux%u frames are %llu bytes)",
                               media_field(f, sizeof f, dec, F_FRAME_LEN, i, k), (unsigned)len,
                               (unsigned)r->frame_w, (unsigned)r->frame_h, (unsigned long long)raw_len);
            if (r->frame_format == DS_FRAME_JPEG && (len < 4 || b[0] != 0xff || b[1] != 0xd8))
                return ds_fail(err, errlen, code, "%s: %u bytes that do not start with FF D8 (not a JPEG)",
                               media_field(f, sizeof f, dec, F_FRAME, i, k), (unsigned)len);
        }
    }
    return DS_SHARD_OK;
}

static int check_fields(const ds_record *r, char *err, size_t errlen)
{
    size_t id_len = strnlen(r->conversation_id, sizeof r->conversation_id);
    if (id_len == 0 || id_len > DS_CONV_ID_MAX)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "conversation_id: length must be 1..%d bytes", DS_CONV_ID_MAX);
    if (r->label7 < -1 || r->label7 > 6)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "label7 = %d (expected -1..6)", r->label7);
    if (r->label32 < -1 || r->label32 > 31)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "label32 = %d (expected -1..31)", r->label32);
    for (int i = 0; i < DS_META_N; i++)
        if (r->meta[i] < 0)
            return ds_fail(err, errlen, DS_SHARD_EINVAL, "meta[%d] = %d (expected >= 0)", i, (int)r->meta[i]);
    if (r->n_ctx && !r->ctx)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "ctx: NULL with %u tokens", (unsigned)r->n_ctx);
    if (r->n_utt < 0 || r->n_utt > DS_MAX_UTT)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "n_utt = %d (expected 0..%d)", r->n_utt, DS_MAX_UTT);
    for (int i = 0; i < r->n_utt; i++) {
        const ds_utt *u = &r->utt[i];
        if (u->role > DS_ROLE_LISTENER_RESPONSE)
            return ds_fail(err, errlen, DS_SHARD_EINVAL, "utt[%d].role = %u (expected 0..2)", i, (unsigned)u->role);
        if (u->avatar < -1)
            return ds_fail(err, errlen, DS_SHARD_EINVAL, "utt[%d].avatar = %d (expected >= -1)", i, (int)u->avatar);
        if (u->n_tokens && !u->tokens)
            return ds_fail(err, errlen, DS_SHARD_EINVAL, "utt[%d].tokens: NULL with %u tokens", i,
                        (unsigned)u->n_tokens);
    }
    if (r->has_audio > 1)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "has_audio = %u (expected 0 or 1)", (unsigned)r->has_audio);
    if (r->has_video > 1)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "has_video = %u (expected 0 or 1)", (unsigned)r->has_video);
    if (r->has_video && r->frame_format > DS_FRAME_JPEG)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "frame_format = %u (expected 0 raw or 1 jpeg)",
                       (unsigned)r->frame_format);
    if (r->has_video && (r->frame_w < 1 || r->frame_w > FRAME_MAX_SIDE || r->frame_h < 1 || r->frame_h > FRAME_MAX_SIDE))
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "frame_w x frame_h = %ux%u (expected 1..%d each)",
                       (unsigned)r->frame_w, (unsigned)r->frame_h, FRAME_MAX_SIDE);
    return check_media(r, 0, err, errlen);
}

static void zero_pad(unsigned char *sec, size_t len) { memset(sec + len, 0, pad4(len) - len); }

/* Media go straight from the caller's arrays into out (one copy); only headers and padding are zeroed. */
int ds_record_encode(const ds_record *r, ds_buf *out, char *err, size_t errlen)
{
    int rc = check_fields(r, err, errlen);
    if (rc)
        return rc;

    const size_t n = (size_t)r->n_utt;
    uint64_t utt_tokens = 0, samples = 0, frame_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        utt_tokens += r->utt[i].n_tokens;
        samples += r->utt[i].n_samples;
        for (int k = 0; k < DS_N_FRAMES; k++)
            frame_bytes += r->utt[i].frame_len[k];
    }
    const int has[N_SEC] = {1, 1, 1, r->has_audio, r->has_video};
    const uint64_t len[N_SEC] = {SMPL_LEN, 4 + 2 * (uint64_t)r->n_ctx, 4 + UTT_ENTRY * n + 2 * utt_tokens,
                                 WAVE_HEAD + 4 * n + 2 * samples, FRMS_HEAD + 4 * DS_N_FRAMES * n + frame_bytes};
    int n_sec = 0;
    for (int k = 0; k < N_SEC; k++)
        n_sec += has[k];
    uint64_t off[N_SEC] = {0}, payload = 4 + (uint64_t)SEC_ENTRY * n_sec;
    for (int k = 0; k < N_SEC; k++)
        if (has[k]) {
            off[k] = payload;
            payload += pad4(len[k]);
        }
    if (payload > UINT32_MAX - DS_RECORD_OVERHEAD)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "record of %llu bytes: more than the format's 4 GiB",
                       (unsigned long long)payload + DS_RECORD_OVERHEAD);

    if (buf_reserve(out, payload + DS_RECORD_OVERHEAD))
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "record of %llu bytes: out of memory",
                       (unsigned long long)payload + DS_RECORD_OVERHEAD);
    unsigned char *h = out->data, *p = h + DS_RECORD_HEADER;
    memset(h, 0, DS_RECORD_HEADER + off[SEC_UTTS] + pad4(len[SEC_UTTS]));

    memcpy(h, DS_RECORD_MAGIC, 4);
    put16(h + 4, DS_RECORD_VERSION);
    put16(h + 6, 0);
    put32(h + 8, (uint32_t)payload);

    put16(p, (uint16_t)n_sec);
    unsigned char *e = p + 4;
    for (int k = 0; k < N_SEC; k++)
        if (has[k]) {
            memcpy(e, known_tags[k], 4);
            put32(e + 4, (uint32_t)off[k]);
            put32(e + 8, (uint32_t)len[k]);
            e += SEC_ENTRY;
        }

    unsigned char *s = p + off[SEC_SMPL];
    put32(s, r->sample_index);
    s[4] = (unsigned char)r->label7;
    s[5] = (unsigned char)r->label32;
    size_t id_len = strlen(r->conversation_id);
    s[6] = (unsigned char)id_len;
    memcpy(s + 8, r->conversation_id, id_len);
    for (int i = 0; i < DS_META_N; i++)
        put32(s + 40 + 4 * i, (uint32_t)r->meta[i]);

    unsigned char *c = p + off[SEC_CTXT];
    put16(c, r->n_ctx);
    if (r->n_ctx)
        memcpy(c + 4, r->ctx, 2 * (size_t)r->n_ctx);

    unsigned char *u = p + off[SEC_UTTS], *tok = u + 4 + UTT_ENTRY * n;
    put16(u, (uint16_t)n);
    for (size_t i = 0; i < n; i++) {
        const ds_utt *ut = &r->utt[i];
        unsigned char *ue = u + 4 + UTT_ENTRY * i;
        ue[0] = ut->role;
        ue[1] = ut->presence;
        put16(ue + 2, ut->index);
        put16(ue + 4, (uint16_t)ut->avatar);
        put16(ue + 6, ut->n_tokens);
        if (ut->n_tokens)
            memcpy(tok, ut->tokens, 2 * (size_t)ut->n_tokens);
        tok += 2 * (size_t)ut->n_tokens;
    }

    if (r->has_audio) {
        unsigned char *w = p + off[SEC_WAVE], *d = w + WAVE_HEAD + 4 * n;
        put32(w, DS_AUDIO_RATE);
        put16(w + 4, (uint16_t)n);
        put16(w + 6, 0);
        for (size_t i = 0; i < n; i++) {
            const ds_utt *ut = &r->utt[i];
            put32(w + WAVE_HEAD + 4 * i, ut->n_samples);
            if (ut->n_samples)
                memcpy(d, ut->wave, 2 * (size_t)ut->n_samples);
            d += 2 * (size_t)ut->n_samples;
        }
        zero_pad(w, len[SEC_WAVE]);
    }
    if (r->has_video) {
        unsigned char *f = p + off[SEC_FRMS], *d = f + FRMS_HEAD + 4 * DS_N_FRAMES * n;
        f[0] = r->frame_format;
        f[1] = DS_N_FRAMES;
        put16(f + 2, r->frame_w);
        put16(f + 4, r->frame_h);
        put16(f + 6, (uint16_t)n);
        for (size_t i = 0; i < n; i++)
            for (int k = 0; k < DS_N_FRAMES; k++) {
                uint32_t fl = r->utt[i].frame_len[k];
                put32(f + FRMS_HEAD + 4 * (DS_N_FRAMES * i + k), fl);
                if (fl)
                    memcpy(d, r->utt[i].frame[k], fl);
                d += fl;
            }
        zero_pad(f, len[SEC_FRMS]);
    }

    put32(p + payload, ds_crc32(0, h, DS_RECORD_HEADER + payload));
    out->len = payload + DS_RECORD_OVERHEAD;
    return DS_SHARD_OK;
}

/* Where the known sections lie in the payload; seen[k] == 0 when the record has no such section. */
typedef struct {
    uint32_t off[N_SEC], len[N_SEC];
    int seen[N_SEC];
} sections;

static int read_table(const unsigned char *p, uint32_t payload, sections *sec, char *err, size_t errlen)
{
    if (payload < 4)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "payload of %u bytes has no section table", payload);
    uint32_t n = get16(p);
    if (get16(p + 2) != 0)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "section table: reserved field is %u (expected 0)", get16(p + 2));
    uint64_t table_end = 4 + (uint64_t)SEC_ENTRY * n;
    if (table_end > payload)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "section table: %u entries overrun the %u-byte payload", n, payload);
    memset(sec, 0, sizeof *sec);
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = p + 4 + SEC_ENTRY * i;
        uint32_t off = get32(e + 4), len = get32(e + 8);
        char tag[5];
        for (int k = 0; k < 4; k++)
            tag[k] = (e[k] >= 0x20 && e[k] < 0x7f) ? (char)e[k] : '?';
        tag[4] = 0;
        if (off % 4 || off < table_end || (uint64_t)off + len > payload)
            return ds_fail(err, errlen, DS_SHARD_ECORRUPT,
                        "section %s: offset %u, length %u outside the payload (table ends at %u, payload %u bytes)",
                        tag, off, len, (unsigned)table_end, payload);
        for (int k = 0; k < N_SEC; k++) {
            if (memcmp(e, known_tags[k], 4) != 0)
                continue;
            if (sec->seen[k])
                return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "section %s appears twice", tag);
            sec->seen[k] = 1;
            sec->off[k] = off;
            sec->len[k] = len;
        }
    }
    for (int k = SEC_SMPL; k <= SEC_UTTS; k++)
        if (!sec->seen[k])
            return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "section %s missing", known_tags[k]);
    return DS_SHARD_OK;
}

static int read_smpl(const unsigned char *s, uint32_t len, ds_record *r, char *err, size_t errlen)
{
    if (len != SMPL_LEN)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "section SMPL: length %u (expected %d)", len, SMPL_LEN);
    r->sample_index = get32(s);
    r->label7 = (int8_t)s[4];
    r->label32 = (int8_t)s[5];
    unsigned id_len = s[6];
    if (r->label7 < -1 || r->label7 > 6)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "SMPL.label7 = %d (expected -1..6)", r->label7);
    if (r->label32 < -1 || r->label32 > 31)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "SMPL.label32 = %d (expected -1..31)", r->label32);
    if (id_len == 0 || id_len > DS_CONV_ID_MAX)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "SMPL.id_len = %u (expected 1..%d)", id_len, DS_CONV_ID_MAX);
    if (s[7] != 0)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "SMPL.reserved = %u (expected 0)", s[7]);
    for (unsigned i = 0; i < 32; i++)
        if ((i < id_len) != (s[8 + i] != 0))
            return ds_fail(err, errlen, DS_SHARD_ECORRUPT,
                        "SMPL.conversation_id: byte %u is %s (id_len %u)", i, i < id_len ? "NUL" : "not NUL padding",
                        id_len);
    memcpy(r->conversation_id, s + 8, id_len);
    r->conversation_id[id_len] = 0;
    for (int i = 0; i < DS_META_N; i++) {
        r->meta[i] = (int32_t)get32(s + 40 + 4 * i);
        if (r->meta[i] < 0)
            return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "SMPL.meta[%d] = %d (expected >= 0)", i, (int)r->meta[i]);
    }
    return DS_SHARD_OK;
}

static int read_ctxt(const unsigned char *c, uint32_t len, ds_record *r, char *err, size_t errlen)
{
    if (len < 4)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "section CTXT: length %u (expected >= 4)", len);
    r->n_ctx = get16(c);
    if (get16(c + 2) != 0)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "CTXT.reserved = %u (expected 0)", get16(c + 2));
    if (len != 4 + 2 * (uint32_t)r->n_ctx)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "section CTXT: length %u does not hold n_tokens = %u",
                    len, (unsigned)r->n_ctx);
    r->ctx = (const uint16_t *)(const void *)(c + 4);
    return DS_SHARD_OK;
}

static int read_utts(const unsigned char *u, uint32_t len, ds_record *r, char *err, size_t errlen)
{
    if (len < 4)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "section UTTS: length %u (expected >= 4)", len);
    unsigned n = get16(u);
    if (n > DS_MAX_UTT)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "UTTS.n_utt = %u (expected 0..%d)", n, DS_MAX_UTT);
    if (get16(u + 2) != 0)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "UTTS.reserved = %u (expected 0)", get16(u + 2));
    uint64_t need = 4 + (uint64_t)UTT_ENTRY * n;
    if (need > len)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "section UTTS: length %u cannot hold %u utterance entries", len, n);
    r->n_utt = (int)n;
    const unsigned char *tok = u + need;
    for (unsigned i = 0; i < n; i++) {
        const unsigned char *e = u + 4 + UTT_ENTRY * i;
        ds_utt *ut = &r->utt[i];
        ut->role = e[0];
        ut->presence = e[1];
        ut->index = get16(e + 2);
        ut->avatar = (int16_t)get16(e + 4);
        ut->n_tokens = get16(e + 6);
        if (ut->role > DS_ROLE_LISTENER_RESPONSE)
            return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "UTTS.utt[%u].role = %u (expected 0..2)", i, ut->role);
        if (ut->avatar < -1)
            return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "UTTS.utt[%u].avatar = %d (expected >= -1)", i, ut->avatar);
        need += 2 * (uint64_t)ut->n_tokens;
        if (need > len)
            return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "UTTS.utt[%u].n_tokens = %u runs past the section (%u bytes)",
                        i, (unsigned)ut->n_tokens, len);
        ut->tokens = (const uint16_t *)(const void *)tok;
        tok += 2 * (size_t)ut->n_tokens;
    }
    if (need != len)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "section UTTS: length %u, contents %u bytes", len, (unsigned)need);
    return DS_SHARD_OK;
}

static int read_wave(const unsigned char *w, uint32_t len, ds_record *r, char *err, size_t errlen)
{
    if (len < WAVE_HEAD)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "section WAVE: length %u (expected >= %d)", len, WAVE_HEAD);
    uint32_t rate = get32(w);
    unsigned n = get16(w + 4);
    if (rate != DS_AUDIO_RATE)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "WAVE.rate = %u (expected %d)", rate, DS_AUDIO_RATE);
    if (n != (unsigned)r->n_utt)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "WAVE.n_utt = %u (UTTS has %d)", n, r->n_utt);
    if (get16(w + 6) != 0)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "WAVE.reserved = %u (expected 0)", get16(w + 6));
    uint64_t need = WAVE_HEAD + 4 * (uint64_t)n;
    if (need > len)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "section WAVE: length %u cannot hold %u sample counts", len, n);
    for (unsigned i = 0; i < n; i++) {
        ds_utt *ut = &r->utt[i];
        ut->n_samples = get32(w + WAVE_HEAD + 4 * i);
        if (need + 2 * (uint64_t)ut->n_samples > len)
            return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "WAVE.n_samples[%u] = %u runs past the section (%u bytes)",
                           i, (unsigned)ut->n_samples, len);
        ut->wave = ut->n_samples ? (const int16_t *)(const void *)(w + need) : NULL;
        need += 2 * (uint64_t)ut->n_samples;
    }
    if (need != len)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "section WAVE: length %u, contents %llu bytes", len,
                       (unsigned long long)need);
    r->has_audio = 1;
    return DS_SHARD_OK;
}

static int read_frms(const unsigned char *f, uint32_t len, ds_record *r, char *err, size_t errlen)
{
    if (len < FRMS_HEAD)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "section FRMS: length %u (expected >= %d)", len, FRMS_HEAD);
    unsigned format = f[0], n_frames = f[1], w = get16(f + 2), h = get16(f + 4), n = get16(f + 6);
    if (format > DS_FRAME_JPEG)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "FRMS.format = %u (expected 0 raw or 1 jpeg)", format);
    if (n_frames != DS_N_FRAMES)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "FRMS.n_frames = %u (expected %d)", n_frames, DS_N_FRAMES);
    if (w < 1 || w > FRAME_MAX_SIDE)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "FRMS.width = %u (expected 1..%d)", w, FRAME_MAX_SIDE);
    if (h < 1 || h > FRAME_MAX_SIDE)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "FRMS.height = %u (expected 1..%d)", h, FRAME_MAX_SIDE);
    if (n != (unsigned)r->n_utt)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "FRMS.n_utt = %u (UTTS has %d)", n, r->n_utt);
    uint64_t need = FRMS_HEAD + 4 * DS_N_FRAMES * (uint64_t)n;
    if (need > len)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "section FRMS: length %u cannot hold %u x %d frame lengths",
                       len, n, DS_N_FRAMES);
    for (unsigned i = 0; i < n; i++)
        for (unsigned k = 0; k < DS_N_FRAMES; k++) {
            ds_utt *ut = &r->utt[i];
            ut->frame_len[k] = get32(f + FRMS_HEAD + 4 * (DS_N_FRAMES * i + k));
            if (need + ut->frame_len[k] > len)
                return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "FRMS.frame_len[%u][%u] = %u runs past the section "
                               "(%u bytes)", i, k, (unsigned)ut->frame_len[k], len);
            ut->frame[k] = ut->frame_len[k] ? f + need : NULL;
            need += ut->frame_len[k];
        }
    if (need != len)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "section FRMS: length %u, contents %llu bytes", len,
                       (unsigned long long)need);
    r->has_video = 1;
    r->frame_format = (uint8_t)format;
    r->frame_w = (uint16_t)w;
    r->frame_h = (uint16_t)h;
    return DS_SHARD_OK;
}

int ds_record_decode(const void *data, size_t len, ds_record *r, char *err, size_t errlen)
{
    const unsigned char *h = data;
    if (!h || !r)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "decode: NULL buffer or record");
    memset(r, 0, sizeof *r);
    if (len < DS_RECORD_OVERHEAD)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "length %zu is shorter than the %d-byte header and CRC",
                    len, DS_RECORD_OVERHEAD);
    if (memcmp(h, DS_RECORD_MAGIC, 4) != 0)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "bad magic %02x %02x %02x %02x (expected \"EMPR\")",
                    h[0], h[1], h[2], h[3]);
    r->version = get16(h + 4);
    r->flags = get16(h + 6);
    uint32_t payload = get32(h + 8);
    if (r->version == 0)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "version 0 (expected >= 1)");
    if ((uint64_t)payload + DS_RECORD_OVERHEAD != len)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "length %zu does not match payload length %u + %d",
                    len, payload, DS_RECORD_OVERHEAD);
    if ((uintptr_t)h & 1u)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "record buffer at an odd address: tokens cannot be read in place");
    uint32_t stored = get32(h + DS_RECORD_HEADER + payload);
    uint32_t computed = ds_crc32(0, h, DS_RECORD_HEADER + (size_t)payload);
    if (stored != computed)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "crc mismatch (stored 0x%08x, computed 0x%08x)", stored, computed);
    /* Low byte: features a reader must understand; high byte: hints it may ignore (FORMAT.md). */
    if (r->flags & 0x00ffu)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "flags 0x%04x: unknown incompatible feature bits 0x%02x",
                    r->flags, r->flags & 0x00ffu);

    const unsigned char *p = h + DS_RECORD_HEADER;
    sections sec;
    int rc = read_table(p, payload, &sec, err, errlen);
    if (!rc)
        rc = read_smpl(p + sec.off[SEC_SMPL], sec.len[SEC_SMPL], r, err, errlen);
    if (!rc)
        rc = read_ctxt(p + sec.off[SEC_CTXT], sec.len[SEC_CTXT], r, err, errlen);
    if (!rc)
        rc = read_utts(p + sec.off[SEC_UTTS], sec.len[SEC_UTTS], r, err, errlen);
    if (!rc && sec.seen[SEC_WAVE])
        rc = read_wave(p + sec.off[SEC_WAVE], sec.len[SEC_WAVE], r, err, errlen);
    if (!rc && sec.seen[SEC_FRMS])
        rc = read_frms(p + sec.off[SEC_FRMS], sec.len[SEC_FRMS], r, err, errlen);
    if (!rc)
        rc = check_media(r, 1, err, errlen);
    return rc;
}
