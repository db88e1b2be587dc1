/* test_shard: record format, CRC, LMDB shards, manifest and verify of dataset/.
 * References, run at test time: Python's zlib.crc32 (crc_ref.py) and an independent python3-lmdb + numpy
 * reader written from dataset/FORMAT.md alone (read_shards.py). This file: CRC and records (media included),
 * and main. */
#include "tests/shard/fixtures.h"

#include "dataset/crc32.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

void test_crc_known_and_chained(void **state)
{
    (void)state;
    assert_int_equal(ds_crc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(ds_crc32(0, "", 0), 0);
    unsigned char buf[1000];
    uint64_t s = 7;
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)rnd(&s);
    uint32_t whole = ds_crc32(0, buf, sizeof buf);
    for (size_t cut = 0; cut <= sizeof buf; cut += 37)
        assert_int_equal(ds_crc32(ds_crc32(0, buf, cut), buf + cut, sizeof buf - cut), whole);
}

void test_crc_matches_zlib(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    const size_t lens[] = {0, 1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 255, 1000, 4097, 65537, 1 << 20};
    const int n = (int)(sizeof lens / sizeof *lens);
    uint32_t ours[16];
    char cmd[4096];
    int at = snprintf(cmd, sizeof cmd, "%s %s/crc_ref.py", EMPD_PYTHON, SHARD_TEST_SRC);
    uint64_t s = 11;
    for (int i = 0; i < n; i++) {
        unsigned char *b = malloc(lens[i] + 1);
        for (size_t k = 0; k < lens[i]; k++)
            b[k] = (unsigned char)rnd(&s);
        ours[i] = ds_crc32(0, b, lens[i]);
        char p[512];
        snprintf(p, sizeof p, "%s/buf%02d", dir, i);
        FILE *f = fopen(p, "wb");
        assert_int_equal(fwrite(b, 1, lens[i], f), lens[i]);
        fclose(f);
        free(b);
        at += snprintf(cmd + at, sizeof cmd - (size_t)at, " %s", p);
    }
    FILE *py = popen(cmd, "r");
    assert_non_null(py);
    for (int i = 0; i < n; i++) {
        unsigned ref;
        assert_int_equal(fscanf(py, "%x", &ref), 1);
        assert_int_equal(ours[i], ref);
    }
    assert_int_equal(pclose(py), 0);
    rm_tmpdir(dir);
}

/* ---- records ---- */

/* Every media pointer of a decoded record lies inside [base, base + len). */
static void assert_media_inside(const ds_record *d, const unsigned char *base, size_t len)
{
    for (int u = 0; u < d->n_utt; u++) {
        const ds_utt *ut = &d->utt[u];
        if (ut->n_samples) {
            const unsigned char *w = (const unsigned char *)ut->wave;
            assert_true(w >= base && w + 2u * ut->n_samples <= base + len);
            assert_int_equal((uintptr_t)w % 2, 0);
        }
        for (int k = 0; k < DS_N_FRAMES; k++)
            if (ut->frame_len[k])
                assert_true(ut->frame[k] >= base && ut->frame[k] + ut->frame_len[k] <= base + len);
    }
}

