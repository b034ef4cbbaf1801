"""Secret scrubbing, applied before a record exists (DESIGN.md: "Secrets never reach disk"; docs/security.md).

Redaction is per session: nothing one client sends can change another session's records.

  - Headers and query parameters are recorded by an allowlist (`ALLOWED_HEADERS`, `ALLOWED_QUERY`): any
    other value is recorded as `MARK`, its name kept. `Authorization`-like headers keep their scheme word
    (`Bearer [redacted]`) so the record still says how the client authenticated; the key part of an
    `openai-insecure-api-key.<key>` subprotocol is masked.
  - The credentials a session's own handshake carried (`handshake_secrets`) are scrubbed from that
    session's later records only (an upstream error echoing the key, say). The operator's own key
    (`--auth-env`, `replay --api-key-env`) is scrubbed from every session: no client chooses it.
  - Known secret-bearing JSON fields anywhere in a payload: `authorization`, `api_key`/`api-key`,
    `client_secret` (a string, or the `value` of an object), and every value of a `headers` object (MCP
    tools carry their credentials there).
  - Secret formats wherever they stand: `ek_…` (ephemeral keys) and `sk-…` (API keys), also right after a
    JSON escape (`\\n`, `\\u00a0`) and inside binary or non-UTF-8 frames (`Redactor.data`).

Every secret is replaced by `MARK`; nothing else in the text changes, so records stay lossless apart from
the secrets themselves.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

MARK = "[redacted]"
_MARK_BYTES = MARK.encode()

# Headers recorded as they were (lower case). Identifiers, not credentials: `OpenAI-Organization` and
# `OpenAI-Project` name the account a session was billed to and cannot authenticate anything.
ALLOWED_HEADERS = frozenset({
    "host", "connection", "upgrade", "origin", "user-agent", "accept", "accept-encoding", "accept-language",
    "cache-control", "pragma", "content-type", "content-length", "date", "server", "via", "vary", "retry-after",
    "sec-websocket-version", "sec-websocket-key", "sec-websocket-accept", "sec-websocket-extensions",
    "sec-websocket-protocol", "openai-beta", "openai-organization", "openai-project", "openai-version",
    "openai-processing-ms", "x-request-id", "x-client-request-id",
})
ALLOWED_HEADER_PREFIXES = ("x-stainless-", "x-ratelimit-")  # SDK diagnostics; rate-limit counters
# Headers whose value is "<scheme> <credential>": the scheme word is kept.
SCHEME_HEADERS = frozenset({"authorization", "proxy-authorization"})
# Query parameters recorded as they were; any other value (Azure's `api-key`, `key`, …) is masked.
ALLOWED_QUERY = frozenset({"model", "intent", "deployment", "api-version", "call_id"})
KEY_SUBPROTOCOL = "openai-insecure-api-key."
# Header and query names that carry credentials: their values are also scrubbed from the session's payloads.
_CREDENTIAL_NAME = re.compile(r"auth|key|token|secret|cookie|passw|session|signature|credential", re.I)
MIN_SECRET = 8  # shorter "secrets" would blank out ordinary words

# A token may start a string, follow a non-word character, or follow a JSON escape (`\n`, `\u00a0`).
_START = r"(?:(?<![A-Za-z0-9_])|(?<=\\[nrtbf])|(?<=\\u[0-9a-fA-F]{4}))"
_FORMATS = _START + r"(?:ek_[A-Za-z0-9_\-]{8,}|sk-[A-Za-z0-9_\-]{16,})"
_FORMAT = re.compile(_FORMATS)
_FORMAT_BYTES = re.compile(_FORMATS.encode())
_STRING = r'"((?:[^"\\]|\\.)*)"'
# "authorization": "…", "api_key": "…", "client_secret": "…" (any case)
_SECRET_FIELD = re.compile(r'("(?:authorization|api[-_]?key|client_secret|access_token|refresh_token|password)"'
                           r'\s*:\s*")((?:[^"\\]|\\.)*)(")', re.I)
# "client_secret": { … "value": "<secret>" … } with no nested object before `value`.
_CLIENT_SECRET = re.compile(r'("client_secret"\s*:\s*\{[^{}]*?"value"\s*:\s*")((?:[^"\\]|\\.)*)(")')
_HEADERS_OBJECT = re.compile(r'("headers"\s*:\s*\{)([^{}]*)(\})', re.I)
_OBJECT_VALUE = re.compile(r'(' + _STRING + r'\s*:\s*")((?:[^"\\]|\\.)*)(")')

# One regex search finds whether any such key is present: it jumps from quote to quote, where a plain
# substring search per spelling would read the whole text once per spelling.
_FIELD_KEY = re.compile(r'"(?:[Aa]uthorization|AUTHORIZATION|[Aa]pi[-_][Kk]ey|API[-_]KEY|[Hh]eaders|HEADERS|'
                        r'client_secret|CLIENT_SECRET|access_token|refresh_token|[Pp]assword|PASSWORD)"')


def _allowed(name: str) -> bool:
    lower = name.lower()
    return lower in ALLOWED_HEADERS or lower.startswith(ALLOWED_HEADER_PREFIXES)


def redact_header(name: str, value: str) -> str:
    """The header value to record: allowlisted headers as sent, credentials' scheme word kept, the rest MARK."""
    lower = name.lower()
    if lower == "sec-websocket-protocol":
        return ", ".join(redact_subprotocol(p.strip()) for p in value.split(","))
    if _allowed(name):
        return value
    if lower in SCHEME_HEADERS:
        scheme, sep, _ = value.strip().partition(" ")
        if sep and scheme.isalpha() and len(scheme) <= 16:
            return f"{scheme} {MARK}"
    return MARK


