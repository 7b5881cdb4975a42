"""`make bench`: the hot paths under load, over real sockets, side by side with a bare reference.

One run starts, in turn, the service (`evolink-jobs serve`, with its worker, LOG_LEVEL=INFO as in
production) with VERIFY_CALLBACKS off and on, and the bare reference (bench/bare.py: raw ASGI +
asyncpg, the same SQL work), each against an EvoLink stand-in that answers at once
(bench/standin.py), and drives each path with wrk (installed with apt-get if missing). Every
callback goes to a different job (first deliveries). It prints req/s, p50, p99 and the ratio
to the reference, on PostgreSQL (the ratios' home) and then on SQLite (service figures alone).

The machine is shared and noisy: read the ratios, measured minutes apart in one run, rather
than the absolute figures. Settings (environment): BENCH_DATABASE_URL (PostgreSQL; default
postgresql+asyncpg://postgres@127.0.0.1:5432/evolink_jobs_bench, dropped and recreated),
BENCH_SECONDS (per path, default 8), BENCH_CONNECTIONS (default 32), BENCH_SQLITE=0 to skip SQLite.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import and_, func, or_, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402

from app.callbacks.tokens import CallbackSigner  # noqa: E402
from app.db import create_engine, utcnow  # noqa: E402
from app.jobs.models import Job  # noqa: E402
from app.migrations import upgrade  # noqa: E402
from bench import seed  # noqa: E402
from tests.support.databases import redact, reset_postgres  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

KEY = "bench-key-0123456789"
SECRET = "bench-callback-secret-0123456789abcdef"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/evolink_jobs_bench"
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
THREADS = 2
WARMUP_SECONDS = 2.0
CALLBACK_JOBS = 50_000  # per callback run (a fifth for the warm-up): none repeats
READ_JOBS = 20_000
LUA = Path(__file__).with_name("requests.lua")
CREATE_LINE = f"POST\t/v1/jobs\t{json.dumps({'prompt': 'a benchmark fox'})}"

# What the issue asks of the service, as a fraction of the bare reference's req/s, and as a
# multiple of the naive peer's.
TARGETS = {"callback_off": 0.60, "callback_on": 0.50, "lookup": 0.45}
NAIVE_TARGETS = {"list": 2.0, "create": 3.0}
HALF_PEAK_P99_MS = 25.0


@dataclass
class Figures:
    """One wrk run."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def cells(self) -> str:
        bad = f"  ({self.errors} errors)" if self.errors else ""
        return f"{self.rate:8.0f} req/s  p50 {self.p50_ms:6.1f} ms  p99 {self.p99_ms:6.1f} ms{bad}"


def ensure_wrk() -> str:
    """The wrk binary, installed from Debian's packages if missing."""
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=True)  # noqa: S603
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench: wrk is not installed and apt-get could not install it")
    return found


def wrk(
    url: str,
    lines: list[str],
    key: str | None = None,
    seconds: float = SECONDS,
    warmup: list[str] | None = None,
) -> Figures:
    """Drive `url` with wrk sending `lines` (METHOD\\tPATH\\tBODY); its figures.

    First `WARMUP_SECONDS` of `warmup` (default: `lines`) are sent and not counted: the pool's
    connections opening and the first statements' compilation are not what is measured.
    """
    if seconds > WARMUP_SECONDS:
        _run_wrk(url, warmup if warmup is not None else lines, key, WARMUP_SECONDS)
    return _run_wrk(url, lines, key, seconds)


