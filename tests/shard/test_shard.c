/* test_shard: record format, CRC, LMDB shards, manifest, verify and loader of dataset/.
 * References, run at test time: Python's zlib.crc32 (crc_ref.py) and an independent python3-lmdb + numpy
 * reader written from dataset/FORMAT.md alone (read_shards.py). This file: CRC and records, and main. */
#include "tests/shard/fixtures.h"

#include "dataset/crc32.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

void test_record_roundtrip_random(void **state)
{
    (void)state;
    rec_store *st = malloc(sizeof *st);
    ds_buf buf = {0};
    for (uint32_t i = 0; i < 3000; i++) {
        gen_record(st, 1, i);
        assert_int_equal(ds_record_encode(&st->r, &buf, err, sizeof err), DS_SHARD_OK);
        assert_int_equal(buf.len % 4, 0);
        ds_record d;
        assert_int_equal(ds_record_decode(buf.data, buf.len, &d, err, sizeof err), DS_SHARD_OK);
        assert_int_equal(d.version, DS_RECORD_VERSION);
        assert_int_equal(d.flags, 0);
        assert_rec_eq(&st->r, &d);
        if (d.n_ctx) /* zero-copy: tokens point into the buffer */
            assert_true((const unsigned char *)d.ctx > buf.data &&
                        (const unsigned char *)d.ctx < buf.data + buf.len);
    }
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
    ds_buf_free(&buf);
    free(st);
}

void test_record_rejects_bad_fields(void **state)
{
    (void)state;
    rec_store *st = malloc(sizeof *st);
    ds_buf buf = {0};
    int n = 0;
#define CASE(body, name) do { \
        gen_record(st, 2, 5); st->r.n_utt = 3; st->r.utt[2].n_tokens = 1; body; \
        assert_int_equal(ds_record_encode(&st->r, &buf, err, sizeof err), DS_SHARD_EINVAL); \
        assert_non_null(strstr(err, name)); n++; } while (0)
    CASE(st->r.n_utt = DS_MAX_UTT + 1, "n_utt");
    CASE(memset(st->r.conversation_id, 'a', sizeof st->r.conversation_id), "conversation_id");
    CASE(st->r.conversation_id[0] = 0, "conversation_id");
    CASE(st->r.label7 = 7, "label7");
    CASE(st->r.label32 = -2, "label32");
    CASE(st->r.meta[4] = -1, "meta[4]");
    CASE(st->r.utt[1].role = 3, "utt[1].role");
    CASE(st->r.utt[2].presence = 4, "utt[2].presence");
    CASE(st->r.utt[0].avatar = -2, "utt[0].avatar");
    CASE(st->r.utt[2].tokens = NULL, "utt[2].tokens");
#undef CASE
    assert_int_equal(n, 10);
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
                int rc = ds_record_decode(guard_place(&g, work, len), len, &d, err, sizeof err);
                assert_true(rc == DS_SHARD_OK || rc == DS_SHARD_ECORRUPT);
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
    /* With the CRC repaired, only damage to values without an invalid range survives (tokens, meta, ids). */
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

void test_record_versioning(void **state)
{
    (void)state;
    rec_store *st = malloc(sizeof *st);
    gen_record(st, 4, 3);
    ds_buf buf = {0};
    assert_int_equal(ds_record_encode(&st->r, &buf, err, sizeof err), DS_SHARD_OK);
    ds_record d;

    /* A future section ("WAVE", 8 bytes) appended after a grown table: a v1 reader skips it. */
    uint32_t plen = rd32(buf.data + 8);
    uint16_t nsec;
    memcpy(&nsec, buf.data + 12, 2);
    size_t table = 4 + 12u * nsec, nlen = buf.len + 12 + 8;
    unsigned char *v2 = calloc(1, nlen);
    memcpy(v2, buf.data, 12 + table);
    unsigned char *p = v2 + 12;
    for (int i = 0; i < nsec; i++)
        wr32(p + 4 + 12 * i + 4, rd32(p + 4 + 12 * i + 4) + 12);
    memcpy(p + table, "WAVE", 4);
    wr32(p + table + 4, plen + 12);
    wr32(p + table + 8, 8);
    memcpy(p + table + 12, buf.data + 12 + table, plen - table);
    memset(p + plen + 12, 0x77, 8);
    wr16(p, (uint16_t)(nsec + 1));
    wr16(v2 + 4, 2);
    wr32(v2 + 8, plen + 20);
    fix_crc(v2, nlen);
    assert_int_equal(ds_record_decode(v2, nlen, &d, err, sizeof err), DS_SHARD_OK);
    assert_int_equal(d.version, 2);
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
    free(v2);
    ds_buf_free(&buf);
    free(st);
}

