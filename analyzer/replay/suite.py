"""Replay as a regression gate: a replay with expectations (`Gate`), and suite files of named cases.

`run_gate(gate)` is what `rtreplay replay --expect`, `rtreplay check` and the pytest plugin share: select,
plan one job at a time (`run.iter_jobs`), send against the target (starting the built-in simulator for
`sim`), summarize, and decide the expectations (`expect`). A suite is a TOML file (docs/replay.md, "Suites"):

    archive = "logs"                          # paths are relative to the suite file
    target = "sim"                            # or ws(s)://…, or left out: each session's recorded upstream
    sim_faults = "seed-oob-forced-function"

    [[case]]
    name = "forced function call in an out-of-band response"
    form = ["function"]
    repeat = 3
    expect = ["failure_rate<=5%"]

Top-level keys are defaults for every case; a case may override any of them.
"""
from __future__ import annotations

import contextlib
from contextlib import AbstractAsyncContextManager
import os
import re
import tomllib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rtreplay.analyzer.replay.expect import Decision, ExpectError, Expectation, check_variants, decide, parse
from rtreplay.analyzer.replay.plan import RECORDED, PlanError, Variant, variants
from rtreplay.analyzer.replay.run import (SCOPES, ReplayError, Result, Selection, is_loopback, iter_jobs,
                                          recorded_upstreams, run_jobs, select, target_base)
from rtreplay.analyzer.replay.summary import ReplayReport, summarize
from rtreplay.analyzer.state.request import FORMS
from rtreplay.recorder.archive import ArchiveError
from rtreplay.recorder.store import Archive

# Errors that mean the gate could not run at all (exit status 2), as opposed to expectations not holding.
RUN_ERRORS = (ReplayError, PlanError, ExpectError, ArchiveError)


class SuiteError(ValueError):
    """A suite file that cannot be read or has a key it does not know."""


@dataclass(frozen=True)
class Gate:
    """One replay run and what must hold of it."""

    archive: Path | Archive  # opened once (`opened`) and passed down
    selection: Selection = Selection()
    variants: tuple[Variant, ...] = (RECORDED,)
    expectations: tuple[Expectation, ...] = ()
    repeat: int = 1
    target: str | None = None  # "sim", a ws(s):// URL, or None for each session's recorded upstream
    sim_faults: str = "none"
    concurrency: int = 4
    rate: float | None = None
    timeout: float = 60.0
    record: Path | None = None
    api_key_env: str = "OPENAI_API_KEY"

    def opened(self) -> Gate:
        """The gate with its archive listed (`ArchiveError` when it cannot be), so that is done once."""
        return replace(self, archive=Archive.open(self.archive))


