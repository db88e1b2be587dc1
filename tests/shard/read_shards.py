#!/usr/bin/python3
"""Independent reader of an empd shards folder, written from dataset/FORMAT.md only.

Usage: read_shards.py SHARDS_DIR OUT_JSON

Reads manifest.json, opens every split's LMDB files with python3-lmdb, checks each record the way FORMAT.md
says (lengths, magic, CRC with zlib, section table, field ranges, media rules, keys, the manifest's counts) and
writes every field of every record as JSON: {"splits": {NAME: [record, ...]}} in key order, waveforms as lists
of integers and frames as hex strings ("" for an absent frame). Exits non-zero with a message on the first
problem.
"""
import json
import math
import os
import struct
import sys
import zlib

import lmdb
import numpy as np

SECTION_TAGS = (b"SMPL", b"CTXT", b"UTTS")  # required; WAVE and FRMS are optional
AUDIO, VIDEO, AUDIO_BAD, VIDEO_BAD = 1, 2, 4, 8
N_FRAMES = 8


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
        if role > 2 or avatar < -1:
            raise Bad("UTTS entry %d out of range" % i)
        if pos + 2 * n_tok > len(u):
            raise Bad("UTTS tokens overrun")
        toks = np.frombuffer(u, dtype="<u2", count=n_tok, offset=pos)
        pos += 2 * n_tok
        utts.append({"role": role, "presence": presence, "index": index, "avatar": avatar,
                     "tokens": toks.tolist()})
    if pos != len(u):
        raise Bad("UTTS length %d, contents %d" % (len(u), pos))

    media = {"has_audio": 0, "has_video": 0}
    waves = [np.zeros(0, dtype="<i2")] * n_utt
    frames = [[b""] * N_FRAMES for _ in range(n_utt)]
    if b"WAVE" in sections:
        w = sections[b"WAVE"]
        if len(w) < 8:
            raise Bad("WAVE short")
        rate, n, res = struct.unpack_from("<IHH", w, 0)
        if rate != 16000 or n != n_utt or res != 0 or len(w) < 8 + 4 * n:
            raise Bad("WAVE header")
        counts = struct.unpack_from("<%dI" % n, w, 8)
        pos = 8 + 4 * n
        for i, cnt in enumerate(counts):
            if pos + 2 * cnt > len(w):
                raise Bad("WAVE samples overrun")
            waves[i] = np.frombuffer(w, dtype="<i2", count=cnt, offset=pos)
            pos += 2 * cnt
        if pos != len(w):
            raise Bad("WAVE length %d, contents %d" % (len(w), pos))
        media["has_audio"] = 1
    if b"FRMS" in sections:
        f = sections[b"FRMS"]
        if len(f) < 8:
            raise Bad("FRMS short")
        fmt, n_frames, width, height, n = struct.unpack_from("<BBHHH", f, 0)
        if fmt > 1 or n_frames != N_FRAMES or not (1 <= width <= 4096 and 1 <= height <= 4096) or n != n_utt:
            raise Bad("FRMS header")
        if len(f) < 8 + 4 * N_FRAMES * n:
            raise Bad("FRMS lengths overrun")
        lengths = struct.unpack_from("<%dI" % (N_FRAMES * n), f, 8)
        pos = 8 + 4 * N_FRAMES * n
        for i in range(n):
            for k in range(N_FRAMES):
                ln = lengths[N_FRAMES * i + k]
                if pos + ln > len(f):
                    raise Bad("FRMS frames overrun")
                frames[i][k] = f[pos:pos + ln]
                pos += ln
        if pos != len(f):
            raise Bad("FRMS length %d, contents %d" % (len(f), pos))
        media.update(has_video=1, frame_format=fmt, frame_width=width, frame_height=height)

    for i, ut in enumerate(utts):
        p = ut["presence"]
        if p & ~0x0F:
            raise Bad("UTTS entry %d: undefined presence bits 0x%02x" % (i, p))
        if (p & AUDIO and p & AUDIO_BAD) or (p & VIDEO and p & VIDEO_BAD):
            raise Bad("UTTS entry %d: a medium both present and bad" % i)
        if (p & (AUDIO | AUDIO_BAD) and not media["has_audio"]) or (p & (VIDEO | VIDEO_BAD) and not media["has_video"]):
            raise Bad("UTTS entry %d: presence bits of a medium the record lacks" % i)
        if bool(p & AUDIO) != (len(waves[i]) > 0):
            raise Bad("utterance %d: audio bit and sample count disagree" % i)
        if any(bool(p & VIDEO) != (len(fr) > 0) for fr in frames[i]):
            raise Bad("utterance %d: video bit and frame lengths disagree" % i)
        for fr in frames[i]:
            if fr and media["frame_format"] == 0 and len(fr) != 3 * media["frame_width"] * media["frame_height"]:
                raise Bad("utterance %d: raw frame of %d bytes" % (i, len(fr)))
            if fr and media["frame_format"] == 1 and (len(fr) < 4 or fr[:2] != b"\xff\xd8"):
                raise Bad("utterance %d: frame is not a JPEG" % i)
        ut["wave"] = waves[i].tolist()
        ut["frames"] = [fr.hex() for fr in frames[i]]

    rec = {"version": version, "flags": flags, "sample_index": sample_index,
           "conversation_id": cid[:id_len].decode("utf-8"), "label7": label7, "label32": label32,
           "meta": meta.tolist(), "ctx": ctx.tolist(), "utts": utts}
    rec.update(media)
    return rec


def check_media(rec, media, limit, tally):
    """The record's media against the manifest's media object; counts utterances into tally."""
    if rec["has_audio"] != int(media["audio"]) or rec["has_video"] != int(media["video"]):
        raise Bad("media sections differ from the manifest's media")
    if rec["has_video"]:
        fmt = {"raw": 0, "jpeg": 1}[media["frame_format"]]
        if (rec["frame_format"], rec["frame_width"], rec["frame_height"]) != (
                fmt, media["frame_width"], media["frame_height"]):
            raise Bad("frame format or size differs from the manifest's media")
    for ut in rec["utts"]:
        if len(ut["wave"]) > limit:
            raise Bad("%d samples, more than media.audio_max_seconds allows" % len(ut["wave"]))
        p = ut["presence"]
        if rec["has_audio"]:
            tally["audio_present" if p & AUDIO else "audio_bad" if p & AUDIO_BAD else "audio_missing"] += 1
        if rec["has_video"]:
            tally["video_present" if p & VIDEO else "video_bad" if p & VIDEO_BAD else "video_missing"] += 1


def read_split(shards_dir, name, split, media, limit, tally):
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
                    try:
                        check_media(rec, media, limit, tally)
                    except Bad as e:
                        raise Bad("record %d of %s: %s" % (key, fname, e))
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
    # No "media" key: shards without media (format version 1, or nothing sharded).
    media = manifest.get("media", {"audio": False, "video": False})
    # Rounded half away from zero, like C's llround.
    limit = math.floor(media["audio_max_seconds"] * media["audio_rate"] + 0.5) if media["audio"] else 0
    tally = dict.fromkeys(("audio_present", "audio_missing", "audio_bad",
                           "video_present", "video_missing", "video_bad"), 0)
    result = {"splits": {}}
    try:
        for name, split in manifest["splits"].items():
            result["splits"][name] = read_split(shards_dir, name, split, media, limit, tally)
        for key, got in tally.items():
            want = media["counts"][key] if "counts" in media else 0
            if got != want:
                raise Bad("media.counts.%s: %d utterances in the shards, manifest says %d" % (key, got, want))
    except Bad as e:
        sys.exit("read_shards.py: %s" % e)
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
