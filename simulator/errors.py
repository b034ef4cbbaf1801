"""Errors the simulator reports to clients as `error` events (docs/realtime-protocol.md §6.3–6.4)."""
from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """A client event the server refuses. Becomes one `error` event; the session stays open."""

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None,
                 type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message, self.code, self.param, self.type = message, code, param, type

    def payload(self, client_event_id: str | None) -> dict[str, Any]:
        """The `error` object, echoing the client's event_id (null when it sent none)."""
        return {"type": self.type, "code": self.code, "message": self.message,
                "param": self.param, "event_id": client_event_id}


def missing(param: str) -> ClientError:
    return ClientError(f"Missing required parameter: '{param}'.", code="missing_required_parameter", param=param)


def invalid(param: str, value: Any, expected: str = "") -> ClientError:
    detail = f" {expected}" if expected else ""
    return ClientError(f"Invalid value: {value!r}.{detail}", code="invalid_value", param=param)


def unknown_parameter(param: str) -> ClientError:
    return ClientError(f"Unknown parameter: '{param}'.", code="unknown_parameter", param=param)


def invalid_type(param: str, expected: str) -> ClientError:
    return ClientError(f"Invalid type for '{param}': expected {expected}.", code="invalid_type", param=param)