def _run_wrk(
    url: str, lines: list[str], key: str | None, seconds: float, rate: float | None = None
) -> Figures:
    """One wrk run; with `rate`, each connection waits between requests so that all of them
    together send about `rate` requests a second (wrk's `delay()`), and latencies are those of
    that rate rather than of saturation."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.write("\n".join(lines) + "\n")
    script = str(LUA)
    if rate is not None:
        delay_ms = max(1, round(CONNECTIONS * 1000 / rate))
        paced = LUA.read_text() + f"\nfunction delay()\n  return {delay_ms}\nend\n"
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
            lua.write(paced)
        script = lua.name
    args = [ensure_wrk(), f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--timeout", "10s",
            "-s", script, url, "--", str(THREADS), listing.name]  # fmt: skip
    if key:
        args.append(key)
    try:
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout  # noqa: S603
    finally:
        os.unlink(listing.name)
        if script != str(LUA):
            os.unlink(script)
    line = next(x for x in out.splitlines() if x.startswith("BENCH_JSON "))
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return Figures(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["socket_errors"] + data["non2xx"],
    )


class Server:
    """A child process serving HTTP on a free port, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], ready_path: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [a.replace("{port}", str(self.port)) for a in args]
        self.env = {**env, **{k: v.replace("{port}", str(self.port)) for k, v in env.items()}}
        self.ready_path = ready_path
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(  # noqa: S603
                self.args, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise SystemExit(f"bench: {self.args[:4]} exited; see {self.log}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"bench: {self.args[:4]} not ready; see {self.log}")

    def rss_mib(self) -> float:
        """Resident memory of the process now."""
        assert self.popen is not None
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def __exit__(self, *_: object) -> None:
        assert self.popen is not None
        self.popen.terminate()
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    return {k: v for k, v in os.environ.items() if k in keep} | {"PYTHONPATH": str(ROOT)}


def uvicorn(app: str) -> list[str]:
    return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "{port}",
            "--no-access-log", "--log-level", "warning"]  # fmt: skip


def service_env(database_url: str, standin: str, verify: bool, logs: Path) -> dict[str, str]:
    return base_env() | {
        "DATABASE_URL": database_url,
        "EVOLINK_API_KEY": "sk-evo-bench",
        "EVOLINK_BASE_URL": standin,
        "PUBLIC_BASE_URL": "http://127.0.0.1:{port}",
        "ALLOW_INSECURE_CALLBACKS": "true",
        "CALLBACK_SECRET": SECRET,
        "API_KEYS": f"{seed.CALLER}:{KEY}",
        "VERIFY_CALLBACKS": str(verify).lower(),
        "ARCHIVE_URL": "off",  # the stand-in's result URLs are not images
        "LOG_LEVEL": "INFO",
        "METRICS_REFRESH_SECONDS": "15",
    }


def callback_run(url: str, ids: dict[int, uuid.UUID], group: str) -> Figures:
    """Callbacks, each to a job of its own; the warm-up takes the last fifth of the jobs."""
    lines = callback_lines(ids, group)
    split = len(lines) * 4 // 5
    return wrk(url, lines[:split], warmup=lines[split:])


async def _backlog(database_url: str) -> int:
    """Jobs with background work due: archive bookkeeping, or a poll (a confirmation)."""
    due = or_(
        Job.archive_status == "pending",
        and_(Job.status.in_(["queued", "pending", "processing"]), Job.next_attempt_at <= utcnow()),
    )
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int((await connection.scalar(select(func.count()).where(due))) or 0)
    finally:
        await engine.dispose()


def settle(database_url: str) -> None:
    """Wait (up to 2 minutes) until the service has done the background work a run left it
    (confirmations, archive bookkeeping), so that the next run measures its own."""
    deadline = time.monotonic() + 120
    while asyncio.run(_backlog(database_url)) and time.monotonic() < deadline:
        time.sleep(0.2)


def callback_half_peak(url: str, ids: dict[int, uuid.UUID], group: str, peak: Figures) -> Figures:
    """Callbacks paced at half of `peak`'s rate, each to a job `callback_run` left untouched
    (once the service has caught up with the peak run's background work: `settle`)."""
    lines = callback_lines(ids, group)
    unused = lines[peak.requests + 4 * CONNECTIONS : len(lines) * 4 // 5]
    rate = peak.rate / 2
    if len(unused) < rate * SECONDS:
        raise SystemExit(f"bench: too few {group} jobs left for a paced run; raise CALLBACK_JOBS")
    return _run_wrk(url, unused, None, SECONDS, rate=rate)


def callback_lines(ids: dict[int, uuid.UUID], group: str) -> list[str]:
    signer = CallbackSigner("http://bench", SecretStr(SECRET))
    lines = []
    for i in sorted(ids):
        task = {"id": seed.task_id(group, i), "object": "image.generation.task",
                "status": "completed", "progress": 100, "results": [seed.RESULT]}  # fmt: skip
        body = json.dumps(task)
        path = httpx.URL(signer.url_for(ids[i])).path
        lines.append(f"POST\t{path}\t{body}")
    return lines


def lookup_lines(ids: dict[int, uuid.UUID]) -> list[str]:
    return [f"GET\t/v1/jobs/{ids[i]}\t" for i in sorted(ids)]


async def prepare(database_url: str) -> dict[str, dict[int, uuid.UUID]]:
    """Seed the groups of jobs; their ids by group."""
    engine = create_engine(database_url)
    groups = {"cb-off": (CALLBACK_JOBS, False), "cb-on": (CALLBACK_JOBS, False),
              "cb-bare": (CALLBACK_JOBS, False), "cb-naive": (CALLBACK_JOBS, False),
              "read": (READ_JOBS, True)}  # fmt: skip
    ids: dict[str, dict[int, uuid.UUID]] = {}
    try:
        for group, (count, final) in groups.items():
            await seed.seed_jobs(engine, group, count, final=final)
            if engine.dialect.name == "postgresql":
                ids[group] = {i: seed.job_id(group, i) for i in range(1, count + 1)}
            else:
                ids[group] = await seed.sqlite_ids(engine, group)
        if engine.dialect.name == "postgresql":
            async with engine.connect() as connection:
                await connection.execute(text("ANALYZE"))
    finally:
        await engine.dispose()
    return ids


async def waiting_jobs(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            query = text("SELECT count(*) FROM jobs WHERE submit_state IN ('waiting', 'sending')")
            return int((await connection.scalar(query)) or 0)
    finally:
        await engine.dispose()


def create_run(server: Server, database_url: str) -> tuple[Figures, float]:
    """POST /v1/jobs under load, then wait until every job is sent on; (figures, jobs/s sent)."""
    lines = [CREATE_LINE]

    def drained() -> None:
        deadline = time.monotonic() + 300
        while asyncio.run(waiting_jobs(database_url)) and time.monotonic() < deadline:
            time.sleep(0.1)

    _run_wrk(server.url, lines, KEY, WARMUP_SECONDS)
    drained()
    started = time.monotonic()
    figures = _run_wrk(server.url, lines, KEY, SECONDS)
    drained()
    return figures, figures.requests / (time.monotonic() - started)


BURST_JOBS = 5_000
_BURST = text(
    "INSERT INTO jobs (id, caller, status, progress, model, prompt, size, n, image_urls, results,"
    " created_at, updated_at, submit_state, submit_attempts, poll_attempts, next_attempt_at)"
    " SELECT md5('burst' || i || clock_timestamp())::uuid, :caller, 'queued', 0, :model,"
    " 'a burst of foxes ' || i, '1:1', 1, '[]', '[]', now(), now(), 'waiting', 0, 0, now()"
    " FROM generate_series(1, :count) AS i"
)


async def _queue_burst(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                _BURST, {"caller": seed.CALLER, "model": seed.MODEL, "count": BURST_JOBS}
            )
    finally:
        await engine.dispose()


def burst_run(database_url: str) -> float:
    """`BURST_JOBS` jobs queued at once (PostgreSQL), as after an outage; jobs/s until the
    running service has sent every one on."""
    asyncio.run(_queue_burst(database_url))
    started = time.monotonic()
    deadline = started + 300
    while asyncio.run(waiting_jobs(database_url)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return BURST_JOBS / (time.monotonic() - started)


def suite(name: str, database_url: str, bare: bool, logs: Path) -> list[str]:
    """Every path on one database; the lines to print."""
    if database_url.startswith("postgresql"):
        reset_postgres(database_url)
    upgrade(database_url)
    ids = asyncio.run(prepare(database_url))
    results: dict[str, Figures] = {}
    extra: list[str] = []
    rss: list[float] = []
    # A fresh service process per path: background work one path leaves (confirmations,
    # archive bookkeeping) does not slow the next path down.
    runs = [("lookup", False), ("list", False), ("create", False), ("callback_off", False),
            ("callback_on", True)]  # fmt: skip
    with Server(uvicorn("bench.standin:app"), base_env(), "/_count", logs / "standin.log") as evo:
        for path, verify in runs:
            env = service_env(database_url, evo.url, verify, logs)
            cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port",
                   "{port}"]  # fmt: skip
            with Server(cmd, env, "/readyz", logs / f"serve-{name}.log") as service:
                if path.startswith("callback"):
                    group = "cb-on" if verify else "cb-off"
                    started = time.monotonic()
                    peak = results[path] = callback_run(service.url, ids[group], group)
                    settle(database_url)
                    extra.append(
                        f"{LABELS[path]}: every callback of the run (and of its warm-up) done, "
                        "confirmations and archive bookkeeping included, "
                        f"{time.monotonic() - started:.0f} s after the warm-up began "
                        f"({WARMUP_SECONDS:g} + {SECONDS:g} s of load)"
                    )
                    half = callback_half_peak(service.url, ids[group], group, peak)
                    met = "met" if half.p99_ms < HALF_PEAK_P99_MS else "NOT met"
                    extra.append(
                        f"{LABELS[path]} at half of peak ({half.rate:.0f} req/s sent): "
                        f"p50 {half.p50_ms:.1f} ms, p99 {half.p99_ms:.1f} ms "
                        f"(target p99 < {HALF_PEAK_P99_MS:g} ms: {met})"
                    )
                elif path == "lookup":
                    results["lookup"] = wrk(service.url, lookup_lines(ids["read"]), KEY)
                elif path == "list":
                    results["list"] = wrk(service.url, ["GET\t/v1/jobs?limit=20\t"], KEY)
                else:
                    created, sent = create_run(service, database_url)
                    results["create"] = created
                    extra.append(f"create: {sent:.0f} jobs/s accepted and sent on to EvoLink")
                    if database_url.startswith("postgresql"):
                        drained = burst_run(database_url)
                        extra.append(
                            f"burst: {BURST_JOBS:,} jobs queued at once, sent on at "
                            f"{drained:.0f} jobs/s (SUBMIT_CONCURRENCY 8)"
                        )
                rss.append(service.rss_mib())
    extra.append(f"serve RSS after each path's load: {max(rss):.0f} MiB at most")
    reference: dict[str, Figures] = {}
    naive: dict[str, Figures] = {}
    if bare:
        env = base_env() | {
            "NAIVE_DATABASE_URL": database_url,
            "NAIVE_CALLBACK_SECRET": SECRET,
            "NAIVE_API_KEY": f"{seed.CALLER}:{KEY}",
        }
        standin = Server(uvicorn("bench.standin:app"), base_env(), "/_count", logs / "standin.log")
        with standin as evo:
            env["NAIVE_EVOLINK_URL"] = evo.url
            peer_server = Server(uvicorn("bench.naive:app"), env, "/healthz", logs / "naive.log")
            with peer_server as peer:
                naive["lookup"] = wrk(peer.url, lookup_lines(ids["read"]), KEY)
                naive["list"] = wrk(peer.url, ["GET\t/v1/jobs?limit=20\t"], KEY)
                naive["create"] = wrk(peer.url, [CREATE_LINE], KEY)
                naive_callbacks = callback_run(peer.url, ids["cb-naive"], "cb-naive")
                naive["callback_off"] = naive["callback_on"] = naive_callbacks
        env = base_env() | {
            "BARE_DATABASE_URL": database_url,
            "BARE_CALLBACK_SECRET": SECRET,
            "BARE_API_KEY": f"{seed.CALLER}:{KEY}",
        }
        with Server(uvicorn("bench.bare:app"), env, "/healthz", logs / "bare.log") as ref:
            reference["lookup"] = wrk(ref.url, lookup_lines(ids["read"]), KEY)
            callbacks = callback_run(ref.url, ids["cb-bare"], "cb-bare")
            reference["callback_off"] = reference["callback_on"] = callbacks
            reference["list"] = wrk(ref.url, ["GET\t/v1/jobs?limit=20\t"], KEY)
    return report(name, database_url, results, reference, naive) + extra


LABELS = {
    "callback_off": "callback, VERIFY_CALLBACKS=false",
    "callback_on": "callback, VERIFY_CALLBACKS=true",
    "lookup": "GET /v1/jobs/{id}",
    "list": "GET /v1/jobs?limit=20",
    "create": "POST /v1/jobs (accepted)",
}


def report(
    name: str,
    url: str,
    results: dict[str, Figures],
    reference: dict[str, Figures],
    naive: dict[str, Figures],
) -> list[str]:
    lines = [f"== {name}: {redact(url)}; wrk {THREADS} threads, {CONNECTIONS} connections, "
             f"{SECONDS:g} s per path =="]  # fmt: skip
    for path, figures in results.items():
        lines.append(f"{LABELS[path]:<34} service {figures.cells()}")
        for peer, label, targets, ratio_of in (
            (naive.get(path), "naive", NAIVE_TARGETS, "service/naive"),
            (reference.get(path), "bare ", TARGETS, "service/bare"),
        ):
            if peer is None:
                continue
            ratio = figures.rate / peer.rate
            target = targets.get(path)
            verdict = ""
            if target is not None:
                verdict = f"  target >= {target:.2f}: {'met' if ratio >= target else 'NOT met'}"
            lines.append(f"{'':<34} {label}   {peer.cells()}")
            lines.append(f"{'':<34} {ratio_of} {ratio:5.2f}x{verdict}")
    return lines


def main() -> None:
    ensure_wrk()
    logs = Path(tempfile.mkdtemp(prefix="evolink-bench-"))
    pg = os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG)
    out = suite("postgresql", pg, bare=True, logs=logs)
    print("\n".join(out), flush=True)
    if os.environ.get("BENCH_SQLITE", "1") != "0":
        sqlite = f"sqlite+aiosqlite:///{logs / 'bench.db'}"
        print("\n".join(["", *suite("sqlite", sqlite, bare=False, logs=logs)]), flush=True)
    print(f"\nmachine: {os.cpu_count()} cores; logs in {logs}")


if __name__ == "__main__":
    main()