void test_record_roundtrip_random(void **state)
{
    (void)state;
    rec_store *st = malloc(sizeof *st);
    ds_buf buf = {0};
    const media_cfg saved = gen_media, cfgs[] = {
        {0, 0, 0, 0, 0}, {1, 0, 0, 0, 0}, {0, 1, DS_FRAME_RAW, 4, 8}, {1, 1, DS_FRAME_RAW, 1, 1}, {1, 1, DS_FRAME_JPEG, 6, 4},
    };
    size_t with_audio = 0, with_video = 0, bad = 0;
    for (int c = 0; c < 5; c++) {
        gen_media = cfgs[c];
        for (uint32_t i = 0; i < 600; i++) {
            gen_record(st, 1, i);
            assert_int_equal(ds_record_encode(&st->r, &buf, err, sizeof err), DS_SHARD_OK);
            assert_int_equal(buf.len % 4, 0);
            ds_record d;
            assert_int_equal(ds_record_decode(buf.data, buf.len, &d, err, sizeof err), DS_SHARD_OK);
            assert_int_equal(d.version, DS_RECORD_VERSION);
            assert_int_equal(d.flags, 0);
            assert_rec_eq(&st->r, &d);
            if (d.n_ctx) /* zero-copy: tokens and media point into the buffer */
                assert_true((const unsigned char *)d.ctx > buf.data &&
                            (const unsigned char *)d.ctx < buf.data + buf.len);
            assert_media_inside(&d, buf.data, buf.len);
            for (int u = 0; u < d.n_utt; u++) {
                with_audio += d.utt[u].n_samples > 0;
                with_video += d.utt[u].frame_len[0] > 0;
                bad += (d.utt[u].presence & (DS_PRESENT_AUDIO_BAD | DS_PRESENT_VIDEO_BAD)) != 0;
            }
        }
    }
    gen_media = saved;
    assert_true(with_audio > 1000 && with_video > 1000 && bad > 1000);
    /* Extremes: empty lists, a 31-byte id, -1 labels, largest meta. */
    memset(&st->r, 0, sizeof st->r);
    memset(st->r.conversation_id, 'x', DS_CONV_ID_MAX);
    st->r.label7 = st->r.label32 = -1;
    st->r.sample_index = 0xffffffffu;
    st->r.meta[11] = 0x7fffffff;
    ds_record d;
    assert_int_equal(ds_record_encode(&st->r, &buf, err, sizeof err), DS_SHARD_OK);
    assert_int_equal(ds_record_decode(buf.data, buf.len, &d, err, sizeof err), DS_SHARD_OK);
    assert_rec_eq(&st->r, &d);
    /* Media sections without utterances, and the largest frame side. */
    st->r.has_audio = st->r.has_video = 1;
    st->r.frame_w = 4096;
    st->r.frame_h = 1;
    assert_int_equal(ds_record_encode(&st->r, &buf, err, sizeof err), DS_SHARD_OK);
    assert_int_equal(ds_record_decode(buf.data, buf.len, &d, err, sizeof err), DS_SHARD_OK);
    assert_rec_eq(&st->r, &d);
    ds_buf_free(&buf);
    free(st);
}

/* Utterance 0 with audio and video, 1 with both bad, 2 with neither: the base of the media cases. */
static void set_media(rec_store *st)
{
    ds_record *r = &st->r;
    r->has_audio = r->has_video = 1;
    r->frame_format = DS_FRAME_JPEG;
    r->frame_w = 6;
    r->frame_h = 4;
    for (int u = 0; u < r->n_utt; u++) {
        ds_utt *ut = &r->utt[u];
        ut->presence = u == 0 ? DS_PRESENT_AUDIO | DS_PRESENT_VIDEO
                     : u == 1 ? DS_PRESENT_AUDIO_BAD | DS_PRESENT_VIDEO_BAD : 0;
        ut->n_samples = u == 0 ? 3 : 0;
        ut->wave = st->wave[u];
        ut->tokens = st->tok[u];
        for (int k = 0; k < DS_N_FRAMES; k++) {
            ut->frame_len[k] = u == 0 ? 4 + (uint32_t)k : 0;
            ut->frame[k] = st->frames[u][k];
            st->frames[u][k][0] = 0xff;
            st->frames[u][k][1] = 0xd8;
        }
    }
}