def redact_headers(headers: Iterable[tuple[str, str]]) -> list[list[str]]:
    return [[name, redact_header(name, value)] for name, value in headers]


def redact_subprotocol(subprotocol: str) -> str:
    if subprotocol.startswith(KEY_SUBPROTOCOL):
        return KEY_SUBPROTOCOL + MARK
    return subprotocol


def redact_query(query: str) -> str:
    """The query string to record: allowlisted parameters as sent, any other value MARK (names kept)."""
    if not query:
        return query
    parts = []
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        allowed = unquote_plus(name).lower() in ALLOWED_QUERY
        parts.append(part if allowed or not (sep or name) else f"{name}={MARK}" if sep else MARK)
    return "&".join(parts)


def query_secrets(query: str) -> list[str]:
    """The values of a query string's parameters that are not allowlisted (as sent and decoded)."""
    found = []
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        if unquote_plus(name).lower() not in ALLOWED_QUERY:
            found += [value, unquote_plus(value)] if sep else [name]
    return found


def handshake_secrets(headers: Iterable[tuple[str, str]], query: str = "") -> list[str]:
    """The literal credentials a handshake carries, to scrub from the rest of *that* session."""
    found: list[str] = []
    for name, value in headers:
        lower = name.lower()
        if lower == "sec-websocket-protocol":
            found += [p.strip()[len(KEY_SUBPROTOCOL):] for p in value.split(",")
                      if p.strip().startswith(KEY_SUBPROTOCOL)]
        elif not _allowed(name) and _CREDENTIAL_NAME.search(name):
            value = value.strip()
            found.append(value)
            if " " in value:
                found.append(value.partition(" ")[2].strip())  # "Bearer <key>"
            if lower == "cookie":
                found += [pair.partition("=")[2].strip() for pair in value.split(";")]
    if query:
        found += query_secrets(query)
    return [s for s in dict.fromkeys(found) if len(s) >= MIN_SECRET]


class Redactor:
    """Scrubs one session's text and bytes: the fixed patterns above plus literal secrets.

    `operator` are the proxy operator's own keys (scrubbed from every session; never chosen by a client),
    `learn` adds this session's handshake credentials. One Redactor per session: they share nothing.
    """

    def __init__(self, operator: Iterable[str] = ()) -> None:
        self._known: list[str] = [s for s in dict.fromkeys(operator) if len(s) >= MIN_SECRET]

    def learn(self, secret: str) -> None:
        if len(secret) >= MIN_SECRET and secret not in self._known:
            self._known.append(secret)
            self._known.sort(key=len, reverse=True)  # a key containing another is scrubbed whole

    def text(self, text: str) -> str:
        """`text` with every secret replaced by `MARK`. Cheap when there is nothing to redact."""
        for secret in self._known:
            if secret in text:
                text = text.replace(secret, MARK)
        if "ek_" in text or "sk-" in text:
            text = _FORMAT.sub(MARK, text)
        if _FIELD_KEY.search(text):
            text = _SECRET_FIELD.sub(_mask_value, text)
            text = _HEADERS_OBJECT.sub(_mask_object, text)
            text = _CLIENT_SECRET.sub(_mask_value, text)
        return text

    def data(self, data: bytes) -> bytes:
        """Raw frame bytes (binary, or text that is not UTF-8) with the same secrets replaced."""
        for secret in self._known:
            encoded = secret.encode()
            if encoded in data:
                data = data.replace(encoded, _MARK_BYTES)
        if b"ek_" in data or b"sk-" in data:
            data = _FORMAT_BYTES.sub(_MARK_BYTES, data)
        return data


def _mask_value(m: re.Match[str]) -> str:
    return m.group(1) + MARK + m.group(3)


def _mask_object(m: re.Match[str]) -> str:
    inner = _OBJECT_VALUE.sub(lambda v: v.group(1) + MARK + v.group(4), m.group(2))
    return m.group(1) + inner + m.group(3)
