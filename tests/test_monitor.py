"""check_leaks.Monitor: what keeps growing in a running program, by the rule
of growth that goes on, with its reports on demand; tried on the API, then on
real servers (uvicorn with Starlette, gunicorn with Flask) driven by real
HTTP requests."""

import http.client
import json
import pathlib
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time

import pytest
from check_leaks import timeline
from check_leaks.growth import Growth
from flavors import needs_trace_refs

pytestmark = needs_trace_refs

TESTS = pathlib.Path(__file__).parent

# Three kinds of work: one keeps what it made, one fills a bounded cache,
# one keeps nothing. `LEAK` decides whether the first one runs.
WORKER = """
import functools, os, sys
from check_leaks import Monitor

KEPT = []


@functools.lru_cache(maxsize=128)
def lookup(key):
    return {{"key": key, "parts": [key] * 3}}


def handle(i):
    if i % 3 == 0 and {leak}:
        KEPT.append({{"request": i, "authorization": "Bearer sekrit-%d" % i}})
    elif i % 3 == 1:
        lookup(i)
    else:
        sum(range(100))


monitor = Monitor("worker", every=25, report_dir=sys.argv[1], redact={redact})
with monitor:
    for i in range({requests}):
        handle(i)
        monitor.done()
"""


def run_worker(tmp_path, *, leak=True, redact=True, requests=2000):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(leak=leak, redact=redact, requests=requests))
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, str(script), str(reports)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return script, reports, json.loads((reports / "report.json").read_text())


def test_a_list_that_grows_is_a_leak_and_a_full_cache_is_not(tmp_path):
    script, reports, report = run_worker(tmp_path)
    leaks = [g for g in report["groups"] if g["verdict"] == "leak"]
    assert leaks, (reports / "report.txt").read_text()
    # Every leak is the list's: the dicts made at the leaking line, and
    # the strs and ints they hold.
    assert {g["held_by"][0] for g in leaks} == {"global `KEPT` of module `__main__`"}
    assert f"{script}:15" in {g["site"] for g in leaks if g["type"] == "dict"}
    dicts = next(g for g in leaks if g["type"] == "dict" and g["site"] == f"{script}:15")
    assert "grew at" in dicts["growth"] and dicts["per_unit"] == pytest.approx(1 / 3, rel=0.1)
    cached = [g for g in report["groups"] if g["site"] == f"{script}:10"]
    assert cached and all(g["verdict"] == "bounded" for g in cached)
    assert all(g["objects"][-1] <= 128 for g in cached)
    text = (reports / "report.txt").read_text()
    assert "LEAK: " in text and "held by global `KEPT` of module `__main__`" in text


def test_the_html_page_plots_each_group_and_loads_nothing(tmp_path):
    _, reports, report = run_worker(tmp_path)
    page = (reports / "report.html").read_text()
    # One chart of objects and one of bytes per group, and the overview's
    # and the process's.
    assert page.count("<svg") >= 2 * len(report["groups"]) + 2
    assert '<polyline class="leak"' in page and '<polyline class="bounded"' in page
    assert not re.search(r"<script|<link|<img|src=", page)


def test_the_same_work_without_the_leak_is_clean(tmp_path):
    _, reports, report = run_worker(tmp_path, leak=False)
    assert not [g for g in report["groups"] if g["verdict"] == "leak"]
    assert (reports / "report.txt").read_text().startswith("check_leaks monitor: 0 leaks")


def test_secrets_are_left_out_of_every_report_file(tmp_path):
    _, reports, _ = run_worker(tmp_path)
    for name in ("report.txt", "report.json", "report.html"):
        text = (reports / name).read_text()
        assert "[redacted]" in text, name
        # The source line shows the format; a repr would show a value.
        assert not re.search(r"sekrit-\d", text), name


def test_no_redact_keeps_them(tmp_path):
    _, reports, _ = run_worker(tmp_path, redact=False)
    assert re.search(r"sekrit-\d", (reports / "report.txt").read_text())


