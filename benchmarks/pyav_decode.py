#!/usr/bin/env python3
"""PyAV side of the decode benchmark.

Decodes every video frame of FILE with PyAV and scales it to SIZE x SIZE RGB24 via
frame.to_ndarray (libswscale inside PyAV's own FFmpeg build), using THREADS decoder threads.

usage: pyav_decode.py FILE [--size 128] [--threads 2]

The timed region is open + decode + convert of every frame (time.perf_counter). The last
line of stdout is JSON: {"frames": N, "seconds": S, "fps": F}, same as
`ssl-daemon bench decode`.
"""
import argparse
import json
import sys
import time

import av


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    frames = 0
    t0 = time.perf_counter()
    with av.open(args.file) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = args.threads
        for frame in container.decode(stream):
            arr = frame.to_ndarray(width=args.size, height=args.size, format="rgb24")
            frames += 1
    seconds = time.perf_counter() - t0

    if frames == 0:
        print("pyav_decode: no video frames decoded", file=sys.stderr)
        return 1
    assert arr.shape == (args.size, args.size, 3), arr.shape
    print(json.dumps({"frames": frames, "seconds": round(seconds, 6),
                      "fps": round(frames / seconds, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
