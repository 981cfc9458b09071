#!/usr/bin/env python3
"""Runs a cargo build and says what it cost: wall seconds, CPU seconds of every process it ran
(rustc, build scripts, the linker: children are counted once cargo has waited for them), and
how many units it compiled.

Usage: cargo-run.py DIR CARGO_ARGS...      (run in DIR; CARGO_TARGET_DIR from the environment)
Prints one line of JSON: {"wall_s", "cpu_s", "units"}.
"""
import json
import resource
import subprocess
import sys
import time

cwd, args = sys.argv[1], sys.argv[2:]
before = resource.getrusage(resource.RUSAGE_CHILDREN)
start = time.perf_counter()
proc = subprocess.run(["cargo", "build", "--message-format", "json"] + args, cwd=cwd,
                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
wall = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_CHILDREN)
if proc.returncode != 0:
    sys.exit(f"cargo build {' '.join(args)} failed in {cwd}")
units = 0
for line in proc.stdout.splitlines():
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and not m.get("fresh", True):
        units += 1
    elif m.get("reason") == "build-script-executed":
        pass
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(json.dumps({"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "units": units}))
