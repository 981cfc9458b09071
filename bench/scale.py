#!/usr/bin/env python3
"""Drives a cachekeeper daemon over a large generated target dir and measures what a monorepo
runner cares about; prints one line of JSON.

usage: scale.py CACHEKEEPER CONFIG SOCKET TARGET_DIR

- first full scan: from start to the first answered status, and the peak RSS meanwhile;
- idle RSS, and status latency (p50, p99 of 1,000 requests over the socket, no process start);
- a full walk with nothing else asked (median of three), the anchor against `du -sb`;
- status latency while a full walk runs (`status --refresh` asked from another connection);
- CPU seconds of the daemon for the refresh after a "build" that rewrote 1, 10 and 100 units'
  fingerprints while holding cargo's lock (median of three builds each), against the CPU of a
  full walk.
"""
import fcntl
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

ck, config, sock_path, target = sys.argv[1:5]
TICK = os.sysconf("SC_CLK_TCK")


def ask(request, timeout=600):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    s.sendall((json.dumps(request) + "\n").encode())
    chunks = []
    while True:
        b = s.recv(1 << 16)
        if not b:
            break
        chunks.append(b)
        if b.endswith(b"\n"):
            break
    s.close()
    return json.loads(b"".join(chunks))


def status(refresh=False):
    return ask({"request": "status", "refresh": refresh})


def proc(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # MiB
    return 0.0


def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def latencies(n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        status()
        out.append((time.perf_counter() - t) * 1000)
    out.sort()
    return {"p50_ms": round(out[len(out) // 2], 2), "p99_ms": round(out[int(len(out) * 0.99)], 2)}


def walks(v):
    return v["view"]["daemon"]["index"]["walks"]


def idle_cpu(pid, settle=1.0):
    """Waits until the daemon's CPU stops moving (a refresh is over)."""
    last = cpu(pid)
    while True:
        time.sleep(settle)
        now = cpu(pid)
        if now == last:
            return now
        last = now


def fake_build(units, offset):
    """What cargo does to the units a build recompiles: under the profile's lock, rewrite
    each unit's fingerprint files (units `offset`.. in name order: each build others)."""
    profile = os.path.join(target, "debug")
    every = sorted(os.listdir(os.path.join(profile, ".fingerprint")))
    start = offset % max(1, len(every) - units)
    fps = every[start : start + units]
    with open(os.path.join(profile, ".cargo-lock"), "r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for fp in fps:
            d = os.path.join(profile, ".fingerprint", fp)
            for name in os.listdir(d):
                if name.startswith("lib-") and not name.endswith(".json"):
                    with open(os.path.join(d, name), "w") as f:
                        f.write(os.urandom(8).hex())
        fcntl.flock(lock, fcntl.LOCK_UN)


log = open(os.path.join(os.path.dirname(config), "daemon.log"), "w")
start = time.perf_counter()
daemon = subprocess.Popen([ck, "--config", config, "daemon"], stdout=log, stderr=log)
pid = daemon.pid
peak = 0.0
while True:
    peak = max(peak, proc(pid, "VmRSS"))
    try:
        v = status()
        if v.get("response") == "status":
            break
    except OSError:
        pass
    if daemon.poll() is not None:
        sys.exit("the daemon exited; see daemon.log")
    time.sleep(0.05)
first_scan_s = time.perf_counter() - start
first_cpu = cpu(pid)
result = {
    "files": v["view"]["targets"][0]["files"],
    "units": v["view"]["targets"][0]["units"],
    "first_scan_s": round(first_scan_s, 2),
    "first_scan_cpu_s": round(first_cpu, 2),
    "peak_rss_mib": round(max(peak, proc(pid, "VmHWM")), 1),
}
idle_cpu(pid)
result["idle_rss_mib"] = round(proc(pid, "VmRSS"), 1)
result["status_idle"] = latencies(1000)

# A full walk with nothing else asked (the anchor against `du -sb`), median of three.
alone = []
for _ in range(3):
    before = cpu(pid)
    t = time.perf_counter()
    status(refresh=True)
    alone.append((time.perf_counter() - t, idle_cpu(pid) - before))
alone.sort()
result["full_walk_alone_s"] = round(alone[1][0], 2)
result["full_walk_alone_cpu_s"] = round(alone[1][1], 2)

# A full walk, asked from another connection, and status answered meanwhile (as often as the
# socket answers: this takes CPU from the walk).
before = cpu(pid)
done = threading.Event()
walk_time = {}


def full_walk():
    t = time.perf_counter()
    status(refresh=True)
    walk_time["s"] = time.perf_counter() - t
    done.set()


threading.Thread(target=full_walk, daemon=True).start()
during = []
while not done.is_set():
    t = time.perf_counter()
    status()
    during.append((time.perf_counter() - t) * 1000)
during.sort()
full_cpu = idle_cpu(pid) - before
result["full_walk_s"] = round(walk_time["s"], 2)
result["full_walk_cpu_s"] = round(full_cpu, 2)
result["status_during_walk"] = {
    "n": len(during),
    "p50_ms": round(during[len(during) // 2], 2),
    "p99_ms": round(during[int(len(during) * 0.99)], 2),
    "max_ms": round(during[-1], 2),
}

offset = 0
for n in (1, 10, 100):
    # Median of three builds: a refresh can start while a build's last events still arrive,
    # and single runs on this VM move by a third.
    runs = []
    for _ in range(3):
        changed = walks(status())["changed"]
        before = idle_cpu(pid)
        fake_build(n, offset)
        offset += n
        deadline = time.time() + 600
        while walks(status())["changed"] == changed and time.time() < deadline:
            time.sleep(0.05)
        runs.append(idle_cpu(pid) - before)
    used = sorted(runs)[1]
    result[f"refresh_after_{n}_units_cpu_s"] = round(used, 2)
    # Against the walk with nothing else asked: the other one's CPU includes answering status.
    share = used / max(result["full_walk_alone_cpu_s"], 0.01)
    result[f"refresh_after_{n}_units_share_of_full"] = round(share, 4)
result["idle_rss_after_mib"] = round(proc(pid, "VmRSS"), 1)
daemon.terminate()
daemon.wait(timeout=60)
print(json.dumps(result))
