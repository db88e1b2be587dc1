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
        if (u->presence & ~(DS_PRESENT_AUDIO | DS_PRESENT_VIDEO))
            return ds_fail(err, errlen, DS_SHARD_EINVAL, "utt[%d].presence = 0x%02x (only bits 0 and 1 are defined)",
                        i, (unsigned)u->presence);
        if (u->avatar < -1)
            return ds_fail(err, errlen, DS_SHARD_EINVAL, "utt[%d].avatar = %d (expected >= -1)", i, (int)u->avatar);
        if (u->n_tokens && !u->tokens)
            return ds_fail(err, errlen, DS_SHARD_EINVAL, "utt[%d].tokens: NULL with %u tokens", i,
                        (unsigned)u->n_tokens);
    }
    return DS_SHARD_OK;
}

int ds_record_encode(const ds_record *r, ds_buf *out, char *err, size_t errlen)
{
    int rc = check_fields(r, err, errlen);
    if (rc)
        return rc;

    size_t utt_tokens = 0;
    for (int i = 0; i < r->n_utt; i++)
        utt_tokens += r->utt[i].n_tokens;
    const size_t table = 4 + 3 * SEC_ENTRY;
    const size_t ctx_len = 4 + 2 * (size_t)r->n_ctx;
    const size_t utts_len = 4 + UTT_ENTRY * (size_t)r->n_utt + 2 * utt_tokens;
    const size_t smpl_off = table, ctx_off = smpl_off + SMPL_LEN, utts_off = ctx_off + pad4(ctx_len);
    const size_t payload = utts_off + pad4(utts_len);

    if (buf_reserve(out, payload + DS_RECORD_OVERHEAD))
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "record of %zu bytes: out of memory", payload + DS_RECORD_OVERHEAD);
    unsigned char *h = out->data, *p = h + DS_RECORD_HEADER;
    memset(h, 0, payload + DS_RECORD_OVERHEAD);

    memcpy(h, DS_RECORD_MAGIC, 4);
    put16(h + 4, DS_RECORD_VERSION);
    put16(h + 6, 0);
    put32(h + 8, (uint32_t)payload);

    put16(p, 3);
    const struct { const char *tag; size_t off, len; } sec[3] = {
        {"SMPL", smpl_off, SMPL_LEN}, {"CTXT", ctx_off, ctx_len}, {"UTTS", utts_off, utts_len}};
    for (int i = 0; i < 3; i++) {
        unsigned char *e = p + 4 + SEC_ENTRY * i;
        memcpy(e, sec[i].tag, 4);
        put32(e + 4, (uint32_t)sec[i].off);
        put32(e + 8, (uint32_t)sec[i].len);
    }

    unsigned char *s = p + smpl_off;
    put32(s, r->sample_index);
    s[4] = (unsigned char)r->label7;
    s[5] = (unsigned char)r->label32;
    size_t id_len = strlen(r->conversation_id);
    s[6] = (unsigned char)id_len;
    memcpy(s + 8, r->conversation_id, id_len);
    for (int i = 0; i < DS_META_N; i++)
        put32(s + 40 + 4 * i, (uint32_t)r->meta[i]);

    unsigned char *c = p + ctx_off;
    put16(c, r->n_ctx);
    if (r->n_ctx)
        memcpy(c + 4, r->ctx, 2 * (size_t)r->n_ctx);

    unsigned char *u = p + utts_off, *tok = u + 4 + UTT_ENTRY * (size_t)r->n_utt;
    put16(u, (uint16_t)r->n_utt);
    for (int i = 0; i < r->n_utt; i++) {
        const ds_utt *ut = &r->utt[i];
        unsigned char *e = u + 4 + UTT_ENTRY * i;
        e[0] = ut->role;
        e[1] = ut->presence;
        put16(e + 2, ut->index);
        put16(e + 4, (uint16_t)ut->avatar);
        put16(e + 6, ut->n_tokens);
        if (ut->n_tokens)
            memcpy(tok, ut->tokens, 2 * (size_t)ut->n_tokens);
        tok += 2 * (size_t)ut->n_tokens;
    }

    put32(p + payload, ds_crc32(0, h, DS_RECORD_HEADER + payload));
    out->len = payload + DS_RECORD_OVERHEAD;
    return DS_SHARD_OK;
}

/* Where the sections a v1 reader needs lie in the payload; 0 length means not seen. */
typedef struct {
    uint32_t off[3], len[3];
} sections;

static const char *const known_tags[3] = {"SMPL", "CTXT", "UTTS"};

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
    int seen[3] = {0, 0, 0};
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
        for (int k = 0; k < 3; k++) {
            if (memcmp(e, known_tags[k], 4) != 0)
                continue;
            if (seen[k])
                return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "section %s appears twice", tag);
            seen[k] = 1;
            sec->off[k] = off;
            sec->len[k] = len;
        }
    }
    for (int k = 0; k < 3; k++)
        if (!seen[k])
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
        if (ut->presence & ~(DS_PRESENT_AUDIO | DS_PRESENT_VIDEO))
            return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "UTTS.utt[%u].presence = 0x%02x (only bits 0 and 1 defined)",
                        i, ut->presence);
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
        rc = read_smpl(p + sec.off[0], sec.len[0], r, err, errlen);
    if (!rc)
        rc = read_ctxt(p + sec.off[1], sec.len[1], r, err, errlen);
    if (!rc)
        rc = read_utts(p + sec.off[2], sec.len[2], r, err, errlen);
    return rc;
}
