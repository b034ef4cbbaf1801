"""Synthetic audio: what the simulator "speaks", and what it "hears".

Output speech is PCM16 24 kHz mono (or G.711 at 8 kHz, 1 byte per sample, when the session asks for
`audio/pcmu` / `audio/pcma`): one fixed-length tone per spoken word, its pitch chosen from the word, so
the same text always gives the same bytes. Tones are built once and cached, so streaming audio costs a
dictionary lookup per word.

Input "hearing" is energy only: `level()` maps the mean absolute amplitude of PCM16 samples to 0..1
(full scale / 10 → 1.0), which VAD compares with its `threshold`. `transcribe()` turns audio bytes into
a deterministic pseudo-transcript (a few words chosen from a digest of the bytes, ~2.5 words per second).
"""
from __future__ import annotations

import array
import base64
import functools
import math
import sys
import zlib

PCM_RATE = 24_000
PCM_BYTES_PER_MS = PCM_RATE * 2 // 1000  # 48
WORD_MS = 300  # duration of one spoken word
_PITCHES = (196.0, 220.0, 247.0, 262.0, 294.0, 330.0, 349.0, 392.0)
_AMPLITUDE = 6000

_WORDS = ("hello", "weather", "order", "please", "today", "status", "account", "thanks",
          "booking", "tomorrow", "question", "delivery", "payment", "help", "number", "change")


def bytes_per_ms(fmt: dict) -> int:
    """Bytes of audio per millisecond for a session audio format object."""
    return PCM_BYTES_PER_MS if fmt.get("type", "audio/pcm") == "audio/pcm" else 8


@functools.lru_cache(maxsize=64)
def _tone(pitch_index: int, fmt_type: str) -> bytes:
    rate = PCM_RATE if fmt_type == "audio/pcm" else 8000
    n = rate * WORD_MS // 1000
    step = 2 * math.pi * _PITCHES[pitch_index] / rate
    fade = n // 10  # short fades so word boundaries do not click
    samples = [int(_AMPLITUDE * math.sin(i * step) * min(1.0, i / fade, (n - i) / fade)) for i in range(n)]
    if fmt_type == "audio/pcm":
        pcm = array.array("h", samples)
        if sys.byteorder == "big":
            pcm.byteswap()
        return pcm.tobytes()
    return bytes(_g711(s, fmt_type == "audio/pcmu") for s in samples)


def _g711(sample: int, mu_law: bool) -> int:
    """Encode one 16-bit sample as G.711 µ-law or A-law (ITU-T G.711 segment coding)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635)
    if mu_law:
        magnitude += 0x84
        exponent = max(0, magnitude.bit_length() - 8)
        mantissa = (magnitude >> (exponent + 3)) & 0x0F
        return ~(sign | (exponent << 4) | mantissa) & 0xFF
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3 if exponent else 4)) & 0x0F
    return (sign ^ 0x80 | (exponent << 4) | mantissa) ^ 0x55


@functools.lru_cache(maxsize=64)
def _tone_b64(pitch_index: int, fmt_type: str) -> str:
    return base64.b64encode(_tone(pitch_index, fmt_type)).decode("ascii")


def _pitch(word: str) -> int:
    return zlib.crc32(word.encode()) % len(_PITCHES)


def speak(word: str, fmt: dict) -> tuple[bytes, str]:
    """Audio for one spoken word: (raw bytes, base64 text), `WORD_MS` long."""
    fmt_type = fmt.get("type", "audio/pcm")
    return _tone(_pitch(word), fmt_type), _tone_b64(_pitch(word), fmt_type)


def level(pcm16: bytes) -> float:
    """Speech level 0..1 of little-endian PCM16 audio: mean |sample| relative to full scale / 10."""
    samples = array.array("h")
    samples.frombytes(pcm16[: len(pcm16) // 2 * 2])
    if sys.byteorder == "big":
        samples.byteswap()
    if not samples:
        return 0.0
    return min(1.0, sum(map(abs, samples)) / len(samples) / 3276.8)


def transcribe(audio: bytes, duration_ms: int) -> str:
    """A deterministic stand-in transcript: same bytes → same words; about 2.5 words per second."""
    digest = zlib.crc32(audio)
    count = max(1, round(duration_ms / 400))
    return " ".join(_WORDS[(digest >> (i % 8) * 4 ^ i) % len(_WORDS)] for i in range(count))
