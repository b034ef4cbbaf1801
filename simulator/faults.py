"""Fault profiles: data files of rules that inject failures into matching responses.

A profile is a TOML (or JSON) file with a list of rules; `none`, `seed-oob-forced-function`, `flaky` and `demo`
(the seed rule, spoken words paced for `rtreplay demo`'s barge-ins) ship in `simulator/profiles/`. A rule:

    [[rules]]
    name = "oob forced function"          # for people
    rate = 1.0                            # chance per matching request, 0..1
    match = { conversation = "none", tool_choice = "function" }
    outcome = { kind = "fail", error_type = "server_error" }

`match` keys (all optional; a list means any of): `tool_choice` (form as in docs/definitions.md: absent,
auto, none, required, function, mcp), `conversation` (auto|none), `input` (absent|empty|items),
`modalities` (text|audio — the modality in effect), `model`, and `tools_min` / `tools_max` (number of
tools in effect for the response).

`outcome.kind`:
- `fail`: `response.created`, then `response.done` with status failed, `status_details.error` =
  {type: error_type (default server_error), code?, message?} (only the keys given), empty output,
  zero usage, metadata echoed — the seed report's shape.
- `error`: an `error` event {type: error_type (default server_error), code, message}, no response.
- `delay`: the response starts `delay_ms` later, then runs normally.
- `drop`: `response.created`, then the connection closes with `close_code` (default 1011) and
  `close_reason`.

How a rate becomes decisions (reproducible, so tests can count): every client `response.create` gets an
index n = 0, 1, 2, … in the order its session received them (every one counts, even rejected ones); the
session has an index s = 0, 1, 2, … in the order the server accepted connections. The request draws
u = `draw(seed, s, n)` ∈ [0, 1). Rules whose `match` fits are taken in file order; rule k fires when
u falls in [sum of the rates of the earlier fitting rules, that sum + its rate). One matching rule of rate
r therefore fires exactly when u < r. Responses started by turn detection are never faulted.

Three optional tables shape every session, not single requests (the voice reports' scenarios):

    [latency]                      # time from response.created to the response's first output, in ms:
    first_output_ms = 800          #   a base,
    per_1k_context_ms = 500        #   plus this much per 1,000 tokens the model reads (instructions + context)
    spoken_word_ms = 5             # and between the spoken words of a response (audio generation's pace)
    [transcription]
    fail_rate = 1.0                # chance per committed user turn that input transcription fails
    code = "audio_unintelligible"  # the error of conversation.item.input_audio_transcription.failed

    [transport]
    kind = "webrtc"                # WebRTC/SIP-like output: no audio deltas; output_audio_buffer.started /
                                   #   .stopped / .cleared and the server's own truncation (simulator/playback.py)

Latency applies to every response, server-initiated ones too. Transcription turn n (0, 1, … per session)
fails when `draw(seed, s, TRANSCRIPTION_DRAW + n)` < fail_rate.
"""
from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

SHIPPED = ("none", "seed-oob-forced-function", "flaky", "demo")
_OUTCOME_KINDS = ("fail", "error", "delay", "drop")
TRANSCRIPTION_DRAW = 1_000_000  # offset of the transcription draws, apart from the request indices
TRANSPORTS = ("websocket", "webrtc")
_MATCH_KEYS = ("tool_choice", "conversation", "input", "modalities", "model", "tools_min", "tools_max")


class ProfileError(ValueError):
    """A profile that cannot be loaded; the message says what is wrong and where."""


@dataclass(frozen=True)
class Features:
    """What a fault rule can match about one response request."""
    tool_choice: str
    conversation: str
    input: str
    modalities: str
    model: str
    tools: int


@dataclass(frozen=True)
class Rule:
    name: str
    rate: float
    match: dict[str, Any]
    outcome: dict[str, Any]

    def fits(self, f: Features) -> bool:
        for key, wanted in self.match.items():
            if key == "tools_min":
                ok = f.tools >= wanted
            elif key == "tools_max":
                ok = f.tools <= wanted
            else:
                ok = getattr(f, key) in (wanted if isinstance(wanted, list) else [wanted])
            if not ok:
                return False
        return True