def test_reports_are_private_and_kept_in_a_history(tmp_path):
    _, reports, _ = run_worker(tmp_path, requests=300)
    assert stat.S_IMODE(reports.stat().st_mode) == 0o700
    files = [p for p in reports.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"report.txt", "report.json", "report.html"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    assert list((reports / "history").glob("*.json"))
    assert not [p for p in files if p.name.endswith(".tmp")]


def test_a_process_killed_while_writing_leaves_whole_reports(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time
            from check_leaks import Monitor
            KEPT = []
            with Monitor("writer", interval=0.02, report_dir=sys.argv[1], report_every=0.02):
                while True:
                    KEPT.append({"n": len(KEPT)})
                    time.sleep(0.0005)
            """
        )
    )
    reports = tmp_path / "reports"
    for delay in (1.0, 1.3, 1.7, 2.1):
        writer = subprocess.Popen([sys.executable, str(script), str(reports)])
        time.sleep(delay)
        writer.kill()
        writer.wait()
        json.loads((reports / "report.json").read_text())
        assert (reports / "report.txt").read_text().endswith("\n")
        assert (reports / "report.html").read_text().rstrip().endswith("</html>")


DESCRIPTORS = """
import os, sys
from check_leaks import Monitor

with Monitor("opener", unit="task", every=5) as monitor:
    for i in range(400):
        fd = os.open(sys.argv[0], os.O_RDONLY)
        if {close}:
            os.close(fd)
        monitor.done()
    report = monitor.report()
print(report.summary())
print(report.descriptor_leak)
"""


@pytest.mark.parametrize("close", [False, True])
def test_descriptors_opened_and_never_closed_are_a_leak(tmp_path, close):
    script = tmp_path / "opener.py"
    script.write_text(DESCRIPTORS.format(close=close))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    summary, words = done.stdout.splitlines()
    if close:
        assert summary.startswith("no leak in 400 tasks"), done.stdout
        assert words == "None"
    else:
        assert summary.startswith("1 leak in 400 tasks") and "file descriptors" in summary
        assert "+1 a task" in words and f"→ {script}" in words


@pytest.mark.parametrize(
    ("counts", "verdict"),
    [
        # An lru_cache of 128, filled in 16 checkpoints, then level.
        ([min(8 * n, 128) for n in range(60)], "bounded"),
        # A cache pruned back every 10 checkpoints.
        ([(n % 10) * 20 for n in range(60)], "bounded"),
        # One more every checkpoint, for 60.
        (list(range(60)), "leak"),
        # The same, seen for too few checkpoints to tell from a cache.
        (list(range(12)), "undecided"),
        # Level since start-up, and one more in flight at the last.
        ([0, 1, 2] + [2] * 72 + [3], "undecided"),
        # Swinging between 9 and 10, then one step at the last checkpoint:
        # what the first report imported, counted by the last.
        ([0, 8] + [9, 9, 10] * 26 + [1, 134], "undecided"),
    ],
)
def test_the_rule_tells_a_cache_from_a_leak(counts, verdict):
    growth = Growth(tuple(range(len(counts))), tuple(counts))
    assert timeline.judge(growth) == verdict


def test_task_counts_each_call(tmp_path):
    script = tmp_path / "tasks.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio
            from check_leaks import Monitor
            monitor = Monitor("tasks", unit="task", every=1000)

            @monitor.task
            def work(n):
                return n * 2

            @monitor.task
            async def async_work(n):
                return n * 3

            with monitor:
                assert [work(n) for n in range(5)] == [0, 2, 4, 6, 8]
                assert asyncio.run(async_work(2)) == 6
                print(monitor.report().units)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "6.0"


DRAMATIQ = """
import sys
import dramatiq
from dramatiq.brokers.stub import StubBroker
from check_leaks import Monitor

broker = StubBroker()
dramatiq.set_broker(broker)
monitor = Monitor("jobs", unit="task", every=20).start()
DONE = []


@dramatiq.actor
@monitor.task
def handle(n):
    if {leak}:
        DONE.append({{"job": n}})


worker = dramatiq.Worker(broker, worker_threads=1)
worker.start()
for n in range(1500):
    handle.send(n)
broker.join(handle.queue_name)
worker.stop()
print(monitor.stop().summary())
"""


@pytest.mark.parametrize("leak", [True, False])
def test_a_dramatiq_worker_under_the_task_decorator(tmp_path, leak):
    pytest.importorskip("dramatiq")
    script = tmp_path / "jobs.py"
    script.write_text(DRAMATIQ.format(leak=leak))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    if leak:
        assert "leaks in 1,500 tasks" in summary, summary
        assert "dict at jobs.py:17" in summary and "held by global `DONE`" in summary
    else:
        assert summary.startswith("no leak in 1,500 tasks"), summary


# -- the command line ----------------------------------------------------


def monitor_cli(*args, cwd, **popen):
    return subprocess.Popen(
        [sys.executable, "-m", "check_leaks", "monitor", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--signal", "SIGNOPE", "x.py"], "no such signal: 'SIGNOPE'"),
        (["--every", "soon", "x.py"], "not a duration: 'soon'"),
        (["--checkpoint", "0s", "x.py"], "must be longer than 0"),
        (["missing.py"], "no such script: missing.py"),
        ([], "give a script or -m MODULE"),
    ],
)
def test_usage_errors_say_what_is_wrong(tmp_path, args, says):
    done = monitor_cli(*args, cwd=tmp_path)
    _, err = done.communicate(timeout=60)
    assert done.returncode == 2
    assert says in err.splitlines()[-1]


def test_the_program_gets_its_arguments_and_its_exit_status(tmp_path):
    (tmp_path / "prog.py").write_text("import sys; print(sys.argv); sys.exit(3)")
    done = monitor_cli("--report-dir", "r", "prog.py", "--every", "x", cwd=tmp_path)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 3, err
    assert out.strip() == "['prog.py', '--every', 'x']"
    assert "check_leaks monitor: no leak in" in err
    assert (tmp_path / "r" / "report.txt").exists()


# -- real servers --------------------------------------------------------

REQUESTS = 2000


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port, process, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port} after {seconds} s")


def drive(port, requests=REQUESTS, seconds=240, pace=0.005):
    """Each endpoint in turn, `requests` in all, bounded in time, and at
    most one every `pace` seconds: a server checkpointed by the clock needs
    its 2,000 requests spread over enough checkpoints for a verdict."""
    deadline = time.monotonic() + seconds
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i in range(requests):
        assert time.monotonic() < deadline, f"only {i} requests in {seconds} s"
        time.sleep(pace)
        path = ("/leak", f"/cached?item=i{i}", "/clean")[i % 3]
        connection.request("GET", path, headers={"Authorization": f"Bearer token-{i}"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200, path
    connection.close()


def wait_for_report(path, since, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_mtime_ns > since:
            return path.read_text()
        time.sleep(0.2)
    raise TimeoutError(f"no new {path} after {seconds} s")


def assert_names_only_the_leak(text, leaking_line):
    """The report's leaks are all held by `SEEN`, and one of them is the
    dict made at the leaking line; nothing else is called a leak."""
    assert "LEAK: " in text, text
    sections = text.split("\n\n")
    leaks = [s for s in sections if s.startswith("LEAK: ")]
    assert all("held by global `SEEN` of module `server_app`" in s for s in leaks), text
    assert any(
        s.startswith("LEAK: ") and f"server_app.py:{leaking_line}" in s and " dict " in s
        for s in leaks
    ), text
    assert "token-" not in text


@pytest.fixture
def app_dir(tmp_path):
    shutil.copy(TESTS / "server_app.py", tmp_path)
    return tmp_path


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            return process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.communicate()


def test_uvicorn_under_the_monitor_reports_on_sigusr2(app_dir):
    pytest.importorskip("uvicorn")
    port = free_port()
    server = monitor_cli(
        "--report-dir", "reports", "--checkpoint", "0.1s",
        "-m", "uvicorn", "server_app:app", "--port", str(port), "--log-level", "warning",
        cwd=app_dir,
    )  # fmt: skip
    try:
        wait_for(port, server)
        drive(port)
        asked = time.time_ns()
        server.send_signal(signal.SIGUSR2)
        text = wait_for_report(app_dir / "reports" / "report.txt", asked)
        assert server.poll() is None, "SIGUSR2 stopped the server"
    finally:
        _, err = stop(server)
    assert_names_only_the_leak(text, 26)
    # SIGINT stopped uvicorn as it would have without the monitor.
    assert server.returncode == 0, err
    assert "check_leaks monitor: " in err


def test_the_asgi_middleware_reports_on_its_trigger_file(app_dir):
    pytest.importorskip("uvicorn")
    (app_dir / "wrapped.py").write_text(
        textwrap.dedent(
            """
            from check_leaks import ASGIMonitor, Monitor
            from server_app import app as plain
            app = ASGIMonitor(plain, Monitor("server_app", every=25, report_dir="reports"))
            """
        )
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "wrapped:app", "--port", str(port),
         "--log-level", "warning"],
        cwd=app_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(port, server)
        drive(port)
        asked = time.time_ns()
        (app_dir / "reports" / "trigger").touch()
        text = wait_for_report(app_dir / "reports" / "report.txt", asked)
    finally:
        asked = time.time_ns()
        stop(server)
    assert_names_only_the_leak(text, 26)
    # The server's exit wrote the last one.
    assert_names_only_the_leak(wait_for_report(app_dir / "reports" / "report.txt", asked), 26)
    assert f"{REQUESTS - 25:,} requests" in text or "requests" in text.splitlines()[0]


def test_gunicorn_workers_each_report_in_their_own_directory(app_dir):
    pytest.importorskip("gunicorn")
    port = free_port()
    server = monitor_cli(
        "--report-dir", "reports", "--checkpoint", "0.1s",
        "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "server_app:wsgi_app",
        cwd=app_dir,
    )  # fmt: skip
    reports = app_dir / "reports"
    try:
        wait_for(port, server)
        drive(port)
        asked = time.time_ns()
        (reports / "trigger").touch()
        top = wait_for_report(reports / "report.txt", asked)
        workers = [p for p in reports.iterdir() if p.name.isdigit()]
        assert len(workers) == 2, sorted(p.name for p in reports.iterdir())
        texts = [wait_for_report(w / "report.txt", asked) for w in workers]
    finally:
        stop(server)
    # Both workers served the leaking endpoint; each names it.
    for text in texts:
        assert_names_only_the_leak(text, 45)
    # The master holds nothing that grows, and lists its workers.
    assert top.startswith("check_leaks monitor: 0 leaks")
    assert all(f"{w.name}/report.txt (pid {w.name}, running)" in top for w in workers), top