void test_record_rejects_bad_fields(void **state)
{
    (void)state;
    rec_store *st = malloc(sizeof *st);
    ds_buf buf = {0};
    int n = 0;
#define CASE(body, name) do { \
        gen_record(st, 2, 5); st->r.n_utt = 3; st->r.utt[2].n_tokens = 1; set_media(st); body; \
        assert_int_equal(ds_record_encode(&st->r, &buf, err, sizeof err), DS_SHARD_EINVAL); \
        if (!strstr(err, name)) { fail_msg("got \"%s\", want \"%s\"", err, name); } n++; } while (0)
    gen_record(st, 2, 5);
    st->r.n_utt = 3;
    set_media(st);
    assert_int_equal(ds_record_encode(&st->r, &buf, err, sizeof err), DS_SHARD_OK);
    CASE(st->r.n_utt = DS_MAX_UTT + 1, "n_utt");
    CASE(memset(st->r.conversation_id, 'a', sizeof st->r.conversation_id), "conversation_id");
    CASE(st->r.conversation_id[0] = 0, "conversation_id");
    CASE(st->r.label7 = 7, "label7");
    CASE(st->r.label32 = -2, "label32");
    CASE(st->r.meta[4] = -1, "meta[4]");
    CASE(st->r.utt[1].role = 3, "utt[1].role");
    CASE(st->r.utt[2].presence = 0x10, "utt[2].presence = 0x10 (only bits 0..3");
    CASE(st->r.utt[0].avatar = -2, "utt[0].avatar");
    CASE(st->r.utt[2].tokens = NULL, "utt[2].tokens");
    /* Media. */
    CASE(st->r.has_audio = 2, "has_audio = 2");
    CASE(st->r.has_video = 3, "has_video = 3");
    CASE(st->r.frame_format = 2, "frame_format = 2");
    CASE(st->r.frame_w = 0, "frame_w x frame_h = 0x4");
    CASE(st->r.frame_h = 4097, "frame_w x frame_h = 6x4097");
    CASE(st->r.utt[0].presence |= DS_PRESENT_AUDIO_BAD, "utt[0].presence = 0x07: a medium both present and bad");
    CASE(st->r.utt[0].presence |= DS_PRESENT_VIDEO_BAD, "utt[0].presence = 0x0b: a medium both present and bad");
    CASE(st->r.has_audio = 0, "utt[0].presence = 0x03: audio bits in a record without audio");
    CASE((st->r.has_audio = 0, st->r.utt[0].presence = DS_PRESENT_VIDEO, st->r.utt[0].n_samples = 0),
         "utt[1].presence = 0x0c: audio bits");
    CASE(st->r.has_video = 0, "utt[0].presence = 0x03: video bits in a record without video");
    CASE(st->r.utt[0].n_samples = 0, "utt[0].n_samples = 0 with the audio presence bit set");
    CASE(st->r.utt[2].n_samples = 5, "utt[2].n_samples = 5 with the audio presence bit clear");
    CASE(st->r.utt[0].wave = NULL, "utt[0].wave: NULL with 3 samples");
    CASE(st->r.utt[0].frame_len[3] = 0, "utt[0].frame_len[3] = 0 with the video presence bit set");
    CASE(st->r.utt[1].frame_len[7] = 9, "utt[1].frame_len[7] = 9 with the video presence bit clear");
    CASE(st->r.utt[0].frame[5] = NULL, "utt[0].frame[5]: NULL with 9 bytes");
    CASE(st->r.utt[0].frame_len[0] = 3, "utt[0].frame[0]: 3 bytes that do not start with FF D8");
    CASE(st->frames[0][6][1] = 0xd9, "utt[0].frame[6]: 10 bytes that do not start with FF D8");
    CASE(st->r.frame_format = DS_FRAME_RAW, "utt[0].frame_len[0] = 4 (raw 6x4 frames are 72 bytes)");
#undef CASE
    assert_int_equal(n, 29);
    /* Raw frames of the right size need no JPEG marker. */
    gen_record(st, 2, 5);
    st->r.n_utt = 3;
    set_media(st);
    st->r.frame_format = DS_FRAME_RAW;
    st->r.frame_w = st->r.frame_h = 4;
    for (int k = 0; k < DS_N_FRAMES; k++) {
        st->r.utt[0].frame_len[k] = 48;
        st->frames[0][k][0] = 0;
    }
    assert_int_equal(ds_record_encode(&st->r, &buf, err, sizeof err), DS_SHARD_OK);
    ds_buf_free(&buf);
    free(st);
}

/* A copy of the record placed so that its last byte is the last readable byte before a PROT_NONE page:
 * any read past len faults. */
typedef struct {
    unsigned char *map;
    size_t page;
} guard;

static unsigned char *guard_place(guard *g, const unsigned char *src, size_t len)
{
    unsigned char *p = g->map + g->page - len;
    memcpy(p, src, len);
    return p;
}

