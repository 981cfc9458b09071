#!/usr/bin/env python3
"""Copies a tree and gives the copy the original's access and modification times.

Usage: snapshot.py save SRC MANIFEST      record every entry's (atime, mtime) without reading it
       snapshot.py restore SRC DST MANIFEST   cp -a SRC DST, then apply the recorded times

Copying reads every file, which moves atimes (the signal cachekeeper and cargo-sweep rely
on): the manifest keeps the times as they were before any copy.
"""
import json
import os
import subprocess
import sys


def save(src, manifest):
    times = {}
    for dirpath, dirnames, filenames in os.walk(src):
        for name in dirnames + filenames + [""]:
            p = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(p)
            times[os.path.relpath(p, src)] = (st.st_atime_ns, st.st_mtime_ns)
    with open(manifest, "w") as f:
        json.dump(times, f)


def restore(src, dst, manifest):
    subprocess.run(["rm", "-rf", dst], check=True)
    subprocess.run(["cp", "-a", src, dst], check=True)
    with open(manifest) as f:
        times = json.load(f)
    # Deepest first, so setting a directory's times is not undone by work inside it.
    for rel in sorted(times, key=lambda r: -r.count("/")):
        p = os.path.join(dst, rel)
        if os.path.islink(p):
            continue
        try:
            os.utime(p, ns=tuple(times[rel]))
        except FileNotFoundError:
            pass


if __name__ == "__main__":
    if sys.argv[1] == "save":
        save(sys.argv[2], sys.argv[3])
    else:
        restore(sys.argv[2], sys.argv[3], sys.argv[4])
