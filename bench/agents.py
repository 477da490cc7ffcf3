#!/usr/bin/env python3
"""N simulated agents against a real `lazare serve`, all at once, through the
API the agent uses: hello (inventory -> signed plan), progress events, the
image download (the plan's URL, read to its end and counted), log uploads,
then the `installed` event. Prints one JSON line of figures on stdout.

Usage: agents.py BASE_URL N [--download-only]
  --download-only: only GET the image URL the real server's plan gave
  (env BENCH_IMAGE_PATH), for a plain HTTP server as a peer.

Stdlib only (threads + urllib): make bench needs no pip.
"""
import hashlib
import json
import os
import sys
import threading
import time
import urllib.request

CHUNK = 1 << 20
LOG_LINES = 40


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes = 0
        self.errors = []

    def add(self, requests=0, nbytes=0):
        with self.lock:
            self.requests += requests
            self.bytes += nbytes

    def fail(self, msg):
        with self.lock:
            self.errors.append(msg)


def request(url, body=None, ctype="application/json", headers=()):
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if body is not None:
        req.add_header("Content-Type", ctype)
    for name, value in headers:
        req.add_header(name, value)
    return urllib.request.urlopen(req, timeout=300)


def inventory(n):
    """A plausible old PC, distinct for each n (as tests/server_support does)."""
    mac = "52:54:00:00:%02x:%02x" % ((n >> 8) & 0xFF, n & 0xFF)
    mib = 1 << 20
    return {
        "machine_id": hashlib.sha256(b"lazare-bench-agent-%d" % n).hexdigest(),
        "memory_bytes": (256 if n % 2 else 1024) * mib,
        "cpus": 1,
        "cpu_model": "Intel(R) Pentium(R) 4 CPU 2.40GHz",
        "firmware": "bios",
        "dmi": {"vendor": "Dell Inc.", "product": "OptiPlex GX270",
                "serial": "SN%05d" % n, "uuid": None},
        "disks": [{
            "name": "sda", "size_bytes": 40_000_000_000, "model": "ST340014A",
            "serial": "5JX%05d" % n, "removable": False, "rotational": True,
            "sector_size": 512, "partitions": [],
        }],
        "nics": [{"name": "eth0", "mac": mac, "driver": "e100", "carrier": True}],
        "boot_device": "sr0",
        "agent_version": "bench",
    }


def download(url, size, on_percent, c):
    """Reads the whole body; calls on_percent at each new percent."""
    got, last = 0, -1
    with request(url) as r:
        while True:
            b = r.read(CHUNK)
            if not b:
                break
            got += len(b)
            pct = got * 100 // size if size else 100
            if pct != last:
                last = pct
                on_percent(pct)
    c.add(1, got)
    if got != size:
        raise RuntimeError("downloaded %d bytes of %d" % (got, size))


def agent(base, n, c, barrier):
    barrier.wait()
    inv = inventory(n)
    mid = inv["machine_id"]
    challenge = os.urandom(16).hex()
    with request(base + "/api/v1/hello", json.dumps(inv).encode(),
                 headers=[("Lazare-Challenge", challenge)]) as r:
        plan = json.load(r)
        if not r.headers.get("Lazare-Signature", "").startswith("ed25519:"):
            raise RuntimeError("the plan has no Lazare-Signature header")
        # The secret this first hello enrolled the machine with: the real
        # agent proves every later call with it.
        auth = [("Authorization", "Lazare-Machine " + r.headers["Lazare-Machine-Secret"])]
    if plan.get("challenge") != challenge:
        raise RuntimeError("the plan does not echo the hello's challenge")
    c.add(1)
    events = "%s/api/v1/machines/%s/events" % (base, mid)
    log = "%s/api/v1/machines/%s/log" % (base, mid)
    lines = []

    def event(phase, pct, msg):
        body = json.dumps({"phase": phase, "percent": pct, "message": msg}).encode()
        with request(events, body, headers=auth):
            pass
        c.add(1)
        lines.append("%s %s" % (phase, msg))

    for phase in ("partition", "format"):
        event(phase, None, "agent %d %s" % (n, phase))
    # The real agent sends one event per percent of the download.
    download(base + plan["image"]["url"], plan["image"]["size"],
             lambda p: event("download", p, "downloading and unpacking the system"), c)
    for phase in ("configure", "bootloader"):
        event(phase, None, "agent %d %s" % (n, phase))
    text = "".join("agent %d log line %d: %s\n" % (n, i, lines[i % len(lines)])
                   for i in range(LOG_LINES))
    with request(log, text.encode(), "text/plain", headers=auth):
        pass
    c.add(1)
    event("installed", 100, "installed; restarting into the new system")


def download_only(base, path, size, c, barrier):
    barrier.wait()
    download(base + path, size, lambda p: None, c)


def main():
    base, n = sys.argv[1], int(sys.argv[2])
    only = "--download-only" in sys.argv
    c = Counter()
    barrier = threading.Barrier(n)

    def run(i):
        try:
            if only:
                download_only(base, os.environ["BENCH_IMAGE_PATH"],
                              int(os.environ["BENCH_IMAGE_SIZE"]), c, barrier)
            else:
                agent(base, i, c, barrier)
        except Exception as e:  # reported, and fails the run below
            c.fail("agent %d: %s" % (i, e))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(1, n + 1)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    print(json.dumps({"agents": n, "seconds": round(secs, 2), "requests": c.requests,
                      "bytes": c.bytes, "errors": c.errors[:5]}))
    sys.exit(1 if c.errors else 0)


if __name__ == "__main__":
    main()