@dataclass
class GateResult:
    report: ReplayReport
    decisions: list[Decision]
    results: list[Result] = field(repr=False, default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 every expectation holds, 1 some does not, 2 no replay got an answer (the run could not be done)."""
        if self.results and all(r.answer.outcome == "unfinished" for r in self.results):
            return 2
        return 0 if all(d.holds for d in self.decisions) else 1


def prepare(gate: Gate, problems: list | None = None) -> tuple[list[Any], list[str]]:
    """The selected requests and the URLs they will go to ("sim" for the simulator); `RUN_ERRORS` when the
    gate cannot run (nothing selected, unknown variant in an expectation, no target). Files that could not
    be read (or only in part) are appended to `problems`."""
    check_variants(gate.expectations, [v.name for v in gate.variants])
    gate = gate.opened()
    requests = select(gate.archive, gate.selection, problems)
    if not requests:
        sel = gate.selection
        scoped = "" if sel.response_ids or sel.scope == "all" else f" (only {sel.scope} requests unless --scope all)"
        raise ReplayError(f"{gate.archive}: no recorded request matches{scoped}")
    if gate.target:
        return requests, [gate.target]
    upstreams = recorded_upstreams(gate.archive, [r.session_id for r in requests])
    missing = [sid for sid, url in upstreams.items() if not url]
    if missing:
        raise ReplayError(f"session {missing[0]} has no recorded upstream; pass a target")
    return requests, sorted(set(u for u in upstreams.values() if u))


def remote_targets(urls: Sequence[str]) -> list[str]:
    """The targets that are not on this machine (replaying there spends tokens: ask first)."""
    return sorted(u for u in urls if u != "sim" and not is_loopback(u))


async def run_gate(gate: Gate, requests: Sequence[Any] | None = None, on_done: Callable[[Result], None] | None = None,
                   simulator: StartSimulator | None = None) -> GateResult:
    """Replay the gate's selection and decide its expectations. `RUN_ERRORS` when it cannot run.

    `simulator` starts the built-in simulator for target "sim" (pass `rtreplay.simulator.server.serve`)."""
    gate = gate.opened()
    if requests is None:
        requests, _ = prepare(gate)
    key = os.environ.get(gate.api_key_env)
    headers = [("Authorization", f"Bearer {key}")] if key else []
    jobs = iter_jobs(gate.archive, requests, gate.variants, gate.repeat)
    async with target_url(gate.target, gate.sim_faults, simulator) as url:
        results = await run_jobs(jobs, url, record=gate.record, concurrency=gate.concurrency, rate=gate.rate,
                                 timeout=gate.timeout, headers=headers, on_done=on_done)
    return GateResult(summarize(results), decide(gate.expectations, results), results)


# The built-in simulator, given by the caller (`rtreplay.simulator.server.serve`: analyzer does not import the
# simulator): called with `faults=PROFILE`, an async context manager whose value has the `url`.
StartSimulator = Callable[..., AbstractAsyncContextManager[Any]]


@contextlib.asynccontextmanager
async def target_url(target: str | None, sim_faults: str = "none",
                     simulator: StartSimulator | None = None) -> AsyncIterator[str | None]:
    """The URL to replay against: the built-in simulator (started here) for "sim", else `target` as given."""
    if target != "sim":
        yield target
        return
    if simulator is None:
        raise ReplayError("target sim: no simulator was given to start")
    try:
        server = simulator(faults=sim_faults)
        sim = await server.__aenter__()
    except (ValueError, OSError) as exc:
        raise ReplayError(f"simulator with faults {sim_faults!r}: {exc}") from None
    try:
        yield sim.url
    finally:
        await server.__aexit__(None, None, None)


# --- suite files ----------------------------------------------------------------------------------------

SELECTION_KEYS = {"session": "sessions", "response_id": "response_ids", "form": "forms"}
KEYS = {"archive", "target", "sim_faults", "repeat", "concurrency", "rate", "timeout", "record", "api_key_env",
        "scope", "session", "response_id", "failed", "form", "where", "vary", "set", "recorded", "expect"}


@dataclass(frozen=True)
class Case:
    name: str
    gate: Gate


def load_suite(path: Path) -> list[Case]:
    """The cases of a suite file, each a complete `Gate`; `SuiteError` says what is wrong, and where."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{path}: not TOML: {exc}") from None
    cases = doc.pop("case", None)
    unknown = set(doc) - KEYS
    if unknown:
        raise SuiteError(f"{path}: unknown key {sorted(unknown)[0]!r} (known: case, {', '.join(sorted(KEYS))})")
    if not isinstance(cases, list) or not cases or not all(isinstance(c, dict) for c in cases):
        raise SuiteError(f"{path}: no [[case]] tables")
    out, names = [], set()
    for i, case in enumerate(cases):
        where = f"{path}: case {case.get('name', i + 1)!r}"
        name = case.get("name")
        if not isinstance(name, str) or not name.strip():
            raise SuiteError(f"{path}: case {i + 1} has no name")
        if name in names:
            raise SuiteError(f"{where}: the name is used twice")
        names.add(name)
        unknown = set(case) - KEYS - {"name"}
        if unknown:
            raise SuiteError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        try:
            out.append(Case(name, _gate({**doc, **case}, path.parent, name)))
        except (PlanError, ExpectError, TypeError, ValueError) as exc:
            raise SuiteError(f"{where}: {exc}") from None
    return out


def _gate(spec: dict[str, Any], base: Path, name: str) -> Gate:
    def strings(key: str) -> tuple[str, ...]:
        value = spec.get(key, [])
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"{key} must be a string or a list of strings")
        return tuple(value)

    def number(key: str, default: Any, kind: type) -> Any:
        value = spec.get(key, default)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or kind is int and not isinstance(value, int) or value <= 0):
            raise TypeError(f"{key} must be a positive {'integer' if kind is int else 'number'}")
        return value

    for key in ("failed", "recorded"):
        if not isinstance(spec.get(key, False), bool):
            raise TypeError(f"{key} must be true or false")
    if not isinstance(spec.get("archive"), str):
        raise TypeError("archive (the recording's directory, relative to the suite file) is required")
    scope = spec.get("scope", "out-of-band")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    bad_forms = set(strings("form")) - set(FORMS)
    if bad_forms:
        raise ValueError(f"form {sorted(bad_forms)[0]!r} is not one of {', '.join(FORMS)}")
    chosen = variants(strings("vary"), strings("set"))
    if spec.get("recorded", True) is False:
        chosen = [v for v in chosen if v != RECORDED]
        if not chosen:
            raise ValueError("recorded = false leaves no variant: add vary or set")
    expectations = tuple(parse(e) for e in strings("expect"))
    if not expectations:
        raise ValueError("expect lists nothing to check")
    record = spec.get("record")
    return Gate(
        archive=base / spec["archive"],
        selection=Selection(strings("session"), strings("response_id"), spec.get("failed", False),
                            strings("form"), spec.get("where"), scope),
        variants=tuple(chosen), expectations=expectations, repeat=number("repeat", 1, int),
        target=_target(spec.get("target")), sim_faults=str(spec.get("sim_faults", "none")),
        concurrency=number("concurrency", 4, int), rate=number("rate", None, float),
        timeout=number("timeout", 60.0, float),
        record=base / record / _slug(name) if isinstance(record, str) else None,
        api_key_env=str(spec.get("api_key_env", "OPENAI_API_KEY")))


def _target(value: Any) -> str | None:
    """A suite's `target`, in the forms `replay --target` takes (one normalisation: `run.target_base`)."""
    if value is None or value == "sim":
        return value
    if not isinstance(value, str):
        raise TypeError('target must be "sim" or a ws:// or wss:// URL')
    return target_base(value)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "case"
