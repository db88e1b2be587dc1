#!/usr/bin/python3
"""Reads a corpus written by `empd synth --cues` with tools nobody here wrote (ffprobe, PyAV, CPython's wave,
numpy) and checks what synth_media.h promises: the files decode with the planned formats, the corrupt ones do
not, the formats vary, and each modality carries its cue (not the label) measurably.

usage: check_media.py DIR     prints one line per check; exit status 1 on the first failure."""
import subprocess
import sys
import wave

import av
import numpy as np

HAPPY, SURPRISED, ANGRY, FEAR, SAD, DISGUSTED, CONTEMPT = range(7)


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def read_cues(root):
    with open(root + "/synth_cues.tsv") as f:
        head = f.readline().rstrip("\n").split("\t")
        rows = [dict(zip(head, line.rstrip("\n").split("\t"))) for line in f]
    for r in rows:
        for k in ("k", "aid", "role", "label7", "audio_cue", "video_cue", "rate", "channels", "width", "height",
                  "fps", "frames"):
            r[k] = int(r[k])
        r["name"] = "dia%sutt%d_%d" % (r["cid"], r["k"], r["aid"])
    return rows


def ffprobe(path):
    p = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                        "stream=codec_name,width,height,r_frame_rate,nb_read_packets", "-of", "csv=p=0", path],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    return p.returncode, p.stdout.strip()


def check_mp4_formats(root, rows):
    ok = [r for r in rows if r["mp4"] == "ok"]
    bad = [r for r in rows if r["mp4"] == "corrupt"]
    check(len(bad) >= 1, "no corrupt mp4 planned")
    # ffprobe on every 25th file (a process each costs 40-100 ms) and on every corrupt one; PyAV reads all.
    for r in ok[::25]:
        rc, out = ffprobe("%s/video_v5_0/%s.mp4" % (root, r["name"]))
        want = "h264,%d,%d,%d/1,%d" % (r["width"], r["height"], r["fps"], r["frames"])
        check(rc == 0 and out == want, "ffprobe %s: got '%s' rc %d, want '%s'" % (r["name"], out, rc, want))
    for r in bad:
        rc, _ = ffprobe("%s/video_v5_0/%s.mp4" % (root, r["name"]))
        check(rc != 0, "ffprobe read the corrupt %s.mp4" % r["name"])
    print("ffprobe: %d of %d mp4 as planned, %d corrupt refused" % (len(ok[::25]), len(ok), len(bad)))
    sizes = {(r["width"], r["height"]) for r in ok}
    check(len(sizes) >= 4, "only %d frame sizes" % len(sizes))
    check(any(w * 3 != h * 4 for w, h in sizes), "every size is 4:3")
    check(len({r["fps"] for r in ok}) >= 4, "fewer than 4 frame rates")
    check(any(r["frames"] < 8 for r in ok), "no clip shorter than 8 frames")
    secs = [r["frames"] / r["fps"] for r in ok]
    check(min(secs) < 0.6 and max(secs) > 3.0, "clip lengths %.2f..%.2f s" % (min(secs), max(secs)))


def mean_luma(frames, w, h, x0, x1, y0, y1):
    """Mean of a box given in units of the frame height around the frame's centre column."""
    cx = w / 2
    xs = slice(int(cx + x0 * h), int(cx + x1 * h))
    ys = slice(int(y0 * h), int(y1 * h))
    return float(np.mean([f[ys, xs].mean() for f in frames]))


def decode_all(root, rows):
    """PyAV opens every planned mp4 (the corrupt ones must fail) and decodes the speakers' clips; returns their
    mouth-minus-skin luma."""
    feats = {}
    for r in rows:
        path = "%s/video_v5_0/%s.mp4" % (root, r["name"])
        if r["mp4"] == "corrupt":
            try:
                with av.open(path) as c:
                    list(c.decode(video=0))
                fail("PyAV decoded the corrupt " + path)
            except av.error.FFmpegError:
                continue
        if r["mp4"] != "ok":
            continue
        with av.open(path) as c:
            s = c.streams.video[0]
            check(s.codec_context.name == "h264", path + " is not H.264")
            check((s.codec_context.width, s.codec_context.height) == (r["width"], r["height"]),
                  path + ": size differs from the plan")
            if r["k"] % 2:  # listeners: demux only (decoding every clip would double the test's time)
                n = sum(1 for p in c.demux(s) if p.size)
                check(n == r["frames"], "%s: %d packets, %d frames planned" % (path, n, r["frames"]))
                continue
            frames = [f.to_ndarray(format="gray").astype(np.float32) for f in c.decode(s)]
        check(len(frames) == r["frames"], "%s: %d frames decoded, %d planned" % (path, len(frames), r["frames"]))
        h, w = frames[0].shape
        mouth = mean_luma(frames, w, h, -0.07, 0.07, 0.63, 0.78)
        skin = mean_luma(frames, w, h, -0.035, 0.035, 0.38, 0.45)
        feats[r["name"]] = mouth - skin
    return feats