/* Targeted damage with a valid CRC: each structural rule on its own, with the field it names. */
void test_record_structure_checks(void **state)
{
    (void)state;
    rec_store *st = malloc(sizeof *st);
    gen_record(st, 16, 1);
    st->r.n_utt = 2;
    st->r.utt[0].n_tokens = 3;
    st->r.utt[1].n_tokens = 1;
    st->r.n_ctx = 2;
    snprintf(st->r.conversation_id, sizeof st->r.conversation_id, "65020");
    ds_buf buf = {0};
    assert_int_equal(ds_record_encode(&st->r, &buf, err, sizeof err), DS_SHARD_OK);
    /* Offsets from FORMAT.md: table entries at 16 (SMPL), 28 (CTXT), 40 (UTTS); SMPL body at 12 + 40. */
    const size_t P = 12, SMPL = P + 40, len = buf.len + 4;
    const size_t UTTS = P + rd32(buf.data + 44);
    const struct { size_t at; int width; uint32_t value; const char *expect; } cases[] = {
        {48, 4, 0, "section UTTS: length"},                 /* value filled below: UTTS length + 4 */
        {36, 4, 12, "section CTXT: length 12 does not hold n_tokens = 2"},
        {24, 4, 92, "section SMPL: length 92"},
        {20, 4, 42, "section SMPL: offset 42"},
        {P, 2, 4000, "section table: 4000 entries overrun"},
        {P + 2, 2, 1, "section table: reserved"},
        {28, 4, 0x4c504d53u, "section SMPL appears twice"},  /* "SMPL" */
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
    unsigned char *w = malloc(len);
    ds_record d;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        /* Every variant carries 4 spare zero bytes at the end of the payload, so a grown section fits. */
        memcpy(w, buf.data, buf.len - 4);
        memset(w + buf.len - 4, 0, 8);
        wr32(w + 8, rd32(buf.data + 8) + 4);
        uint32_t v = i == 0 ? rd32(buf.data + 48) + 4 : cases[i].value;
        if (cases[i].width == 4)
            wr32(w + cases[i].at, v);
        else if (cases[i].width == 2)
            wr16(w + cases[i].at, (uint16_t)v);
        else
            w[cases[i].at] = (unsigned char)v;
        fix_crc(w, len);
        int rc = ds_record_decode(w, len, &d, err, sizeof err);
        if (rc != DS_SHARD_ECORRUPT || !strstr(err, cases[i].expect))
            fail_msg("case %zu: rc %d, \"%s\", want \"%s\"", i, rc, rc ? err : "", cases[i].expect);
    }
    /* The untouched variant (spare bytes only) still decodes: padding after the last section is allowed. */
    memcpy(w, buf.data, buf.len - 4);
    memset(w + buf.len - 4, 0, 8);
    wr32(w + 8, rd32(buf.data + 8) + 4);
    fix_crc(w, len);
    assert_int_equal(ds_record_decode(w, len, &d, err, sizeof err), DS_SHARD_OK);
    assert_rec_eq(&st->r, &d);
    free(w);
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
        cmocka_unit_test(test_writer_publishes_on_close),
        cmocka_unit_test(test_writer_grows_map),
        cmocka_unit_test(test_multi_part_split),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_manifest_roundtrip),
        cmocka_unit_test(test_manifest_malformed),
        cmocka_unit_test(test_loader_fill),
        cmocka_unit_test(test_loader_threads),
        cmocka_unit_test(test_python_reader_matches),
        cmocka_unit_test(test_python_reader_detects_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
