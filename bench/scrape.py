"""Times scrapes of a running daemon's /metrics, and says what the scrape holds.

usage: scrape.py URL CACHEKEEPER CONFIG

Waits for the daemon to answer, lets it settle, then times 200 scrapes one after another
(the time to the last byte, from this process: no curl start-up in the figure).
"""
import json
import statistics
import subprocess
import sys
import time
import urllib.request

url, ck, config = sys.argv[1:4]


def scrape():
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()


deadline = time.time() + 300
while True:
    try:
        text = scrape()
        if "cachekeeper_target_dirs" in text:
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("the daemon did not answer on " + url)
    time.sleep(0.5)
time.sleep(5)  # idle: the first measurement done, nothing running

times = []
for _ in range(200):
    t = time.perf_counter()
    text = scrape()
    times.append((time.perf_counter() - t) * 1000)
times.sort()
samples = [l for l in text.splitlines() if l and not l.startswith("#")]
families = [l for l in text.splitlines() if l.startswith("# TYPE")]
rss = next(float(l.split()[-1]) for l in samples if l.startswith("process_resident_memory_bytes"))
status = json.loads(subprocess.run([ck, "--config", config, "status", "--json"], check=True,
                                   capture_output=True, text=True).stdout)
units = sum(t["units"] for t in status["targets"])
print(f"Over {len(status['targets'])} target dirs holding {units} units:")
print()
print("| scrape (200 in a row) | median | p99 | max | body | series | families | daemon RSS, idle |")
print("|---|---|---|---|---|---|---|---|")
print(f"| `GET /metrics` | {statistics.median(times):.2f} ms | {times[int(len(times) * 0.99) - 1]:.2f} ms "
      f"| {times[-1]:.2f} ms | {len(text) / 1024:.1f} KiB | {len(samples)} | {len(families)} | {rss / 1048576:.1f} MiB |")