void test_record_every_corruption_detected(void **state)
{
    (void)state;
    rec_store *st = malloc(sizeof *st);
    gen_record(st, 3, 9);
    st->r.n_ctx = 3;
    st->r.n_utt = 2;
    st->r.utt[0].n_tokens = 2;
    st->r.utt[1].n_tokens = 3;
    set_media(st); /* utterance 0: 3 samples and 8 JPEG-looking frames of 4..11 bytes; 1: both media bad */
    st->r.utt[0].wave = (const int16_t[3]){-1, 2, 300};
    ds_buf buf = {0};
    assert_int_equal(ds_record_encode(&st->r, &buf, err, sizeof err), DS_SHARD_OK);
    const size_t len = buf.len;
    guard g = {NULL, (size_t)sysconf(_SC_PAGESIZE)};
    g.map = mmap(NULL, 2 * g.page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g.map != MAP_FAILED);
    assert_int_equal(mprotect(g.map + g.page, g.page, PROT_NONE), 0);
    assert_true(len < g.page);
    unsigned char *work = malloc(len);
    ds_record d;
    size_t structural_ok = 0;

    for (size_t pos = 0; pos < len; pos++)
        for (int x = 1; x < 256; x++) {
            memcpy(work, buf.data, len);
            work[pos] ^= (unsigned char)x;
            err[0] = 0;
            assert_int_equal(ds_record_decode(guard_place(&g, work, len), len, &d, err, sizeof err),
                             DS_SHARD_ECORRUPT);
            assert_true(err[0] != 0);
            /* The same damage with a valid CRC exercises the structural checks on their own. */
            size_t body = len - 4;
            if (pos < body) {
                uint32_t c = ds_crc32(0, work, body);
                memcpy(work + body, &c, 4);
                const unsigned char *at = guard_place(&g, work, len);
                int rc = ds_record_decode(at, len, &d, err, sizeof err);
                assert_true(rc == DS_SHARD_OK || rc == DS_SHARD_ECORRUPT);
                if (rc == DS_SHARD_OK)
                    assert_media_inside(&d, at, len);
                structural_ok += rc == DS_SHARD_OK;
            }
        }
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(ds_record_decode(guard_place(&g, buf.data, cut), cut, &d, err, sizeof err),
                         DS_SHARD_ECORRUPT);
    /* One byte too many. */
    unsigned char *longer = malloc(len + 2);
    memcpy(longer, buf.data, len);
    longer[len] = longer[len + 1] = 0;
    assert_int_equal(ds_record_decode(longer, len + 2, &d, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "length"));
    /* With the CRC repaired, only damage to values without an invalid range survives (tokens, meta, ids,
     * samples, frame bytes past the JPEG marker). */
    assert_true(structural_ok > 0 && structural_ok < len * 255);
    print_message("corruption: %zu positions x 255 values, %zu truncations; %zu CRC-repaired variants decode\n",
                  len, len, structural_ok);
    munmap(g.map, 2 * g.page);
    free(longer);
    free(work);
    ds_buf_free(&buf);
    free(st);
}

static uint32_t rd32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static void wr32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }

static void fix_crc(unsigned char *rec, size_t len) { wr32(rec + len - 4, ds_crc32(0, rec, len - 4)); }

/* Record offset of the table entry of section tag, and of the section itself; 0 when absent. */
static size_t sec_entry(const unsigned char *rec, const char *tag)
{
    uint16_t n;
    memcpy(&n, rec + 12, 2);
    for (size_t i = 0; i < n; i++)
        if (memcmp(rec + 16 + 12 * i, tag, 4) == 0)
            return 16 + 12 * i;
    return 0;
}

static size_t sec_at(const unsigned char *rec, const char *tag)
{
    size_t e = sec_entry(rec, tag);
    return e ? 12 + rd32(rec + e + 4) : 0;
}

