"""Samples a running gateway with py-spy while a scenario runs (BENCH_PROFILE=1), and summarises the
samples: where the worker spends its time, by function, with and without what it calls."""
from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


def start(pid: int, seconds: int, output: Path) -> subprocess.Popen:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen([spy, "record", "--subprocesses", "--nonblocking", "--function", "-r", "250", "-f", "raw",
                             "-d", str(seconds), "-o", str(output), "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summary(raw: Path, top: int = 25) -> str:
    """The functions with the largest inclusive share of the samples, and their own (self) share."""
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = [frame for frame in stack.split(";") if not frame.startswith("process ")]
        samples = int(count)
        total += samples
        for frame in set(frames):
            inclusive[frame] += samples
        if frames:
            own[frames[-1]] += samples
    lines = [f"{total} samples", "inclusive  self  function"]
    for frame, samples in inclusive.most_common(top):
        lines.append(f"{samples * 100 / total:8.1f}% {own[frame] * 100 / total:5.1f}%  {frame}")
    lines += ["", "self  function"]
    for frame, samples in own.most_common(top):
        lines.append(f"{samples * 100 / total:5.1f}%  {frame}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(summary(Path(sys.argv[1])))
