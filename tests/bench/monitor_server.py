"""What the monitor costs a real server, and a checkpoint on a big heap.

Run by `cargo xtask bench` on the patched interpreter, which must have
uvicorn and Starlette (tests/requirements.txt). Serves tests/server_app.py's
clean endpoints with uvicorn on 127.0.0.1, plain and under `python -m
check_leaks monitor`, in turns, and prints `name value` lines:

- `plain_rps`, `monitored_rps`: requests a second, the best of the turns,
  with the monitor's default checkpoint every second and nothing traced
  (nothing grows);
- `traced_rps`: the same with sites traced from the start (`--sites always`);
- `checkpoint_ms`: one checkpoint (a collection of the young generations
  and a walk) of a heap of `HEAP` objects;
- `soak_requests`, `soak_rss_start_mb`, `soak_rss_end_mb`: the monitored
  server's resident set after the first tenth of a long soak and at its end.
"""

import gc
import http.client
import pathlib
import socket
import subprocess
import sys
import time

TESTS = pathlib.Path(__file__).parent.parent
REQUESTS = 3000
TURNS = 3
SOAK = 100_000
# Where the monitored servers write their last reports.
REPORTS = "/tmp/check-leaks-bench-monitor"
HEAP = 1_000_000


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(port, *monitor):
    prefix = ["-m", "check_leaks", "monitor", "--report-dir", REPORTS, *monitor]
    command = [sys.executable, *(prefix if monitor else [])]
    command += ["-m", "uvicorn", "server_app:app", "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen(
        command, cwd=TESTS, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def wait_for(port, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


def drive(port, requests, seconds=600):
    """Clean requests only: a cache that fills, and one that keeps nothing."""
    deadline = time.monotonic() + seconds
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    began = time.perf_counter()
    for i in range(requests):
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {i} requests in {seconds} s")
        connection.request("GET", f"/cached?item=i{i % 100}" if i % 2 else "/clean")
        response = connection.getresponse()
        response.read()
    connection.close()
    return requests / (time.perf_counter() - began)


def resident_mb(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(*monitor, requests=REQUESTS):
    port = free_port()
    server = serve(port, *monitor)
    try:
        wait_for(port)
        drive(port, 200)  # imports and first-request set-up
        return drive(port, requests)
    finally:
        server.terminate()
        server.wait(60)


def soak():
    port = free_port()
    server = serve(port, "--checkpoint", "1s")
    try:
        wait_for(port)
        drive(port, SOAK // 10)
        start = resident_mb(server.pid)
        drive(port, SOAK - SOAK // 10)
        return start, resident_mb(server.pid)
    finally:
        server.terminate()
        server.wait(60)


def checkpoint_ms():
    from check_leaks import _shim
    from check_leaks.checker import clear_caches

    heap = [[float(i)] for i in range(HEAP // 3)]
    checkpoints = _shim.Checkpoints()
    heap += [(i,) for i in range(HEAP // 3)]  # new since the start: counted
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        clear_caches()
        gc.collect(1)  # as the monitor does
        checkpoints.checkpoint(0.0)
        best = min(best, time.perf_counter() - began)
    del heap
    return best * 1000


def main():
    best = {"plain_rps": 0.0, "monitored_rps": 0.0, "traced_rps": 0.0}
    for _ in range(TURNS):
        best["plain_rps"] = max(best["plain_rps"], run())
        best["monitored_rps"] = max(best["monitored_rps"], run("--checkpoint", "1s"))
    best["traced_rps"] = run("--checkpoint", "1s", "--sites", "always", requests=REQUESTS // 3)
    for name, value in best.items():
        print(name, f"{value:.1f}")
    print("checkpoint_ms", f"{checkpoint_ms():.1f}")
    start, end = soak()
    print("soak_requests", SOAK)
    print("soak_rss_start_mb", f"{start:.1f}")
    print("soak_rss_end_mb", f"{end:.1f}")


if __name__ == "__main__":
    main()
