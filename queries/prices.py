"""The price table of the voice cost report (docs/definitions.md, "Cost"), shipped as data in `prices.json`
beside this module: per model and token kind, USD per 1M tokens (`per_minute` for transcription billed by
duration), each model with the page its prices were taken from and the table with the date. The SQL view
`prices` and rtreplay.analyzer.report.cost both read it from here (or from a file given instead).
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

KINDS = ("text_input", "text_cached_input", "text_output", "audio_input", "audio_cached_input", "audio_output",
         "image_input", "image_cached_input")
SNAPSHOT = re.compile(r"\d{4}-\d{2}-\d{2}")


class PriceError(ValueError):
    """A price file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Prices:
    models: Mapping[str, Mapping[str, Any]]
    taken: str | None
    source: str  # the file the table came from ("shipped" for the one in the package)

    def of(self, model: str | None) -> Mapping[str, Any] | None:
        """The price entry of `model`: its own key, else the key it extends with a dated snapshot suffix."""
        if model is None:
            return None
        if model in self.models:
            return self.models[model]
        best = None
        for key in self.models:
            if model.startswith(key + "-") and SNAPSHOT.fullmatch(model[len(key) + 1:]):
                best = key if best is None or len(key) > len(best) else best
        return self.models[best] if best else None


def load_prices(path: str | Path | None = None) -> Prices:
    try:
        text = Path(path).read_text() if path is not None else \
            resources.files("rtreplay.queries").joinpath("prices.json").read_text()
        data = json.loads(text)
    except OSError as exc:
        raise PriceError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise PriceError(f"{path}: not valid JSON: {exc}") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise PriceError(f"{path or 'prices.json'}: expected an object with a `models` object")
    for name, entry in models.items():
        bad = [k for k, v in (entry.items() if isinstance(entry, dict) else [("entry", None)])
               if k in (*KINDS, "per_minute") and not (isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0)]
        if not isinstance(entry, dict) or bad:
            raise PriceError(f"{path or 'prices.json'}: model {name!r}: prices must be non-negative numbers ({', '.join(bad)})")
    return Prices(models, data.get("taken"), str(path) if path is not None else "shipped")
