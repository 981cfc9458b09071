#!/usr/bin/env python3
"""Moves every inode's atime and mtime back by SECONDS (each inode once), and renames rustc's
incremental sessions to match: "time passes" for a whole build tree without changing the
order of its timestamps, which is what cargo's freshness checks compare.

Usage: shift-times.py DIR SECONDS
"""
import os
import sys


def base36(n):
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        out = digits[n % 36] + out
        n //= 36
        if n == 0:
            return out


root, by = sys.argv[1], int(sys.argv[2])
for dirpath, dirnames, _ in os.walk(root):
    if os.path.basename(os.path.dirname(dirpath)) == "incremental":
        for name in sorted(os.listdir(dirpath)):
            if name.startswith("s-"):
                ts, tail = name[2:].split("-", 1)
                new = f"s-{base36(int(ts, 36) - by * 1_000_000)}-{tail}"
                os.rename(os.path.join(dirpath, name), os.path.join(dirpath, new))
seen = set()
for dirpath, dirnames, filenames in os.walk(root, topdown=False):
    for name in filenames + dirnames + [""]:
        p = os.path.join(dirpath, name) if name else dirpath
        st = os.lstat(p)
        if os.path.islink(p) or (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        os.utime(p, ns=(st.st_atime_ns - by * 10**9, st.st_mtime_ns - by * 10**9))
