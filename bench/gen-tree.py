#!/usr/bin/env python3
"""Generates a cargo-shaped target dir with many small files, for benchmarks.

Usage: gen-tree.py DIR UNITS FILES_PER_SESSION

Each unit gets a legacy-layout fingerprint dir, three outputs in deps/, and an incremental
crate dir with one session of FILES_PER_SESSION small object files (incremental data is where
real target dirs keep most of their files). Half the units are made two months old: their
fingerprints were last used then, and their sessions were created then.
"""
import json
import os
import random
import sys
import time

DAY = 86400
SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by cargo.\n"


def base36(n):
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        out = digits[n % 36] + out
        n //= 36
        if n == 0:
            return out


def main():
    root, units, per_session = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(42)
    profile = os.path.join(root, "debug")
    for d in (".fingerprint", "deps", "incremental", "build"):
        os.makedirs(os.path.join(profile, d), exist_ok=True)
    with open(os.path.join(root, "CACHEDIR.TAG"), "w") as f:
        f.write(SIGNATURE)
    open(os.path.join(profile, ".cargo-lock"), "w").close()
    now = time.time()
    blob = b"x" * 200
    for i in range(units):
        old = i % 2 == 0
        when = now - (60 * DAY if old else 600)
        name = f"crate{i}"
        h = f"{rng.getrandbits(64):016x}"
        fp = os.path.join(profile, ".fingerprint", f"{name}-{h}")
        os.makedirs(fp)
        value = rng.getrandbits(64)
        files = {
            f"lib-{name}": value.to_bytes(8, "little").hex(),
            f"lib-{name}.json": json.dumps({"rustc": 1, "deps": [], "local": []}),
            f"dep-lib-{name}": "dep-info",
            "invoked.timestamp": "",
        }
        for fname, content in files.items():
            with open(os.path.join(fp, fname), "w") as f:
                f.write(content)
        deps = os.path.join(profile, "deps")
        for art in (f"lib{name}-{h}.rlib", f"lib{name}-{h}.rmeta", f"{name}-{h}.d"):
            with open(os.path.join(deps, art), "wb") as f:
                f.write(blob * 20)
        crate_dir = os.path.join(profile, "incremental", f"{name}-{base36(rng.getrandbits(60))}")
        stamp = base36(int(when * 1e6))
        session = os.path.join(crate_dir, f"s-{stamp}-{base36(rng.getrandbits(30))}-{base36(rng.getrandbits(120))}")
        os.makedirs(session)
        open(os.path.join(crate_dir, f"s-{stamp}-x.lock"), "w").close()
        for j in range(per_session):
            with open(os.path.join(session, f"{j:05}.o"), "wb") as f:
                f.write(blob)
        for dirpath in (fp,):
            for fname in os.listdir(dirpath):
                os.utime(os.path.join(dirpath, fname), (when, when))
        for dirpath, _, fnames in os.walk(crate_dir):
            for fname in fnames:
                os.utime(os.path.join(dirpath, fname), (when, when))
            os.utime(dirpath, (when, when))
        for art in (f"lib{name}-{h}.rlib", f"lib{name}-{h}.rmeta", f"{name}-{h}.d"):
            os.utime(os.path.join(deps, art), (when, when))


if __name__ == "__main__":
    main()
