"""Replaying recorded requests: which ones, in which contexts, how often, and what came of it.

Three steps, each a plain function the CLI (`rtreplay.cli.replay`) chains:
1. `select(archive, Selection)` picks recorded requests (`rtreplay.analyzer.state.match`; `--where` runs SQL over the
   `requests` view of `queries`).
2. `plan_jobs(archive, requests, variants, repeat)` rebuilds each request's context once (one pass per
   session, `rtreplay.analyzer.state.timeline.states_before`) and plans one replay per variant (`rtreplay.analyzer.replay.plan`):
   one `Job` per (request, variant, repeat), each run on a fresh session.
3. `run_jobs(jobs, …)` sends them (`rtreplay.analyzer.replay.send`) with bounded concurrency, a start-rate limit and
   a timeout each, recording every replay session through the recorder's writer, tagged under `replay`
   in its `proxy.open` record. `rtreplay.analyzer.replay.summary.summarize` turns the results into a report.
"""
from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from rtreplay.analyzer.state import load, match
from rtreplay.analyzer.state.request import Request
from rtreplay.analyzer.replay.plan import Plan, PlanError, Variant, plan_replay
from rtreplay.analyzer.replay.send import Answer, replay_once
from rtreplay.analyzer.state.timeline import iter_states_before
from rtreplay.recorder.archive import ArchiveProblem
from rtreplay.recorder.schema import PROXY_ERROR, PROXY_OPEN

SCOPES = ("out-of-band", "default", "all")


class ReplayError(ValueError):
    """A replay that cannot start: nothing selected, no target known, bad selection."""


# --- 1. selection ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Selection:
    """Which recorded requests to replay; every given filter must hold."""

    sessions: tuple[str, ...] = ()
    response_ids: tuple[str, ...] = ()
    failed: bool = False
    forms: tuple[str, ...] = ()  # form_sent values
    where: str | None = None  # SQL condition over the `requests` view
    scope: str = "out-of-band"  # or "default", "all"


def select(archive: Path, selection: Selection, problems: list[ArchiveProblem] | None = None) -> list[Request]:
    """The recorded requests `selection` picks, in (session, seq) order; files that could not be read (or
    only in part) are appended to `problems`."""
    matched = match.match(archive, sessions=list(selection.sessions) or None)
    found = matched.requests
    if problems is not None:
        problems += matched.problems
    wanted = _where(archive, selection.where) if selection.where else None
    # An explicit --response-id is that request whatever its scope: the scope filter is only a default.
    any_scope = selection.scope == "all" or bool(selection.response_ids)
    return [r for r in found
            if (any_scope or r.scope == selection.scope)
            and (not selection.response_ids or r.response_id in selection.response_ids)
            and (not selection.failed or r.outcome == "failed")
            and (not selection.forms or r.form_sent in selection.forms)
            and (wanted is None or (r.session_id, r.seq) in wanted)]


def _where(archive: Path, condition: str) -> set[tuple[str, int]]:
    from rtreplay.queries.loader import SqlError, connect, relation  # DuckDB only when --where is used

    try:
        con = connect(archive)
        try:
            rows = relation(con, f"SELECT session_id, seq FROM requests WHERE {condition}")
            return {(sid, int(seq)) for sid, seq in (rows.fetchall() if rows is not None else [])}
        finally:
            con.close()
    except SqlError as exc:
        raise ReplayError(f"--where: {exc}") from None


