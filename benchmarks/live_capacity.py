#!/usr/bin/env python3
"""Live capacity: the largest number N of concurrent live 720p25 H.264+AAC streams on 127.0.0.1
that one ssl-daemon with its default config ingests with at most 1 % of frames lost per stream and
every example it produced trained at least once.

For each N (--start, then +--step, up to --max, stopping after the first N that fails), it starts
N servers `ffmpeg -re -stream_loop -1 -i CLIP -c copy -f mpegts udp://127.0.0.1:PORT` and one
`ssl-daemon run --stream udp://... (N times) --http-listen 127.0.0.1:PORT`, lets them run for
--warmup seconds, then measures a window of --seconds through /api/status and /proc:

- per stream: frames the daemon kept on its decode.fps grid in the window, against what the grid
  expects (fps x window); frames dropped at the hand-off to the pairing stage; UDP datagrams the
  kernel dropped on the stream's socket (/proc/net/udp). A stream's loss is the hand-off drops plus
  the frames missing from the grid, over the expected frames;
- pairs produced and pairs trained in the window (trained/produced >= 1 means every example was
  trained at least once on average), training steps;
- CPU seconds per thread group of the daemon (decoding threads, the trainer and its compute
  workers, the rest) and of the servers, and the daemon's peak RSS.

Prints a markdown table and the largest N that passed; writes it to .build-bench/live_capacity.md.
"""
import argparse
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

FPS = 10.0  # decode.fps default: the grid frames are kept on


def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def status(http):
    with urllib.request.urlopen(f"http://{http}/api/status", timeout=5) as r:
        return json.load(r)


def udp_drops(ports):
    """Kernel drop counters of the UDP sockets bound to `ports` on 127.0.0.1."""
    drops = {}
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            fields = line.split()
            addr, port = fields[1].split(":")
            if addr == "0100007F" and int(port, 16) in ports:
                drops[int(port, 16)] = drops.get(int(port, 16), 0) + int(fields[-1])
    return drops


def thread_cpu(pid):
    """CPU seconds per thread name of a process."""
    hz = os.sysconf("SC_CLK_TCK")
    out = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2:].split()
        out[name] += (int(rest[11]) + int(rest[12])) / hz
    return out


