#!/usr/bin/env python3
"""Helper of benchmarks/soak.sh (standard library only).

  soak_report.py fast --pid PID --state DIR --err FILE --work DIR [--interval 0.5]
      The fast sampler. Every INTERVAL seconds until PID is gone it appends to WORK/fast.tsv
          t  rss_kib  hwm_kib  tmp_files  tmp_bytes
      (VmRSS and VmHWM from /proc/PID/status; the `.ckpt-*.tmp` files present in
      STATE/checkpoints and their total size), to WORK/log.tsv each new complete line of the
      daemon's stderr FILE with the time it was first seen (the daemon's log lines carry no
      time), and to WORK/ckpts.tsv each `ckpt-*.safetensors` file the first time it is seen,
      with its size (final: the daemon renames a checkpoint into place only after fsync).

  soak_report.py report --work DIR
      Reads what soak.sh and the fast sampler wrote in DIR (samples.tsv, fast.tsv, log.tsv,
      ckpts.tsv, daemon.out, meta.json, ...) and prints the markdown report.
"""
import argparse
import json
import os
import re
import statistics
import sys
import time

KIB_PER_MIB = 1024.0
TMP_RE = re.compile(r"^\.ckpt-(\d+)-(\d+)-[0-9a-f]+\.tmp$")
CKPT_RE = re.compile(r"^ckpt-(\d+)\.safetensors$")


# --------------------------------------------------------------------------------------------
# Fast sampler

def read_status(pid):
    """(VmRSS, VmHWM) in KiB, or None once the process is gone (or a zombie without memory)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    rss = re.search(r"^VmRSS:\s+(\d+)", text, re.M)
    hwm = re.search(r"^VmHWM:\s+(\d+)", text, re.M)
    if not rss:
        return None
    return int(rss.group(1)), int(hwm.group(1)) if hwm else 0


def fast(args):
    ckdir = os.path.join(args.state, "checkpoints")
    fast_out = open(os.path.join(args.work, "fast.tsv"), "a", buffering=1)
    log_out = open(os.path.join(args.work, "log.tsv"), "a", buffering=1)
    ck_out = open(os.path.join(args.work, "ckpts.tsv"), "a", buffering=1)
    seen_ckpts = set()
    err_pos = 0
    pending = b""

    def drain_log(now):
        nonlocal err_pos, pending
        try:
            with open(args.err, "rb") as f:
                f.seek(err_pos)
                data = f.read()
        except OSError:
            return
        err_pos += len(data)
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            log_out.write(f"{now:.3f}\t{line.decode(errors='replace')}\n")

    def scan_checkpoints(now):
        tmps, tmp_bytes = [], 0
        try:
            names = os.listdir(ckdir)
        except OSError:
            names = []
        for name in sorted(names):
            path = os.path.join(ckdir, name)
            if TMP_RE.match(name):
                tmps.append(name)
                try:
                    tmp_bytes += os.stat(path).st_size
                except OSError:
                    pass
            elif CKPT_RE.match(name) and name not in seen_ckpts:
                try:
                    size = os.stat(path).st_size
                except OSError:
                    continue
                seen_ckpts.add(name)
                ck_out.write(f"{now:.3f}\t{name}\t{size}\n")
        return tmps, tmp_bytes

    interval = args.interval
    next_t = time.time()
    while True:
        now = time.time()
        st = read_status(args.pid)
        tmps, tmp_bytes = scan_checkpoints(now)
        drain_log(now)
        if st is None:
            break
        fast_out.write(f"{now:.3f}\t{st[0]}\t{st[1]}\t{','.join(tmps) or '-'}\t{tmp_bytes}\n")
        next_t += interval
        delay = next_t - time.time()
        if delay < 0:  # fell behind (a loaded box): skip ahead instead of bursting
            next_t = time.time()
            delay = 0
        time.sleep(delay)
    # The process is gone: pick up its last stderr lines (the final checkpoint, the error, ...).
    time.sleep(0.2)
    now = time.time()
    scan_checkpoints(now)
    drain_log(now)
    if pending:
        log_out.write(f"{now:.3f}\t{pending.decode(errors='replace')}\n")


# --------------------------------------------------------------------------------------------
# Report

def read_tsv(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if line:
                    rows.append(line.split("\t"))
    except FileNotFoundError:
        pass
    return rows


def lsq_slope(xs, ys):
    """Least-squares slope of ys over xs (None with fewer than 2 distinct xs)."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def mib(kib):
    return kib / KIB_PER_MIB


