"""Secret scrubbing, applied before a record exists (DESIGN.md: "Secrets never reach disk").

What is a secret:
  - the value of `Authorization`, `api-key` and `openai-api-key` request headers (the auth scheme word,
    e.g. `Bearer`, is kept so the record still says how the client authenticated);
  - the key part of `openai-insecure-api-key.<key>` subprotocols (browser clients);
  - ephemeral secrets: any `ek_…` token anywhere in a payload, and the string value of `value` inside a
    `client_secret` object (beta session objects);
  - any literal secret learned from the session's handshake (`Redactor.learn`), wherever it reappears —
    an upstream error body that echoes the key, for instance.

Every secret is replaced by `MARK`; nothing else in the text changes, so records stay lossless apart from
the secret itself.
"""
from __future__ import annotations

import re

MARK = "[redacted]"

SECRET_HEADERS = frozenset({"authorization", "api-key", "openai-api-key", "proxy-authorization"})
KEY_SUBPROTOCOL = "openai-insecure-api-key."

# `ek_` then a token of at least 8 characters, not glued to a preceding word character ("week_123…").
_EPHEMERAL = re.compile(r"(?<![A-Za-z0-9_])ek_[A-Za-z0-9_\-]{8,}")
# `"client_secret": { … "value": "<secret>" … }` with no nested object before `value`.
_CLIENT_SECRET = re.compile(r'("client_secret"\s*:\s*\{[^{}]*?"value"\s*:\s*")((?:[^"\\]|\\.)*)(")')


def redact_header(name: str, value: str) -> str:
    """The header value to record: secrets masked, everything else unchanged."""
    lower = name.lower()
    if lower in SECRET_HEADERS:
        scheme, sep, _ = value.partition(" ")
        return f"{scheme} {MARK}" if sep else MARK
    if lower == "sec-websocket-protocol":
        return ", ".join(redact_subprotocol(p.strip()) for p in value.split(","))
    return value


def redact_subprotocol(subprotocol: str) -> str:
    if subprotocol.startswith(KEY_SUBPROTOCOL):
        return KEY_SUBPROTOCOL + MARK
    return subprotocol


def header_secrets(name: str, value: str) -> list[str]:
    """The literal secrets a request header carries (to be scrubbed wherever they reappear)."""
    lower = name.lower()
    if lower in SECRET_HEADERS:
        token = value.partition(" ")[2] if " " in value else value
        return [token.strip()] if token.strip() else []
    if lower == "sec-websocket-protocol":
        return [p.strip()[len(KEY_SUBPROTOCOL):] for p in value.split(",")
                if p.strip().startswith(KEY_SUBPROTOCOL) and len(p.strip()) > len(KEY_SUBPROTOCOL)]
    return []


MAX_KNOWN = 64  # literal secrets remembered; the oldest are forgotten first


class Redactor:
    """Scrubs payload text: the fixed patterns above plus the literal secrets it has learned.

    Redactors created with the same `known` list share what they learn: a proxy scrubs a key seen in
    one session from every session.
    """

    def __init__(self, known: list[str] | None = None) -> None:
        self._known: list[str] = [] if known is None else known

    def learn(self, secret: str) -> None:
        # Very short "secrets" would blank out ordinary text; real keys are long.
        if len(secret) >= 8 and secret not in self._known:
            self._known.append(secret)
            del self._known[:-MAX_KNOWN]

    def text(self, text: str) -> str:
        """`text` with every secret replaced by `MARK`. Cheap when there is nothing to redact."""
        for secret in self._known:
            if secret in text:
                text = text.replace(secret, MARK)
        if "ek_" in text:
            text = _EPHEMERAL.sub(MARK, text)
        if "client_secret" in text:
            text = _CLIENT_SECRET.sub(lambda m: m.group(1) + MARK + m.group(3), text)
        return text
