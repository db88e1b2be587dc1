#!/usr/bin/python3
"""Independent reader of an empd shards folder, written from dataset/FORMAT.md only.

Usage: read_shards.py SHARDS_DIR OUT_JSON

Reads manifest.json, opens every split's LMDB files with python3-lmdb, checks each record the way FORMAT.md
says (lengths, magic, CRC with zlib, section table, field ranges, keys) and writes every field of every record
as JSON: {"splits": {NAME: [record, ...]}} in key order. Exits non-zero with a message on the first problem.
"""
import json
import os
import struct
import sys
import zlib

import lmdb
import numpy as np

SECTION_TAGS = (b"SMPL", b"CTXT", b"UTTS")


class Bad(Exception):
    pass


def parse_record(v):
    if len(v) < 16:
        raise Bad("length %d < 16" % len(v))
    magic, version, flags, plen = struct.unpack_from("<4sHHI", v, 0)
    if magic != b"EMPR":
        raise Bad("magic %r" % magic)
    if version < 1:
        raise Bad("version %d" % version)
    if len(v) != plen + 16:
        raise Bad("length %d != payload %d + 16" % (len(v), plen))
    stored = struct.unpack_from("<I", v, 12 + plen)[0]
    if zlib.crc32(v[:12 + plen]) != stored:
        raise Bad("crc mismatch")
    if flags & 0x00FF:
        raise Bad("unknown incompatible flags 0x%04x" % flags)
    p = v[12:12 + plen]
    n_sec, reserved = struct.unpack_from("<HH", p, 0)
    if reserved != 0:
        raise Bad("section table reserved")
    table_end = 4 + 12 * n_sec
    if table_end > plen:
        raise Bad("section table overruns payload")
    sections = {}
    for i in range(n_sec):
        tag, off, ln = struct.unpack_from("<4sII", p, 4 + 12 * i)
        if off % 4 or off < table_end or off + ln > plen:
            raise Bad("section %r out of bounds" % tag)
        if tag in sections:
            raise Bad("section %r twice" % tag)
        sections[tag] = p[off:off + ln]
    for tag in SECTION_TAGS:
        if tag not in sections:
            raise Bad("section %r missing" % tag)

    s = sections[b"SMPL"]
    if len(s) != 88:
        raise Bad("SMPL length %d" % len(s))
    sample_index, label7, label32, id_len, res = struct.unpack_from("<IbbBB", s, 0)
    if not (-1 <= label7 <= 6 and -1 <= label32 <= 31 and 1 <= id_len <= 31 and res == 0):
        raise Bad("SMPL fields out of range")
    cid = s[8:40]
    if b"\0" in cid[:id_len] or any(cid[id_len:]):
        raise Bad("SMPL conversation_id padding")
    meta = np.frombuffer(s, dtype="<i4", count=12, offset=40)
    if (meta < 0).any():
        raise Bad("SMPL meta < 0")

    c = sections[b"CTXT"]
    if len(c) < 4:
        raise Bad("CTXT short")
    n_ctx, res = struct.unpack_from("<HH", c, 0)
    if res != 0 or len(c) != 4 + 2 * n_ctx:
        raise Bad("CTXT length")
    ctx = np.frombuffer(c, dtype="<u2", count=n_ctx, offset=4)

    u = sections[b"UTTS"]
    if len(u) < 4:
        raise Bad("UTTS short")
    n_utt, res = struct.unpack_from("<HH", u, 0)
    if n_utt > 10 or res != 0 or len(u) < 4 + 8 * n_utt:
        raise Bad("UTTS header")
    pos = 4 + 8 * n_utt
    utts = []
    for i in range(n_utt):
        role, presence, index, avatar, n_tok = struct.unpack_from("<BBHhH", u, 4 + 8 * i)
        if role > 2 or presence & ~3 or avatar < -1:
            raise Bad("UTTS entry %d out of range" % i)
        if pos + 2 * n_tok > len(u):
            raise Bad("UTTS tokens overrun")
        toks = np.frombuffer(u, dtype="<u2", count=n_tok, offset=pos)
        pos += 2 * n_tok
        utts.append({"role": role, "presence": presence, "index": index, "avatar": avatar,
                     "tokens": toks.tolist()})
    if pos != len(u):
        raise Bad("UTTS length %d, contents %d" % (len(u), pos))

    return {"version": version, "flags": flags, "sample_index": sample_index,
            "conversation_id": cid[:id_len].decode("utf-8"), "label7": label7, "label32": label32,
            "meta": meta.tolist(), "ctx": ctx.tolist(), "utts": utts}


def read_split(shards_dir, name, split):
    records = []
    for fname in split["shards"]:
        env = lmdb.open(os.path.join(shards_dir, fname), subdir=False, readonly=True, lock=False)
        try:
            with env.begin() as txn:
                for k, v in txn.cursor():
                    if len(k) != 8:
                        raise Bad("%s: key of %d bytes" % (fname, len(k)))
                    key = int.from_bytes(k, "big")
                    if key != len(records):
                        raise Bad("%s: key %d, expected %d" % (fname, key, len(records)))
                    try:
                        rec = parse_record(bytes(v))
                    except Bad as e:
                        raise Bad("record %d of %s: %s" % (key, fname, e))
                    if rec["sample_index"] != key:
                        raise Bad("record %d of %s: sample_index %d" % (key, fname, rec["sample_index"]))
                    if rec["conversation_id"] != split["conversation_ids"][key]:
                        raise Bad("record %d of %s: conversation id differs from manifest" % (key, fname))
                    records.append(rec)
        finally:
            env.close()
    if len(records) != split["count"]:
        raise Bad("split %s: %d records, manifest count %d" % (name, len(records), split["count"]))
    h7 = [0] * 7
    h32 = [0] * 32
    for r in records:
        if r["label7"] >= 0:
            h7[r["label7"]] += 1
        if r["label32"] >= 0:
            h32[r["label32"]] += 1
    if h7 != split["label7_histogram"] or h32 != split["label32_histogram"]:
        raise Bad("split %s: histograms differ from manifest" % name)
    return records


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: read_shards.py SHARDS_DIR OUT_JSON")
    shards_dir, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(shards_dir, "manifest.json")) as f:
        manifest = json.load(f)
    if manifest["version"] != 1:
        sys.exit("manifest version %r" % manifest["version"])
    result = {"splits": {}}
    try:
        for name, split in manifest["splits"].items():
            result["splits"][name] = read_split(shards_dir, name, split)
    except Bad as e:
        sys.exit("read_shards.py: %s" % e)
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
