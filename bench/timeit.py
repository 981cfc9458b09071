#!/usr/bin/env python3
"""Times a command: median wall time over runs, and the peak resident memory of one run.

Usage: timeit.py [--runs N] [--prepare SHELL_CMD] -- COMMAND [ARGS...]
Prints one line of JSON: {"median_s", "min_s", "max_s", "max_rss_mib"}.
--prepare runs (untimed) before every timed run, e.g. to restore a tree a clean removed.
"""
import json
import subprocess
import sys
import time


def main():
    args = sys.argv[1:]
    runs, prepare = 5, None
    while args and args[0] != "--":
        if args[0] == "--runs":
            runs, args = int(args[1]), args[2:]
        elif args[0] == "--prepare":
            prepare, args = args[1], args[2:]
        else:
            sys.exit(f"unknown option {args[0]}")
    cmd = args[1:]
    times, rss = [], 0
    for _ in range(runs):
        if prepare:
            subprocess.run(prepare, shell=True, check=True)
            # Write back what the preparation dirtied, so it does not compete with the run.
            subprocess.run(["sync"], check=True)
        start = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            sys.exit(f"{cmd} failed")
    # Peak memory from one more run under GNU time: a child forked from Python would count
    # Python's own pages before exec.
    if prepare:
        subprocess.run(prepare, shell=True, check=True)
        subprocess.run(["sync"], check=True)
    measured = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    rss = int(measured.stderr.strip().splitlines()[-1])
    times.sort()
    print(json.dumps({
        "median_s": round(times[len(times) // 2], 3),
        "min_s": round(times[0], 3),
        "max_s": round(times[-1], 3),
        "max_rss_mib": round(rss / 1024, 1),
    }))


if __name__ == "__main__":
    main()