def pitch_hz(x, rate):
    """Median autocorrelation pitch over the voiced 40 ms frames (60..400 Hz)."""
    n = int(0.04 * rate)
    lo, hi = int(rate / 400), int(rate / 60)
    energy = [np.sqrt(np.mean(x[i:i + n] ** 2)) for i in range(0, len(x) - n, n)]
    thresh = 0.3 * max(energy) if energy else 0
    f0 = []
    for j, e in enumerate(energy):
        if e < thresh:
            continue
        seg = x[j * n:(j + 1) * n]
        seg = seg - seg.mean()
        ac = np.correlate(seg, seg, "full")[n - 1:]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.3 * ac[0]:
            f0.append(rate / lag)
    return float(np.median(f0)) if f0 else None


def read_wavs(root, rows):
    feats = {}
    rates, stereo = set(), 0
    for r in rows:
        path = "%s/audio_v5_0/%s.wav" % (root, r["name"])
        if r["wav"] == "corrupt":
            try:
                with wave.open(path) as w:
                    w.readframes(w.getnframes())
                fail("wave read the corrupt " + path)
            except (wave.Error, EOFError):
                continue
        if r["wav"] != "ok":
            continue
        with wave.open(path) as w:
            check(w.getsampwidth() == 2, path + ": not 16-bit")
            check((w.getframerate(), w.getnchannels()) == (r["rate"], r["channels"]), path + ": format differs")
            x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
        rates.add(r["rate"])
        if r["channels"] == 2:
            stereo += 1
            x = x[0::2]
        rms = float(np.sqrt(np.mean(x ** 2)))
        check(rms > 20, path + ": silent (rms %.1f)" % rms)
        if r["k"] % 2 == 0 and rms > 300:
            feats[r["name"]] = (pitch_hz(x[: r["rate"] * 2], r["rate"]), rms)
    check(rates == {22050, 24000}, "sample rates %s" % sorted(rates))
    check(stereo > 0, "no stereo wav")
    print("wav: rates %s, %d stereo, all non-silent" % (sorted(rates), stereo))
    return feats


def group_mean(values):
    return float(np.mean(values)) if values else float("nan")


def check_cues(rows):
    conv = {}
    for r in rows:
        conv[(r["split"], r["cid"])] = (r["label7"], r["audio_cue"], r["video_cue"])
    n = len(conv)
    pa = sum(a == l for l, a, v in conv.values()) / n
    pv = sum(v == l for l, a, v in conv.values()) / n
    pav = sum(a == l and v == l for l, a, v in conv.values()) / n
    print("cues: %d conversations, audio agrees %.2f, video %.2f, both %.2f (independent: %.2f)"
          % (n, pa, pv, pav, pa * pv))
    check(0.45 <= pa <= 0.85 and 0.40 <= pv <= 0.85, "cue agreement outside its band")
    check(abs(pav - pa * pv) < 0.12, "audio and video cues look dependent")


def check_signal(rows, audio, video):
    spk = [r for r in rows if r["k"] % 2 == 0]
    by = lambda feats, key, classes, idx: [feats[r["name"]][idx] if idx is not None else feats[r["name"]]
                                           for r in spk if r["name"] in feats and r[key] in classes
                                           and (idx is None or feats[r["name"]][idx] is not None)]
    hi = group_mean(by(audio, "audio_cue", {SURPRISED, HAPPY}, 0))
    lo = group_mean(by(audio, "audio_cue", {SAD, CONTEMPT, DISGUSTED}, 0))
    loud = group_mean(by(audio, "audio_cue", {ANGRY, HAPPY, SURPRISED}, 1))
    soft = group_mean(by(audio, "audio_cue", {SAD, FEAR}, 1))
    print("audio: pitch %.0f Hz (happy/surprised cue) vs %.0f Hz (sad/contempt/disgusted); rms %.0f vs %.0f"
          % (hi, lo, loud, soft))
    check(hi > lo * 1.12, "speech pitch does not follow the audio cue")
    check(loud > soft * 1.3, "speech loudness does not follow the audio cue")
    op = group_mean(by(video, "video_cue", {SURPRISED, FEAR}, None))
    cl = group_mean(by(video, "video_cue", {SAD, CONTEMPT, ANGRY}, None))
    op_l = group_mean(by(video, "label7", {SURPRISED, FEAR}, None))
    cl_l = group_mean(by(video, "label7", {SAD, CONTEMPT, ANGRY}, None))
    print("video: mouth-minus-skin luma %.1f (open-mouth cue) vs %.1f (closed); by label %.1f vs %.1f"
          % (op, cl, op_l, cl_l))
    check(op < cl - 6, "the mouth does not follow the video cue")
    check(cl - op > cl_l - op_l, "the video follows the label more than its cue")


def main():
    root = sys.argv[1]
    rows = read_cues(root)
    check_cues(rows)
    check_mp4_formats(root, rows)
    video = decode_all(root, rows)
    audio = read_wavs(root, rows)
    check_signal(rows, audio, video)
    print("OK")


if __name__ == "__main__":
    main()