def process_cpu(pid):
    try:
        rest = open(f"/proc/{pid}/stat").read()
    except OSError:
        return 0.0
    rest = rest[rest.rindex(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def group(name):
    # The daemon names its source and trainer threads; FFmpeg's decoding threads inherit their
    # source thread's name; the trainer's compute workers are Dispatch's pool threads ("...-qos").
    if name in ("live", "files", "scanner"):
        return "decode + pairing"
    if name == "trainer" or name.endswith("-qos") or "overcommit" in name:
        return "training (trainer + compute workers)"
    return "other"


def peak_rss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_n(args, n, work):
    http = f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"
    ports = [free_port(socket.SOCK_DGRAM) for _ in range(n)]
    state = os.path.join(work, f"n{n}")
    cmd = [args.bin, "run", "--state-dir", state, "--http-listen", http]
    for p in ports:
        cmd += ["--stream", f"udp://127.0.0.1:{p}"]
    log = open(os.path.join(work, f"n{n}.daemon.log"), "w")
    daemon = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    servers = []
    try:
        for _ in range(50):
            try:
                status(http)
                break
            except OSError:
                time.sleep(0.2)
        for p in ports:
            servers.append(subprocess.Popen(
                ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", args.clip,
                 "-c", "copy", "-f", "mpegts", f"udp://127.0.0.1:{p}?pkt_size=1316"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(args.warmup)
        a, t_a = status(http), time.monotonic()
        drops_a, cpu_a = udp_drops(set(ports)), thread_cpu(daemon.pid)
        srv_a = sum(process_cpu(s.pid) for s in servers)
        time.sleep(args.seconds)
        b, t_b = status(http), time.monotonic()
        drops_b, cpu_b = udp_drops(set(ports)), thread_cpu(daemon.pid)
        srv_b = sum(process_cpu(s.pid) for s in servers)
        rss = peak_rss_kib(daemon.pid)
    finally:
        for s in servers:
            s.terminate()
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
        for s in servers:
            s.wait()
    window = t_b - t_a
    expected = FPS * window
    by_name_a = {s["name"]: s for s in a["live"]}
    streams = []
    for s in b["live"]:
        before = by_name_a.get(s["name"], {"frames": 0, "dropped_frames": 0})
        frames = s["frames"] - before["frames"]
        handoff = s["dropped_frames"] - before["dropped_frames"]
        port = int(s["url"].rsplit(":", 1)[1].split("?")[0])
        kernel = drops_b.get(port, 0) - drops_a.get(port, 0)
        missing = max(0.0, expected - frames)
        streams.append({"name": s["name"], "frames": frames, "handoff": handoff, "kernel": kernel,
                        "loss": (handoff + missing) / expected})
    produced = sum(b["pairs"].values()) - sum(a["pairs"].values())
    trained = b["pairs_trained"] - a["pairs_trained"]
    cpu = collections.Counter()
    for name, secs in cpu_b.items():
        cpu[group(name)] += secs - cpu_a.get(name, 0)
    worst = max(s["loss"] for s in streams) if streams else 1.0
    ok = len(streams) == n and worst <= 0.01 and trained >= produced
    return {"n": n, "window": window, "streams": streams, "worst": worst, "produced": produced, "trained": trained,
            "steps": b["step"] - a["step"], "cpu": cpu, "server_cpu": srv_b - srv_a, "rss_mib": rss / 1024, "ok": ok}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--warmup", type=float, default=10)
    ap.add_argument("--start", type=int, default=8)
    ap.add_argument("--step", type=int, default=8)
    ap.add_argument("--max", type=int, default=64)
    ap.add_argument("--out", default=".build-bench/live_capacity.md")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="live_capacity.")
    results = []
    n = args.start
    while n <= args.max:
        print(f"live_capacity: N = {n} ...", file=sys.stderr, flush=True)
        r = run_n(args, n, work)
        results.append(r)
        print(f"live_capacity: N = {n}: worst loss {100 * r['worst']:.2f} %, produced {r['produced']}, trained {r['trained']}"
              f" -> {'ok' if r['ok'] else 'FAILED'}", file=sys.stderr, flush=True)
        if not r["ok"]:
            break
        n += args.step
    lines = [f"Machine: {subprocess.run(['lscpu'], capture_output=True, text=True).stdout.split('Model name:')[1].splitlines()[0].strip()}, "
             f"{os.cpu_count()} cores; {args.seconds:.0f} s window after {args.warmup:.0f} s warm-up per N; default config; "
             f"clip {os.path.basename(args.clip)} served by `ffmpeg -re -stream_loop -1 -c copy -f mpegts udp://...`", "",
             "| N | worst stream loss | hand-off drops | kernel UDP drops | pairs produced | pairs trained | trained/produced | steps | daemon CPU: decode+pairing / training / other (s) | servers CPU (s) | peak RSS | pass |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"]
    for r in results:
        c = r["cpu"]
        ratio = r["trained"] / r["produced"] if r["produced"] else float("nan")
        lines.append(f"| {r['n']} | {100 * r['worst']:.2f} % | {sum(s['handoff'] for s in r['streams'])} | {sum(s['kernel'] for s in r['streams'])} | "
                     f"{r['produced']} | {r['trained']} | {ratio:.2f} | {r['steps']} | "
                     f"{c['decode + pairing']:.0f} / {c['training (trainer + compute workers)']:.0f} / {c['other']:.0f} | {r['server_cpu']:.0f} | "
                     f"{r['rss_mib']:.0f} MiB | {'yes' if r['ok'] else 'no'} |")
    passed = [r["n"] for r in results if r["ok"]]
    lines += ["", f"Largest N that passed: {max(passed) if passed else 'none'} (logs in {work})"]
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    open(args.out, "w").write(text + "\n")


if __name__ == "__main__":
    main()
