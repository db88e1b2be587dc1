"""References for tests/media, from tools nobody here wrote: numpy's linspace and PyAV (FFmpeg through Python).

  ref_media.py indices N TOTAL...     one line per TOTAL: np.linspace(0, TOTAL-1, N).astype(int), or for
                                      TOTAL <= N all frames then the last repeated (the seed's rule)
  ref_media.py frames CLIP W H OUT K...   decodes CLIP whole with PyAV, writes frames K... (presentation
                                      order) as W x H RGB24 (bilinear swscale, the YUV matrix of the stream's
                                      colorspace tag) to OUT; prints the frame count
"""
import subprocess
import sys

import numpy as np


def indices(n, total):
    if total <= n:
        return [min(i, total - 1) for i in range(n)]
    return np.linspace(0, total - 1, n).astype(int).tolist()


def colorspace(clip):
    """PyAV 10 converts with BT.601 unless told otherwise; the tag is read with ffprobe."""
    tag = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=color_space",
                          "-of", "csv=p=0", clip], check=True, capture_output=True, text=True).stdout.strip()
    return {"bt709": "ITU709", "fcc": "FCC", "smpte240m": "SMPTE240M"}.get(tag, "ITU601")


def frames(clip, w, h, out, wanted):
    import av
    space = colorspace(clip)
    with av.open(clip) as c:
        s = c.streams.video[0]
        s.thread_type = "NONE"
        decoded = []
        for f in c.decode(s):
            decoded.append(f.to_ndarray(width=w, height=h, format="rgb24", interpolation="BILINEAR",
                                        src_colorspace=space))
    with open(out, "wb") as o:
        for k in wanted:
            o.write(np.ascontiguousarray(decoded[k], dtype=np.uint8).tobytes())
    print(len(decoded))


def main():
    if sys.argv[1] == "indices":
        n = int(sys.argv[2])
        for t in sys.argv[3:]:
            print(" ".join(str(i) for i in indices(n, int(t))))
    elif sys.argv[1] == "frames":
        frames(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], [int(k) for k in sys.argv[6:]])
    else:
        sys.exit("usage: ref_media.py indices N TOTAL... | frames CLIP W H OUT K...")


if __name__ == "__main__":
    main()