# --- 2. planning ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """One replay session to run: a request, a variant, which repeat, its plan, the recorded upstream and
    what the request got when it was recorded (the matchers of `compare` hold replays against it)."""

    request: Request
    variant: Variant
    repeat: int
    plan: Plan
    upstream: str | None
    recorded: Answer | None = None

    def tag(self) -> dict[str, Any]:
        """What the replay session replays: goes under `replay` in its `proxy.open` record."""
        r = self.request
        return {"of_session": r.session_id, "of_seq": r.seq, "of_response_id": r.response_id,
                "variant": self.variant.name, "repeat": self.repeat}


def plan_jobs(archive: Path, requests: Sequence[Request], variants: Sequence[Variant], repeat: int = 1) -> list[Job]:
    """A job per (request, variant, repeat), all planned (for `--dry-run`; replays use `iter_jobs`)."""
    return list(iter_jobs(archive, requests, variants, repeat))


def iter_jobs(archive: Path, requests: Sequence[Request], variants: Sequence[Variant],
              repeat: int = 1) -> Iterator[Job]:
    """The jobs of `plan_jobs`, planned as they are taken: one session's events are loaded at a time, its
    contexts rebuilt in one pass, and a plan (which holds the context's audio) exists only while its
    jobs are being sent — memory stays bounded by the concurrency, not by the number of replays."""
    by_session: dict[str, list[Request]] = {}
    for r in requests:
        by_session.setdefault(r.session_id, []).append(r)
    for sid, mine in by_session.items():
        events = load.session_events(load.read_session(archive, sid))
        upstream = _recorded_upstream(events)
        done = {e.seq: e for e in events if e.type == "response.done"}
        wanted = {r.seq: r for r in mine}
        for seq, state in iter_states_before(events, wanted, sid):
            r = wanted[seq]
            try:
                recorded = orjson.loads(r.payload)
            except orjson.JSONDecodeError:
                raise PlanError(f"request {r.request_id} is not JSON") from None
            original = _recorded_answer(r, done.get(r.done_seq) if r.done_seq is not None else None)
            for v in variants:
                plan = plan_replay(state, recorded, v, model=r.model)
                for k in range(repeat):
                    yield Job(r, v, k, plan, upstream, original)
            del state


def _recorded_answer(r: Request, done: Any) -> Answer:
    response = done.data.get("response") if done is not None else None
    output = response.get("output") if isinstance(response, dict) else None
    return Answer(r.outcome, r.response_id, r.error_type, r.error_code, r.reason,
                  output if isinstance(output, list) else [])


def recorded_upstreams(archive: Path, session_ids: Iterable[str]) -> dict[str, str | None]:
    """Each session's recorded upstream (from its `proxy.open`), read without loading the sessions."""
    import polars as pl

    wanted = sorted(set(session_ids))
    opens = (load.events(archive).filter(pl.col("session_id").is_in(wanted) & (pl.col("type") == PROXY_OPEN))
             .select("session_id", "payload").collect())
    out: dict[str, str | None] = dict.fromkeys(wanted)
    for sid, payload in opens.iter_rows():
        try:
            upstream = orjson.loads(payload).get("upstream")
        except (orjson.JSONDecodeError, AttributeError):
            continue
        if isinstance(upstream, str) and out.get(sid) is None:
            out[sid] = upstream
    return out


def _recorded_upstream(events: Sequence[Any]) -> str | None:
    for e in events:
        if e.type == PROXY_OPEN and isinstance(e.data.get("upstream"), str):
            return str(e.data["upstream"])
    return None


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def target_base(target: str) -> str:
    """The base URL (`ws://HOST:PORT[/prefix]`) of a `--target`: a base URL, `…/v1`, or `…/v1/realtime[?model=…]`.

    Replays connect to `{base}/v1/realtime?model=<recorded model>`, so the forms an SDK user has at hand (the
    `websocket_base_url` ending in /v1, or the full URL of the Agents SDK) name the same server.
    """
    parts = urlsplit(target)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ReplayError(f"--target must be `sim` or a ws:// or wss:// URL (e.g. ws://127.0.0.1:8765/v1), "
                          f"not {target!r}")
    try:
        parts.port  # noqa: B018  (raises on a port out of range)
    except ValueError:
        raise ReplayError(f"--target {target!r}: the port is not a number from 0 to 65535") from None
    path = parts.path.rstrip("/")
    for suffix in ("/v1/realtime", "/v1"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    else:
        if parts.query:
            raise ReplayError(f"--target {target!r}: a query goes only on a …/v1/realtime URL")
    return f"{parts.scheme}://{parts.netloc}{path}"


def targets(jobs: Sequence[Job], target: str | None) -> list[str]:
    """The URL each job goes to: `target`, else its session's recorded upstream."""
    if target is not None:
        target = target_base(target)
    out = []
    for job in jobs:
        url = target or job.upstream
        if not url:
            raise ReplayError(f"session {job.request.session_id} has no recorded upstream; pass --target URL")
        out.append(url)
    return out


# --- 3. running -----------------------------------------------------------------------------------------

@dataclass
class Result:
    job: Job
    answer: Answer
    session_id: str | None = None  # the replay session's id in the --record archive


class Pacer:
    """Lets at most `rate` starts through per second (evenly spaced); None = no limit."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1 / rate if rate else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
            self._next = max(now, self._next) + self.interval


async def run_jobs(jobs: Iterable[Job], urls: Sequence[str] | str | None = None, *, record: Path | None = None,
                   concurrency: int = 4, rate: float | None = None, timeout: float = 60.0,
                   headers: Sequence[tuple[str, str]] = (), on_done: Callable[[Result], None] | None = None
                   ) -> list[Result]:
    """Run every job (fresh session each) and return the results in job order.

    `urls`: one per job, one for all, or None for each job's recorded upstream. `jobs` is consumed lazily
    by `concurrency` workers, so with `iter_jobs` only the plans being sent exist; results keep the slim
    plan. `headers` go to the target only (the Authorization header lives here and is never recorded).
    """
    from rtreplay.recorder.redact import handshake_secrets
    from rtreplay.recorder.writer import ArchiveWriter

    pacer = Pacer(rate)
    pending = iter(enumerate(zip(jobs, _url_stream(urls))))
    done: dict[int, Result] = {}

    async def one(job: Job, url: str, writer: ArchiveWriter | None) -> Result:
        await pacer.wait()
        handle = None
        if writer is not None:
            handle = writer.open_session({"method": "GET", "path": "/v1/realtime", "query": f"model={job.plan.model}",
                                          "client": None, "upstream": url, "headers": [],
                                          "replay": job.tag()})
        answer, close = await replay_once(url, job.plan.model, job.plan.lines(), job.plan.request_event_id,
                                          timeout=timeout, headers=headers, recorder=handle)
        if handle is not None:
            if answer.detail and answer.outcome == "unfinished":
                handle.lifecycle(PROXY_ERROR, {"error": answer.detail})
            handle.close(close)
        result = Result(replace(job, plan=job.plan.slim()), answer, handle.session_id if handle else None)
        if on_done is not None:
            on_done(result)
        return result

    async def worker(writer: ArchiveWriter | None) -> None:
        for i, (job, url) in pending:  # one shared iterator: each plan is built when a worker takes it
            if url is None:
                url = job.upstream
            if not url:
                raise ReplayError(f"session {job.request.session_id} has no recorded upstream; pass --target URL")
            done[i] = await one(job, url, writer)

    async def all_workers(writer: ArchiveWriter | None) -> None:
        tasks = [asyncio.ensure_future(worker(writer)) for _ in range(max(1, concurrency))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()

    if record is None:
        await all_workers(None)
    else:
        async with ArchiveWriter(record) as writer:
            writer.operator_secrets += handshake_secrets(headers)  # a target may echo the key: never record it
            await all_workers(writer)
    return [done[i] for i in sorted(done)]


def _url_stream(urls: Sequence[str] | str | None) -> Iterator[str | None]:
    if urls is None or isinstance(urls, str):
        while True:
            yield urls
    yield from urls