def human_bytes(b):
    if b is None:
        return "n/a"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(b) >= size:
            return f"{b / size:.2f} {unit}"
    return f"{b:.0f} B"


def verdict(ok):
    return "n/a" if ok is None else ("**PASS**" if ok else "**FAIL**")


def report(args):
    w = args.work
    meta = json.load(open(os.path.join(w, "meta.json")))
    t0 = float(meta["t_start"])            # daemon started
    t_term = meta.get("t_sigterm")         # SIGTERM sent (None: the daemon died first)
    t_term = float(t_term) if t_term not in (None, "") else None
    t_exit = float(meta["t_exit"])
    warmup = float(meta["warmup_seconds"])
    every = float(meta["checkpoint_every"])
    lead = float(meta["ckpt_lead_seconds"])
    tail = float(meta["ckpt_tail_seconds"])
    run_end = t_term if t_term is not None else t_exit

    # Slow samples (soak.sh): t rss_kib hwm_kib fds threads rchar wchar write_bytes cancelled state_bytes ledger_bytes
    samples = []
    for r in read_tsv(os.path.join(w, "samples.tsv")):
        t = float(r[0])
        vals = [int(x) for x in r[1:]]
        samples.append(dict(t=t, el=t - t0, rss=vals[0], hwm=vals[1], fds=vals[2], threads=vals[3],
                            rchar=vals[4], wchar=vals[5], wb=vals[6], cwb=vals[7], state=vals[8], ledger=vals[9]))
    fast_rows = [(float(r[0]), int(r[1]), int(r[2]), r[3], int(r[4])) for r in read_tsv(os.path.join(w, "fast.tsv"))]
    log = [(float(r[0]), "\t".join(r[1:])) for r in read_tsv(os.path.join(w, "log.tsv"))]
    ckpt_files = [(float(r[0]), r[1], int(r[2])) for r in read_tsv(os.path.join(w, "ckpts.tsv"))]

    # Checkpoints: "checkpoint written path=... step=N" (time first seen, <= one fast tick late)
    # and the first/last fast tick at which its `.ckpt-N-*.tmp` was visible.
    written = []
    for t, line in log:
        if " checkpoint written" in line:
            m = re.search(r"\bstep=(\d+)", line)
            written.append(dict(t=t, step=int(m.group(1)) if m else -1))
    failed = [line for _, line in log if " checkpoint failed" in line]
    tmp_seen = {}
    for t, _, _, tmps, _ in fast_rows:
        if tmps == "-":
            continue
        for name in tmps.split(","):
            m = TMP_RE.match(name)
            if m:
                s = int(m.group(1))
                a, b = tmp_seen.get(s, (t, t))
                tmp_seen[s] = (min(a, t), max(b, t))
    # A checkpoint window opens when its snapshot may have been taken. The daemon takes one when
    # `every` seconds have passed since the previous snapshot (the first: since it started), so
    # periodic snapshot k is never earlier than snapshot k-1 + every; and it serialises the
    # snapshot before creating the tmp file, which the lead covers. The window opens at the later
    # of the two bounds; the shutdown checkpoint's opens at SIGTERM.
    windows = []
    chain = t0
    for c in written:
        first_tmp = tmp_seen.get(c["step"], (None, None))[0]
        anchor = min(first_tmp, c["t"]) if first_tmp is not None else c["t"]
        final = t_term is not None and c["t"] >= t_term
        if final:
            start = t_term
        else:
            start = min(anchor, max(chain + every, anchor - lead))
            chain = start
        windows.append(dict(step=c["step"], start=start, end=c["t"] + tail, written=c["t"],
                            tmp=tmp_seen.get(c["step"]), final=final))
    periodic = [x for x in windows if not x["final"]]

    def window_of(t):
        for x in windows:
            if x["start"] <= t <= x["end"]:
                return x
        return None

    for s in samples:
        s["win"] = window_of(s["t"])

    # Per-window peaks: the highest sampled RSS in the window (fast and slow samples), and the
    # kernel's VmHWM if it rose during the window (then the true peak in the window is exactly
    # VmHWM at its end, even if it fell between two samples).
    for x in windows:
        pts = [(t, rss, hwm) for t, rss, hwm, _, _ in fast_rows if x["start"] <= t <= x["end"]]
        pts += [(s["t"], s["rss"], s["hwm"]) for s in samples if x["start"] <= s["t"] <= x["end"]]
        before = [(t, rss, hwm) for t, rss, hwm, _, _ in fast_rows if t < x["start"]]
        x["n"] = len(pts)
        x["rss_before"] = before[-1][1] if before else None
        x["hwm_before"] = before[-1][2] if before else None
        if pts:
            tp, rp, _ = max(pts, key=lambda p: p[1])
            x["peak_sampled"], x["peak_t"] = rp, tp
            hwm_end = max(p[2] for p in pts)
            x["hwm_end"] = hwm_end
            rose = x["hwm_before"] is not None and hwm_end > x["hwm_before"]
            x["peak"] = max(rp, hwm_end) if rose else rp
            x["hwm_rose"] = rose
        else:
            x["peak_sampled"] = x["peak"] = x["peak_t"] = x["hwm_end"] = None
            x["hwm_rose"] = False

    p = print
    p(f"## ssl-daemon soak: {meta['seconds']} s, {meta['n_clips']} watched clips + 1 live stream")
    p()
    p("### Setup")
    p()
    p(f"- Machine: {meta['cpu_model']}, nproc {meta['nproc']}, memory {meta['mem_total']}, kernel {meta['kernel']}")
    p(f"- {meta['ffmpeg_version']}; binary `{meta['bin']}` (built {meta['bin_mtime']}); source tree HEAD {meta['git_head']}")
    p(f"- Soak command: `{meta['soak_cmd']}`")
    p(f"- Daemon: `{meta['daemon_cmd']}`")
    p(f"- Stream server: `{meta['server_cmd']}` (clip: {meta['stream_clip_info']})")
    p(f"- Watched directory: {meta['n_clips']} clips copied from {meta['clips_from']} ({meta['clip_seconds']})")
    p(f"- Effective checkpoint settings: checkpoint.every = {meta['checkpoint_every']} s"
      f" ({'SOAK_CHECKPOINT_EVERY' if meta['checkpoint_every_overridden'] else 'daemon default'}),"
      f" checkpoint.keep = {meta['checkpoint_keep']}; pairing.buffer_bytes = {meta['buffer_bytes']};"
      f" sources.epochs = {meta['epochs']}")
    p(f"- Sampling: /proc every {meta['sample_seconds']} s (table), VmRSS/VmHWM and `.ckpt-*.tmp` files every"
      f" {meta['fast_seconds']} s ({len(fast_rows)} fast samples); warm-up {warmup:g} s")
    p(f"- Checkpoint window (a sample in it is tagged `ckpt`): opens at the later of (a) {lead:g} s before the"
      f" checkpoint's `.ckpt-<step>-*.tmp` file was first seen (or its `checkpoint written` line, if the tmp file"
      f" was never caught; SOAK_CKPT_LEAD_SECONDS: the snapshot and serialisation come before the file) and"
      f" (b) the previous window's opening + checkpoint.every (the first: daemon start + every), since the"
      f" daemon snapshots once `every` s have passed since its previous snapshot; the shutdown checkpoint's"
      f" window opens at SIGTERM. It closes {tail:g} s after the `checkpoint written` line was seen.")
    p(f"- Work directory (logs, raw samples): {w}")
    p()

    # ---- Table -----------------------------------------------------------------------------
    p(f"### Samples (every {meta['sample_seconds']} s)")
    p()
    p("| t (s) | RSS MiB | VmHWM MiB | fds | threads | rchar MiB | wchar MiB | write_bytes MiB | state dir MiB | ledger B | phase |")
    p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for s in samples:
        tag = []
        if s["el"] < warmup:
            tag.append("warm-up")
        if s["win"] is not None:
            tag.append(f"ckpt {s['win']['step']}" + (" (final)" if s["win"]["final"] else ""))
        if t_term is not None and s["t"] >= t_term:
            tag.append("after SIGTERM")
        p(f"| {s['el']:.0f} | {mib(s['rss']):.1f} | {mib(s['hwm']):.1f} | {s['fds']} | {s['threads']} |"
          f" {s['rchar'] / 2**20:.1f} | {s['wchar'] / 2**20:.1f} | {s['wb'] / 2**20:.1f} |"
          f" {s['state'] / 2**20:.1f} | {s['ledger']} | {', '.join(tag)} |")
    p()

    # ---- Figures ---------------------------------------------------------------------------
    run = [s for s in samples if s["t"] < run_end + 1e-6]
    post = [s for s in run if s["el"] >= warmup]
    steady_pts = [s for s in post if s["win"] is None]
    slope = lsq_slope([s["el"] / 3600 for s in steady_pts], [mib(s["rss"]) for s in steady_pts])
    slope_all = lsq_slope([s["el"] / 3600 for s in post], [mib(s["rss"]) for s in post])
    fast_post = [(t, rss) for t, rss, _, _, _ in fast_rows if warmup <= t - t0 and t < run_end and window_of(t) is None]
    slope_fast = lsq_slope([(t - t0) / 3600 for t, _ in fast_post], [mib(r) for _, r in fast_post])
    steady = statistics.median([s["rss"] for s in steady_pts]) if steady_pts else None

    pw = [x for x in periodic if x["peak"] is not None]
    pw_post = [x for x in pw if x["written"] - t0 >= warmup]
    peak_x = max(pw, key=lambda x: x["peak"]) if pw else None
    ratio = peak_x["peak"] / steady if peak_x and steady else None

    fds_post = [s["fds"] for s in post]
    fds_all = [s["fds"] for s in run]

    # write_bytes per hour over the samples after warm-up (the figure against the goal) and over
    # the whole run; SIGTERM's final checkpoint is outside both.
    def rate(pts, key):
        if len(pts) < 2 or pts[-1]["t"] <= pts[0]["t"]:
            return None, None
        d = pts[-1][key] - pts[0][key]
        return d, d / (pts[-1]["t"] - pts[0]["t"]) * 3600
    wb_post_d, wb_post_h = rate(post, "wb")
    wb_run_d, wb_run_h = rate(run, "wb")
    rchar_d, rchar_h = rate(post if len(post) >= 2 else run, "rchar")
    wchar_d, wchar_h = rate(post if len(post) >= 2 else run, "wchar")
    ckpt_sizes = [size for _, _, size in ckpt_files]
    n_post_interval = 0
    if len(post) >= 2:
        n_post_interval = sum(1 for c in written if post[0]["t"] < c["t"] <= post[-1]["t"])
    last_sizes = ckpt_sizes[-3:]
    est_h = (statistics.mean(last_sizes) * 3600 / every) if last_sizes else None

    summary, summary_line = None, None
    out_lines = [l for l in open(os.path.join(w, "daemon.out"), errors="replace").read().splitlines() if l.strip()]
    if out_lines:
        summary_line = out_lines[-1]
        try:
            summary = json.loads(summary_line)
        except ValueError:
            pass
    ledger_bytes, ledger_lines = meta.get("ledger_bytes"), meta.get("ledger_lines")
    crashed = meta["crashed"]

    p("### Figures")
    p()
    p("| figure | value |")
    p("|---|---:|")
    p(f"| run length (daemon start → {'SIGTERM' if t_term is not None else 'its death'}) | {run_end - t0:.0f} s |")
    p(f"| samples after warm-up (≥ {warmup:g} s, before SIGTERM) / of them outside checkpoint windows | {len(post)} / {len(steady_pts)} |")
    p(f"| **RSS slope after warm-up** (least squares over those {len(steady_pts)} table samples) | "
      + (f"**{slope:+.2f} MiB/h**" if slope is not None else "n/a") + " |")
    p(f"| RSS slope after warm-up, all {len(post)} table samples (checkpoint ones included) | "
      + (f"{slope_all:+.2f} MiB/h" if slope_all is not None else "n/a") + " |")
    p(f"| RSS slope after warm-up, {len(fast_post)} fast samples outside checkpoint windows | "
      + (f"{slope_fast:+.2f} MiB/h" if slope_fast is not None else "n/a") + " |")
    p(f"| **steady RSS** (median of the table samples after warm-up, outside checkpoint windows) | "
      + (f"**{mib(steady):.1f} MiB**" if steady is not None else "n/a") + " |")
    if peak_x:
        p(f"| **peak RSS during a periodic checkpoint** (checkpoint step {peak_x['step']}, written at"
          f" {peak_x['written'] - t0:.0f} s{'; VmHWM rose in its window' if peak_x['hwm_rose'] else ''}) | **{mib(peak_x['peak']):.1f} MiB** |")
        p(f"| **checkpoint peak / steady** | " + (f"**{ratio:.2f}x**" if ratio else "n/a") + " |")
        if pw_post:
            px = max(pw_post, key=lambda x: x["peak"])
            p(f"| peak over the checkpoints written after warm-up only ({len(pw_post)}) | {mib(px['peak']):.1f} MiB"
              + (f" ({px['peak'] / steady:.2f}x)" if steady else "") + " |")
    else:
        p("| peak RSS during a periodic checkpoint | n/a (no periodic checkpoint was written) |")
    fin = [x for x in windows if x["final"] and x["peak"] is not None]
    if fin:
        p(f"| peak RSS during the shutdown checkpoint (step {fin[0]['step']}) | {mib(fin[0]['peak']):.1f} MiB |")
    if fast_rows:
        p(f"| VmHWM at the end (kernel's peak RSS over the whole run, start-up included) | {mib(fast_rows[-1][2]):.1f} MiB |")
    if fds_all:
        grew = (fds_post[-1] > fds_post[0]) if len(fds_post) >= 2 else None
        p(f"| open fds: first / max / last (whole run); after warm-up first → last | {fds_all[0]} / {max(fds_all)} / {fds_all[-1]};"
          + (f" {fds_post[0]} → {fds_post[-1]} ({'**grew**' if grew else 'did not grow'}, range {min(fds_post)}–{max(fds_post)})" if len(fds_post) >= 2 else " n/a") + " |")
    p(f"| state dir at the end (du -sb, after the shutdown checkpoint) | {meta['state_bytes_final']} B ({human_bytes(int(meta['state_bytes_final']))}) |")
    if run:
        p(f"| state dir at the last sample before SIGTERM | {run[-1]['state']} B ({human_bytes(run[-1]['state'])}) |")
    if wb_post_h is not None:
        p(f"| **write_bytes per hour after warm-up** ({human_bytes(wb_post_d)} in {post[-1]['t'] - post[0]['t']:.0f} s,"
          f" {n_post_interval} checkpoints written in that interval) | **{human_bytes(wb_post_h)}/h** |")
    if wb_run_h is not None:
        p(f"| write_bytes per hour, whole run ({human_bytes(wb_run_d)} in {run[-1]['t'] - run[0]['t']:.0f} s) | {human_bytes(wb_run_h)}/h |")
    if est_h is not None:
        p(f"| cross-check: mean size of the last {len(last_sizes)} checkpoint files ({human_bytes(statistics.mean(last_sizes))}) x 3600 / every | {human_bytes(est_h)}/h |")
    if rchar_h is not None:
        p(f"| rchar / wchar per hour (after warm-up) | {human_bytes(rchar_h)}/h / {human_bytes(wchar_h)}/h |")
    if run:
        p(f"| cancelled_write_bytes at the last sample before SIGTERM | {run[-1]['cwb']} |")
    p(f"| checkpoints written (\"checkpoint written\" lines): periodic / at shutdown / failed | {len(periodic)} /"
      f" {len(windows) - len(periodic)} / {len(failed)} (expected periodic ≈ {int((run_end - t0) // every)}) |")
    sizes_post = [size for t, _, size in ckpt_files if t - t0 >= warmup and (t_term is None or t < t_term)]
    if len(sizes_post) >= 2:
        g = (sizes_post[-1] - sizes_post[0]) / sizes_post[0]
        p(f"| checkpoint file size after warm-up, first → last (grows while the replay buffer fills;"
          f" pairing.buffer_bytes = {human_bytes(int(meta['buffer_bytes']))}) | {human_bytes(sizes_post[0])} → {human_bytes(sizes_post[-1])}"
          f" ({g:+.1%}{': the buffer was still filling, so RSS growth after warm-up includes the fill' if g > 0.02 else ''}) |")
    p(f"| checkpoint files seen (name, size) | {', '.join(f'{n.split(chr(46))[0]}={s}' for _, n, s in ckpt_files) or 'none'} |")
    p(f"| ledger at the end (state_dir/ledger.jsonl) | {ledger_bytes} B, {ledger_lines} lines |")
    if len(run) >= 2:
        p(f"| ledger growth (first → last sample before SIGTERM) | {run[0]['ledger']} → {run[-1]['ledger']} B"
          + (f" ({(run[-1]['ledger'] - run[0]['ledger']) / (run[-1]['t'] - run[0]['t']) * 3600 / 1e6:.2f} MB/h)" if run[-1]['t'] > run[0]['t'] else "") + " |")
    p(f"| daemon exit code | {meta['exit_code']}"
      + (f" ({meta['shutdown_seconds']} s after SIGTERM)" if meta.get("shutdown_seconds") else "")
      + (" — **the daemon died before SIGTERM**" if meta["died_early"] else "") + " |")
    p()
    p(f"Summary line: `{summary_line}`" if summary_line else "**No summary line on the daemon's stdout.**")
    p()

    # ---- Checkpoint windows ----------------------------------------------------------------
    if windows:
        p("### Checkpoints")
        p()
        p("| step | written at (s) | tmp file seen (s) | window (s) | samples | RSS before MiB | peak sampled MiB (at s) | VmHWM rose | peak MiB | peak / steady |")
        p("|---:|---:|---|---|---:|---:|---:|---|---:|---:|")
        for x in windows:
            tmp = f"{x['tmp'][0] - t0:.1f}–{x['tmp'][1] - t0:.1f}" if x["tmp"] else "not caught"
            before = f"{mib(x['rss_before']):.1f}" if x["rss_before"] is not None else "n/a"
            if x["peak_sampled"] is not None:
                pk = f"{mib(x['peak_sampled']):.1f} ({x['peak_t'] - t0:.1f})"
                if (x["rss_before"] and abs(x["peak_t"] - x["start"]) < 0.6
                        and x["peak_sampled"] > x["rss_before"] * 1.05):
                    pk += " at window start: lead too short?"
                peak = f"{mib(x['peak']):.1f}"
                rel = f"{x['peak'] / steady:.2f}x" if steady else "n/a"
            else:
                pk, peak, rel = "n/a", "n/a", "n/a"
            rose = f"yes, to {mib(x['hwm_end']):.1f}" if x["hwm_rose"] else "no"
            name = f"{x['step']}{' (shutdown)' if x['final'] else ''}"
            p(f"| {name} | {x['written'] - t0:.1f} | {tmp} | {x['start'] - t0:.1f}–{x['end'] - t0:.1f} |"
              f" {x['n']} | {before} | {pk} | {rose} | {peak} | {rel} |")
        p()

    # ---- Goals -----------------------------------------------------------------------------
    p("### Goals (information only)")
    p()
    p("| goal | measured | result |")
    p("|---|---:|---|")
    p(f"| RSS slope after warm-up < 10 MiB/h | " + (f"{slope:+.2f} MiB/h" if slope is not None else "n/a")
      + f" | {verdict(None if slope is None else slope < 10)} |")
    p(f"| checkpoint peak RSS <= 1.3x steady | " + (f"{ratio:.2f}x ({mib(peak_x['peak']):.1f} / {mib(steady):.1f} MiB)" if ratio else "n/a")
      + f" | {verdict(None if ratio is None else ratio <= 1.3)} |")
    p(f"| checkpoint bytes written per hour <= 1 GB (write_bytes after warm-up, 1 GB = 10^9 B) | "
      + (f"{human_bytes(wb_post_h)}/h" if wb_post_h is not None else "n/a")
      + f" | {verdict(None if wb_post_h is None else wb_post_h <= 1e9)} |")
    p()

    # ---- Log events ------------------------------------------------------------------------
    events = {k: sum(1 for _, l in log if k in l) for k in ("live source connected", "live source failed", "live source ended", "reconnecting")}
    if meta.get("server_died"):
        p("**The stream server exited before the end of the run** (see server.err in the work directory).")
    p("Live source events: " + ", ".join(f"{k}: {v}" for k, v in events.items()))
    bad = [(t, l) for t, l in log if re.match(r"^(<\d>)?(WARNING|ERROR|CRITICAL)\b", l)]
    p(f"Warnings/errors in the daemon's stderr: {len(bad)}")
    for t, l in bad[:20]:
        p(f"    [{t - t0:.1f} s] {l}")
    if summary:
        p()
        p(f"From the summary: steps {summary.get('steps')}, pairs trained {summary.get('pairs_trained')},"
          f" files ok/bad {summary.get('files', {}).get('ok')}/{summary.get('files', {}).get('bad')},"
          f" dropped_frames {summary.get('dropped_frames')}, loss {summary.get('loss_first')} → {summary.get('loss_last')}")
    if crashed:
        p()
        p("**The daemon crashed (died before SIGTERM, or exited non-zero after it).** Last stderr lines:")
        p("```")
        for _, l in log[-30:]:
            p(l)
        p("```")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fast")
    f.add_argument("--pid", type=int, required=True)
    f.add_argument("--state", required=True)
    f.add_argument("--err", required=True)
    f.add_argument("--work", required=True)
    f.add_argument("--interval", type=float, default=0.5)
    r = sub.add_parser("report")
    r.add_argument("--work", required=True)
    a = ap.parse_args()
    if a.cmd == "fast":
        fast(a)
    else:
        report(a)


if __name__ == "__main__":
    main()
