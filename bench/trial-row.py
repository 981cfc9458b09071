#!/usr/bin/env python3
"""One row of a Markdown table: what a clean estimated against the next builds measured, the
median over repeated trials (single runs on a small VM move by 20 to 50 %).

Usage: trial-row.py TEMPLATE REPORT DEBUG RELEASE [DEBUG RELEASE ...]
  TEMPLATE  a str.format template with the fields below
  REPORT    `clean --json` of the trial
  DEBUG, RELEASE  cargo-run.py's line for the next debug and release builds, once per repeat
Fields: freed_mb, units_debug, units_release (of the first repeat), ewall, ecpu (the
estimate), wall, cpu (measured medians, debug + release), err (wall, in %).
"""
import json
import statistics
import sys

template, report, builds = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
if not builds or len(builds) % 2:
    sys.exit("trial-row.py: give the debug and release lines of each repeat")
pairs = [(json.loads(d), json.loads(r)) for d, r in zip(builds[::2], builds[1::2])]
wall = statistics.median(d["wall_s"] + r["wall_s"] for d, r in pairs)
cpu = statistics.median(d["cpu_s"] + r["cpu_s"] for d, r in pairs)
e = report["rebuild"]
print(template.format(
    freed_mb=report["reclaimed_bytes"] // 1_000_000,
    units_debug=pairs[0][0]["units"],
    units_release=pairs[0][1]["units"],
    ewall=e["wall_seconds"],
    ecpu=e["cpu_seconds"],
    wall=wall,
    cpu=cpu,
    err=(e["wall_seconds"] - wall) / wall * 100 if wall > 0 else 0.0,
))
