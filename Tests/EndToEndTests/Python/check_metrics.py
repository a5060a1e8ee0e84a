"""Checks a daemon's /metrics with prometheus_client's own parser.

  check_metrics.py conventions URL   scrape twice, check the naming conventions, counters advance
  check_metrics.py value URL FAMILY  print the sum of a family's samples
"""
import json
import re
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def scrape(url):
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        assert r.status == 200, r.status
        ctype = r.headers["Content-Type"]
        assert ctype.startswith("text/plain; version=0.0.4"), ctype
        text = r.read().decode()
    return text, {f.name: f for f in text_string_to_metric_families(text)}


def total(families, name):
    return sum(s.value for s in families[name].samples if s.name in (name, name + "_total"))


def conventions(url):
    text, first = scrape(url)
    problems = []
    helps = set(re.findall(r"^# HELP (\S+) ", text, re.M))
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)", text, re.M))
    for name, family in first.items():
        exposed = name + "_total" if family.type == "counter" else name
        if exposed not in helps:
            problems.append(f"{exposed}: no HELP")
        if exposed not in types:
            problems.append(f"{exposed}: no TYPE")
        if not (name.startswith("ssl_") or name.startswith("process_")):
            problems.append(f"{name}: not ssl_ or process_")
        if family.type == "counter" and types.get(exposed) != "counter":
            problems.append(f"{exposed}: counter without _total")
        if re.search(r"_(ms|milliseconds|minutes|hours|kilobytes|megabytes)\b", name):
            problems.append(f"{name}: not a base unit")
        for s in family.samples:
            for key, value in s.labels.items():
                if "/" in value or "://" in value:
                    problems.append(f"{s.name}: label {key}={value} looks like a path or URL")
    required = ["ssl_steps", "ssl_examples_trained", "ssl_loss", "ssl_learning_rate", "ssl_step_duration_seconds",
                "ssl_contrastive_accuracy_ratio", "ssl_embedding_std_ratio", "ssl_effective_rank", "ssl_alignment",
                "ssl_uniformity", "ssl_key_queue_entries", "ssl_replay_buffer_bytes", "ssl_replay_buffer_entries",
                "ssl_replay_buffer_evictions", "ssl_files", "ssl_checkpoint_last_timestamp_seconds",
                "ssl_checkpoint_last_duration_seconds", "ssl_skipped_updates", "ssl_build_info",
                "process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"]
    for name in required:
        if name not in first:
            problems.append(f"{name}: missing")
    steps0 = total(first, "ssl_steps")
    deadline = time.time() + 60
    while True:
        time.sleep(2)
        _, second = scrape(url)
        if total(second, "ssl_steps") > steps0 or time.time() > deadline:
            break
    if total(second, "ssl_steps") <= steps0:
        problems.append(f"ssl_steps_total did not advance from {steps0}")
    if total(second, "ssl_step_duration_seconds_count") if "ssl_step_duration_seconds_count" in second else False:
        pass
    hist = second["ssl_step_duration_seconds"]
    counts = [s.value for s in hist.samples if s.name.endswith("_count")]
    if not counts or counts[0] <= 0:
        problems.append("ssl_step_duration_seconds has no observations")
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(json.dumps({"families": len(second), "steps": [steps0, total(second, "ssl_steps")]}))


def value(url, name):
    _, families = scrape(url)
    print(total(families, name))


if __name__ == "__main__":
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "conventions":
        conventions(url)
    else:
        value(url, sys.argv[3])