void test_record_versioning(void **state)
{
    (void)state;
    rec_store *st = malloc(sizeof *st);
    gen_record(st, 4, 3);
    ds_buf buf = {0};
    assert_int_equal(ds_record_encode(&st->r, &buf, err, sizeof err), DS_SHARD_OK);
    ds_record d;

    /* A future section ("XTRA", 8 bytes) appended after a grown table, in a future version: skipped. */
    uint32_t plen = rd32(buf.data + 8);
    uint16_t nsec;
    memcpy(&nsec, buf.data + 12, 2);
    size_t table = 4 + 12u * nsec, nlen = buf.len + 12 + 8;
    unsigned char *v2 = calloc(1, nlen);
    memcpy(v2, buf.data, 12 + table);
    unsigned char *p = v2 + 12;
    for (int i = 0; i < nsec; i++)
        wr32(p + 4 + 12 * i + 4, rd32(p + 4 + 12 * i + 4) + 12);
    memcpy(p + table, "XTRA", 4);
    wr32(p + table + 4, plen + 12);
    wr32(p + table + 8, 8);
    memcpy(p + table + 12, buf.data + 12 + table, plen - table);
    memset(p + plen + 12, 0x77, 8);
    wr16(p, (uint16_t)(nsec + 1));
    wr16(v2 + 4, 3);
    wr32(v2 + 8, plen + 20);
    fix_crc(v2, nlen);
    assert_int_equal(ds_record_decode(v2, nlen, &d, err, sizeof err), DS_SHARD_OK);
    assert_int_equal(d.version, 3);
    assert_rec_eq(&st->r, &d);

    wr16(v2 + 6, 0x0100); /* compatible hint: ignored */
    fix_crc(v2, nlen);
    assert_int_equal(ds_record_decode(v2, nlen, &d, err, sizeof err), DS_SHARD_OK);
    wr16(v2 + 6, 0x0001); /* incompatible feature: refused */
    fix_crc(v2, nlen);
    assert_int_equal(ds_record_decode(v2, nlen, &d, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "incompatible"));
    wr16(v2 + 6, 0);
    wr16(v2 + 4, 0);
    fix_crc(v2, nlen);
    assert_int_equal(ds_record_decode(v2, nlen, &d, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "version"));
    wr16(v2 + 4, 2);
    memcpy(p + 4, "SMPX", 4); /* the required section renamed away */
    fix_crc(v2, nlen);
    assert_int_equal(ds_record_decode(v2, nlen, &d, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "SMPL missing"));

    /* The CRC message carries both values. */
    buf.data[buf.len - 6] ^= 1;
    uint32_t stored = rd32(buf.data + buf.len - 4), computed = ds_crc32(0, buf.data, buf.len - 4);
    char want[128];
    snprintf(want, sizeof want, "crc mismatch (stored 0x%08x, computed 0x%08x)", stored, computed);
    assert_int_equal(ds_record_decode(buf.data, buf.len, &d, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_string_equal(err, want);
    /* An odd address cannot hold tokens in place. */
    buf.data[buf.len - 6] ^= 1;
    unsigned char *odd = malloc(buf.len + 1);
    memcpy(odd + 1, buf.data, buf.len);
    assert_int_equal(ds_record_decode(odd + 1, buf.len, &d, err, sizeof err), DS_SHARD_EINVAL);
    free(odd);

    /* A version-1 record (SMPL, CTXT, UTTS only, presence 0) reads without media; with a presence bit it is
     * refused, since it has no section to hold that medium. */
    const media_cfg saved = gen_media;
    gen_media = (media_cfg){0, 0, 0, 0, 0};
    gen_record(st, 4, 3);
    gen_media = saved;
    assert_true(st->r.n_utt > 0);
    assert_int_equal(ds_record_encode(&st->r, &buf, err, sizeof err), DS_SHARD_OK);
    assert_int_equal(rd32(buf.data + 12) & 0xffff, 3);
    wr16(buf.data + 4, 1);
    fix_crc(buf.data, buf.len);
    assert_int_equal(ds_record_decode(buf.data, buf.len, &d, err, sizeof err), DS_SHARD_OK);
    assert_int_equal(d.version, 1);
    assert_int_equal(d.has_audio, 0);
    assert_int_equal(d.has_video, 0);
    assert_rec_eq(&st->r, &d);
    buf.data[sec_at(buf.data, "UTTS") + 4 + 1] = DS_PRESENT_VIDEO_BAD;
    fix_crc(buf.data, buf.len);
    assert_int_equal(ds_record_decode(buf.data, buf.len, &d, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "UTTS.utt[0].presence = 0x08: video bits in a record without video (section FRMS)"));
    free(v2);
    ds_buf_free(&buf);
    free(st);
}

/* Damage with a valid CRC, one rule at a time: every variant carries 4 spare zero bytes at the end of the
 * payload (so a grown section still fits), then one field of width 1, 2 or 4 bytes set to value. */
typedef struct {
    size_t at;
    int width;
    uint32_t value;
    const char *expect;
} damage;

static void check_damage(const ds_buf *buf, const damage *cases, size_t n)
{
    const size_t len = buf->len + 4;
    unsigned char *w = malloc(len);
    ds_record d;
    for (size_t i = 0; i <= n; i++) {
        memcpy(w, buf->data, buf->len - 4);
        memset(w + buf->len - 4, 0, 8);
        wr32(w + 8, rd32(buf->data + 8) + 4);
        if (i < n) {
            assert_true(cases[i].at >= 12 && cases[i].at + (size_t)cases[i].width <= buf->len - 4);
            if (cases[i].width == 4)
                wr32(w + cases[i].at, cases[i].value);
            else if (cases[i].width == 2)
                wr16(w + cases[i].at, (uint16_t)cases[i].value);
            else
                w[cases[i].at] = (unsigned char)cases[i].value;
        }
        fix_crc(w, len);
        int rc = ds_record_decode(w, len, &d, err, sizeof err);
        if (i == n) /* untouched (spare bytes only): padding after the last section is allowed */
            assert_int_equal(rc, DS_SHARD_OK);
        else if (rc != DS_SHARD_ECORRUPT || !strstr(err, cases[i].expect))
            fail_msg("case %zu: rc %d, \"%s\", want \"%s\"", i, rc, rc ? err : "", cases[i].expect);
    }
    free(w);
}

void test_record_structure_checks(void **state)
{
    (void)state;
    rec_store *st = malloc(sizeof *st);
    gen_record(st, 16, 1);
    st->r.n_utt = 2;
    st->r.utt[0].n_tokens = 3;
    st->r.utt[1].n_tokens = 1;
    st->r.n_ctx = 2;
    set_media(st);
    snprintf(st->r.conversation_id, sizeof st->r.conversation_id, "65020");
    ds_buf buf = {0};
    assert_int_equal(ds_record_encode(&st->r, &buf, err, sizeof err), DS_SHARD_OK);
    /* Layout from FORMAT.md: the table at 12, entries of 12 bytes from 16, sections found by tag. */
    const unsigned char *b = buf.data;
    const size_t P = 12, SMPL = sec_at(b, "SMPL"), UTTS = sec_at(b, "UTTS");
    const size_t eS = sec_entry(b, "SMPL"), eC = sec_entry(b, "CTXT"), eU = sec_entry(b, "UTTS");
    assert_int_equal(eS, 16);
    assert_int_equal(SMPL, 12 + 4 + 12 * 5);
    const damage cases[] = {
        {eU + 8, 4, rd32(b + eU + 8) + 4, "section UTTS: length"},
        {eC + 8, 4, 12, "section CTXT: length 12 does not hold n_tokens = 2"},
        {eS + 8, 4, 92, "section SMPL: length 92"},
        {eS + 4, 4, 78, "section SMPL: offset 78"},
        {P, 2, 4000, "section table: 4000 entries overrun"},
        {P + 2, 2, 1, "section table: reserved"},
        {eC, 4, 0x4c504d53u, "section SMPL appears twice"},  /* "SMPL" */
        {SMPL + 4, 1, 7, "SMPL.label7 = 7"},
        {SMPL + 5, 1, 0xfe, "SMPL.label32 = -2"},
        {SMPL + 6, 1, 0, "SMPL.id_len = 0"},
        {SMPL + 7, 1, 1, "SMPL.reserved"},
        {SMPL + 8 + 20, 1, 'x', "SMPL.conversation_id: byte 20"},
        {SMPL + 8 + 2, 1, 0, "SMPL.conversation_id: byte 2 is NUL"},
        {SMPL + 40 + 4 * 9, 4, 0x80000000u, "SMPL.meta[9]"},
        {UTTS, 2, 11, "UTTS.n_utt = 11"},
        {UTTS + 4 + 8, 1, 3, "UTTS.utt[1].role = 3"},
        {UTTS + 4 + 1, 1, 0x10, "UTTS.utt[0].presence"},
        {UTTS + 4 + 4, 2, 0xfffe, "UTTS.utt[0].avatar = -2"},
        {UTTS + 4 + 6, 2, 200, "UTTS.utt[0].n_tokens = 200 runs past"},
    };
    check_damage(&buf, cases, sizeof cases / sizeof *cases);
    ds_buf_free(&buf);
    free(st);
}

/* The media sections' own rules, decoded from damaged records with valid CRCs. */
void test_record_media_rules(void **state)
{
    (void)state;
    rec_store *st = malloc(sizeof *st);
    gen_record(st, 17, 1);
    st->r.n_utt = 3;
    set_media(st); /* utt 0: 3 samples, frames of 4..11 bytes; utt 1: both bad; utt 2: neither */
    ds_buf buf = {0};
    assert_int_equal(ds_record_encode(&st->r, &buf, err, sizeof err), DS_SHARD_OK);
    const unsigned char *b = buf.data;
    const size_t UTTS = sec_at(b, "UTTS"), W = sec_at(b, "WAVE"), F = sec_at(b, "FRMS");
    const size_t eW = sec_entry(b, "WAVE"), eF = sec_entry(b, "FRMS");
    assert_true(W && F && W % 4 == 0 && F % 4 == 0);
    /* FORMAT.md's layout: WAVE = rate, n_utt, reserved, counts, samples; FRMS = format, n_frames, width,
     * height, n_utt, 8 lengths per utterance, bytes. */
    assert_int_equal(rd32(b + W), 16000);
    assert_int_equal(rd32(b + eW + 8), 8 + 4 * 3 + 2 * 3);
    assert_int_equal(rd32(b + W + 8), 3);
    assert_memory_equal(b + W + 8 + 12, st->r.utt[0].wave, 6);
    assert_int_equal(b[F], DS_FRAME_JPEG);
    assert_int_equal(b[F + 1], 8);
    assert_int_equal(rd32(b + F + 8 + 4 * 7), 11);
    assert_int_equal(rd32(b + eF + 8), 8 + 32 * 3 + (4 + 5 + 6 + 7 + 8 + 9 + 10 + 11));
    assert_int_equal(b[F + 8 + 96], 0xff);
    assert_int_equal(b[F + 8 + 96 + 1], 0xd8);
    const size_t f0 = F + 8 + 96; /* utterance 0's first frame */
    const damage cases[] = {
        {W, 4, 8000, "WAVE.rate = 8000 (expected 16000)"},
        {W + 4, 2, 2, "WAVE.n_utt = 2 (UTTS has 3)"},
        {W + 6, 2, 1, "WAVE.reserved = 1"},
        {eW + 8, 4, 6, "section WAVE: length 6 (expected >= 8)"},
        {eW + 8, 4, 12, "section WAVE: length 12 cannot hold 3 sample counts"},
        {W + 8, 4, 0x40000000u, "WAVE.n_samples[0] = 1073741824 runs past the section"},
        {W + 8, 4, 2, "section WAVE: length 26, contents 24 bytes"},
        {eW, 4, 0x58564157u, "UTTS.utt[0].presence = 0x03: audio bits in a record without audio (section WAVE)"},
        {UTTS + 4 + 1, 1, DS_PRESENT_VIDEO, "WAVE.n_samples[0] = 3 with the audio presence bit clear"},
        {UTTS + 4 + 8 * 2 + 1, 1, DS_PRESENT_AUDIO, "WAVE.n_samples[2] = 0 with the audio presence bit set"},
        {UTTS + 4 + 1, 1, 0x07, "UTTS.utt[0].presence = 0x07: a medium both present and bad"},
        {UTTS + 4 + 1, 1, 0x83, "UTTS.utt[0].presence = 0x83 (only bits 0..3 are defined)"},
        {F, 1, 2, "FRMS.format = 2"},
        {F + 1, 1, 7, "FRMS.n_frames = 7 (expected 8)"},
        {F + 2, 2, 0, "FRMS.width = 0"},
        {F + 4, 2, 4097, "FRMS.height = 4097"},
        {F + 6, 2, 4, "FRMS.n_utt = 4 (UTTS has 3)"},
        {eF + 8, 4, 7, "section FRMS: length 7 (expected >= 8)"},
        {eF + 8, 4, 100, "section FRMS: length 100 cannot hold 3 x 8 frame lengths"},
        {F + 8 + 4 * 3, 4, 0xffff0000u, "FRMS.frame_len[0][3] = 4294901760 runs past the section"},
        {F + 8 + 4 * 7, 4, 10, "section FRMS: length 164, contents 163 bytes"},
        {F + 8 + 4 * 9, 4, 1, "FRMS.frame_len[1][1] = 1 runs past"},
        {eF, 4, 0x534d5246u + 1, "UTTS.utt[0].presence = 0x03: video bits in a record without video (section FRMS)"},
        {UTTS + 4 + 1, 1, DS_PRESENT_AUDIO, "FRMS.frame_len[0][0] = 4 with the video presence bit clear"},
        {UTTS + 4 + 8 + 1, 1, DS_PRESENT_VIDEO, "FRMS.frame_len[1][0] = 0 with the video presence bit set"},
        {f0, 1, 0xfe, "FRMS.frame[0][0]: 4 bytes that do not start with FF D8 (not a JPEG)"},
        {f0 + 4 + 1, 1, 0xd9, "FRMS.frame[0][1]: 5 bytes that do not start with FF D8"},
        {F, 1, DS_FRAME_RAW, "FRMS.frame_len[0][0] = 4 (raw 6x4 frames are 72 bytes)"},
        {eW + 4, 4, rd32(b + eF + 4), "WAVE.rate = 395265"}, /* pointed at FRMS: its header read as WAVE's */
        {eF, 4, 0x45564157u, "section WAVE appears twice"},
    };
    check_damage(&buf, cases, sizeof cases / sizeof *cases);
    ds_buf_free(&buf);
    free(st);
}

/* A realistic v2 record (10 utterances of 5 s audio and 8 JPEG frames of 12 KB: ~2.4 MB): encode and decode
 * must run at memory speed, not a multiple of copies; the bound is loose enough for a busy machine. */
void test_record_encode_speed(void **state)
{
    (void)state;
    rec_store *st = malloc(sizeof *st);
    gen_record(st, 18, 1);
    st->r.n_utt = DS_MAX_UTT;
    set_media(st);
    const uint32_t ns = 5 * DS_AUDIO_RATE, fl = 12000;
    int16_t *wave = malloc(2u * ns);
    uint8_t *jpeg = malloc(fl);
    uint64_t s = 5;
    for (uint32_t i = 0; i < ns; i++)
        wave[i] = (int16_t)rnd(&s);
    for (uint32_t i = 0; i < fl; i++)
        jpeg[i] = (uint8_t)rnd(&s);
    jpeg[0] = 0xff;
    jpeg[1] = 0xd8;
    for (int u = 0; u < DS_MAX_UTT; u++) {
        ds_utt *ut = &st->r.utt[u];
        ut->presence = DS_PRESENT_AUDIO | DS_PRESENT_VIDEO;
        ut->n_samples = ns;
        ut->wave = wave;
        for (int k = 0; k < DS_N_FRAMES; k++) {
            ut->frame_len[k] = fl;
            ut->frame[k] = jpeg;
        }
    }
    ds_buf buf = {0};
    ds_record d;
    assert_int_equal(ds_record_encode(&st->r, &buf, err, sizeof err), DS_SHARD_OK);
    const int reps = 40;
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < reps; i++)
        assert_int_equal(ds_record_encode(&st->r, &buf, err, sizeof err), DS_SHARD_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (int i = 0; i < reps; i++)
        assert_int_equal(ds_record_decode(buf.data, buf.len, &d, err, sizeof err), DS_SHARD_OK);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    assert_rec_eq(&st->r, &d);
    double enc = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    double dec = (double)(t2.tv_sec - t1.tv_sec) + 1e-9 * (double)(t2.tv_nsec - t1.tv_nsec);
    double mb = (double)buf.len * reps / 1e6;
    print_message("record of %.2f MB: encode %.0f MB/s (%.2f ms), decode %.0f MB/s (%.2f ms)\n", buf.len / 1e6,
                  mb / enc, 1e3 * enc / reps, mb / dec, 1e3 * dec / reps);
    assert_true(mb / enc > 150 && mb / dec > 150);
    free(wave);
    free(jpeg);
    ds_buf_free(&buf);
    free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc_known_and_chained),
        cmocka_unit_test(test_crc_matches_zlib),
        cmocka_unit_test(test_record_roundtrip_random),
        cmocka_unit_test(test_record_rejects_bad_fields),
        cmocka_unit_test(test_record_every_corruption_detected),
        cmocka_unit_test(test_record_versioning),
        cmocka_unit_test(test_record_structure_checks),
        cmocka_unit_test(test_record_media_rules),
        cmocka_unit_test(test_record_encode_speed),
        cmocka_unit_test(test_writer_publishes_on_close),
        cmocka_unit_test(test_writer_grows_map),
        cmocka_unit_test(test_multi_part_split),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_verify_media),
        cmocka_unit_test(test_manifest_roundtrip),
        cmocka_unit_test(test_manifest_malformed),
        cmocka_unit_test(test_python_reader_matches),
        cmocka_unit_test(test_python_reader_detects_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