@dataclass(frozen=True)
class Profile:
    name: str
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    latency: dict[str, float] = field(default_factory=dict)  # first_output_ms, per_1k_context_ms, spoken_word_ms
    transcription: dict[str, Any] = field(default_factory=dict)  # fail_rate, code, message
    transport: str = "websocket"  # websocket | webrtc (audio on a media track: simulator/playback.py)

    def first_output_s(self, context_tokens: int) -> float:
        """Seconds from response.created to the first output, for a response reading `context_tokens`."""
        ms = self.latency.get("first_output_ms", 0) + self.latency.get("per_1k_context_ms", 0) * context_tokens / 1000
        return max(0.0, ms) / 1000

    def spoken_word_s(self) -> float:
        """Seconds between two spoken words of a response (0: as fast as the client reads)."""
        return self.latency.get("spoken_word_ms", 0) / 1000

    def transcription_fails(self, seed: int, session_index: int, turn: int) -> bool:
        rate = self.transcription.get("fail_rate", 0)
        return rate > 0 and draw(seed, session_index, TRANSCRIPTION_DRAW + turn) < rate

    def decide(self, features: Features, u: float) -> dict[str, Any] | None:
        """The outcome for a request with draw `u`, or None (serve normally)."""
        start = 0.0
        for rule in self.rules:
            if rule.fits(features):
                if start <= u < start + rule.rate:
                    return rule.outcome
                start += rule.rate
        return None

    def outcome_for(self, seed: int, session_index: int, request_index: int, features: Features) -> dict | None:
        """The decision the simulator makes for request `request_index` of session `session_index`."""
        return self.decide(features, draw(seed, session_index, request_index))


def draw(seed: int, session_index: int, request_index: int) -> float:
    """Uniform [0, 1) from (seed, session index, request index); stable across Python versions."""
    digest = hashlib.blake2b(f"{seed}:{session_index}:{request_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name, or a .toml/.json file by path. Raises ProfileError."""
    if name_or_path in SHIPPED:
        text = resources.files("rtreplay.simulator.profiles").joinpath(f"{name_or_path}.toml").read_text()
        return _parse(name_or_path, text, "toml")
    path = Path(name_or_path)
    if not path.is_file():
        raise ProfileError(f"no fault profile {name_or_path!r}: use one of {', '.join(SHIPPED)} or a file path")
    return _parse(path.stem, path.read_text(), "json" if path.suffix == ".json" else "toml")


def _parse(name: str, text: str, kind: str) -> Profile:
    try:
        data = json.loads(text) if kind == "json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"fault profile {name}: not valid {kind.upper()}: {exc}") from None
    rules = []
    for i, raw in enumerate(data.get("rules", [])):
        where = f"fault profile {name}, rule {i}"
        rate, match, outcome = raw.get("rate"), raw.get("match", {}), raw.get("outcome", {})
        if not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ProfileError(f"{where}: rate must be a number between 0 and 1")
        if not isinstance(match, dict) or set(match) - set(_MATCH_KEYS):
            raise ProfileError(f"{where}: match keys must be among {', '.join(_MATCH_KEYS)}")
        if not isinstance(outcome, dict) or outcome.get("kind") not in _OUTCOME_KINDS:
            raise ProfileError(f"{where}: outcome.kind must be one of {', '.join(_OUTCOME_KINDS)}")
        rules.append(Rule(str(raw.get("name", f"rule {i}")), float(rate), match, outcome))
    latency, transcription = data.get("latency", {}), data.get("transcription", {})
    for table, keys in ((latency, ("first_output_ms", "per_1k_context_ms", "spoken_word_ms")),
                        (transcription, ("fail_rate",))):
        if not isinstance(table, dict) or any(
                not isinstance(table.get(k, 0), (int, float)) or isinstance(table.get(k, 0), bool) or table.get(k, 0) < 0
                for k in keys):
            raise ProfileError(f"fault profile {name}: {', '.join(keys)} must be non-negative numbers")
    if not 0 <= transcription.get("fail_rate", 0) <= 1:
        raise ProfileError(f"fault profile {name}: transcription.fail_rate must be between 0 and 1")
    transport = data.get("transport", {})
    kind = transport.get("kind", "websocket") if isinstance(transport, dict) else None
    if kind not in TRANSPORTS:
        raise ProfileError(f"fault profile {name}: transport.kind must be one of {', '.join(TRANSPORTS)}")
    return Profile(name, tuple(rules), dict(latency), dict(transcription), kind)
