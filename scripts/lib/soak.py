"""Soak of scripts/reliability.sh: one bounded run against a service on 127.0.0.1.

usage: soak.py PORT PID SECONDS

For SECONDS: waves of 1000 concurrent small uploads (raw PUT, 4 KiB), 300 connections that
trickle a body at 1 byte per 2 s, and 200 `/wait` requests sleeping min(SECONDS, 60), while
`/healthz` and a small upload are timed one at a time. Then every acknowledged upload is
downloaded and its SHA-256 compared, and the service's open files and RSS are read again once
the trickles and waits are gone. Prints one JSON object.
"""
import asyncio
import hashlib
import json
import os
import sys
import time

HOST = "127.0.0.1"


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def exchange(port, request, timeout=60):
    """One request on its own connection; (status, body) or (0, error)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await asyncio.wait_for(reader.readexactly(length), timeout)
        writer.close()
        return status, body
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
        return 0, repr(e).encode()


def put(name, data):
    return (f"PUT /files/{name} HTTP/1.1\r\nHost: soak\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n").encode() + data


async def upload(port, i, acked, failed):
    data = os.urandom(4096)
    status, body = await exchange(port, put(f"s{i}.bin", data))
    if status == 201:
        acked.append((json.loads(body)["id"], hashlib.sha256(data).hexdigest()))
    else:
        failed.append(status)


async def trickle(port, stop, outcome):
    """A body that never arrives faster than 1 byte per 2 s: the service must cut it off."""
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"PUT /files/t.bin HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n")
        while not stop.is_set():
            writer.write(b"x")
            await writer.drain()
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
                outcome.append(int(head.split(b" ", 2)[1]))
                break
            except asyncio.TimeoutError:
                continue
        writer.close()
    except (OSError, asyncio.IncompleteReadError):
        outcome.append(0)


async def timed(port, request, samples, stop, ok):
    while not stop.is_set():
        began = time.monotonic()
        status, _ = await exchange(port, request() if callable(request) else request, 30)
        samples.append((time.monotonic() - began) * 1000)
        if status != ok:
            samples.append(float("inf"))
        await asyncio.sleep(0.05)


def p99(samples):
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * 0.99))] if s else float("nan")


async def main(port, pid, seconds):
    before_fds, before_rss = fds(pid), rss_mib(pid)
    stop = asyncio.Event()
    acked, failed, trickled, waits = [], [], [], []
    health, small = [], []
    probes = [
        asyncio.create_task(timed(port, b"GET /healthz HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n",
                                  health, stop, 200)),
        asyncio.create_task(timed(port, lambda: put("probe.bin", os.urandom(1024)), small, stop, 201)),
    ]
    trickles = [asyncio.create_task(trickle(port, stop, trickled)) for _ in range(300)]
    wait_req = f"GET /wait?duration={min(60, seconds)} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n".encode()
    wait_tasks = [asyncio.create_task(exchange(port, wait_req, 90)) for _ in range(200)]
    deadline = time.monotonic() + seconds
    waves, peak_fds, peak_rss = 0, before_fds, before_rss
    while time.monotonic() < deadline:
        await asyncio.gather(*(upload(port, waves * 1000 + i, acked, failed) for i in range(1000)))
        waves += 1
        peak_fds, peak_rss = max(peak_fds, fds(pid)), max(peak_rss, rss_mib(pid))
    stop.set()
    await asyncio.gather(*probes, *trickles)
    for status, _ in await asyncio.gather(*wait_tasks):
        waits.append(status)
    corrupt = 0
    for id_, sha in acked:
        status, body = await exchange(port, f"GET /files/{id_} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n".encode())
        if status != 200 or hashlib.sha256(body).hexdigest() != sha:
            corrupt += 1
    await asyncio.sleep(1)  # the last connections close on the service's side too
    print(json.dumps({
        "seconds": seconds, "waves": waves, "uploads_acked": len(acked),
        "uploads_failed": len(failed), "failed_statuses": sorted(set(failed)),
        "corrupt": corrupt, "trickles_cut": sum(1 for s in trickled if s == 408),
        "trickles": len(trickled), "waits_503": waits.count(503), "waits_200": waits.count(200),
        "healthz_p99_ms": round(p99(health), 1), "healthz_samples": len(health),
        "small_upload_p99_ms": round(p99(small), 1), "small_upload_samples": len(small),
        "fds_before": before_fds, "fds_peak": peak_fds, "fds_after": fds(pid),
        "rss_mib_before": round(before_rss, 1), "rss_mib_peak": round(peak_rss, 1),
        "rss_mib_after": round(rss_mib(pid), 1),
    }))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
