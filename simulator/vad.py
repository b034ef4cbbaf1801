"""Server VAD on input energy: decides where speech starts and stops in the input audio stream.

Sans-I/O: `feed(pcm16)` takes appended PCM16 bytes and returns the turn boundaries found in them.
Audio is judged in 10 ms frames; a frame is voiced when `audio.level(frame) > threshold`.

- Speech starts at the first voiced frame; `audio_start_ms` is that frame's start minus
  `prefix_padding_ms` (not before the start of the audio), like the real server's field.
- Speech stops once `silence_duration_ms` of unvoiced frames follow; `audio_end_ms` is the end of the
  last voiced frame plus `silence_duration_ms` (the point where the stop is detected) — a choice: the
  protocol documents the field, not how the server rounds it.
- `semantic_vad` is served by the same detector with a fixed 500 ms silence (no semantics to simulate).
Times are milliseconds since the first audio written in the session (§8 "Timing fields").
"""
from __future__ import annotations

from dataclasses import dataclass

from rtreplay.simulator.audio import PCM_BYTES_PER_MS, level

FRAME_MS = 10
_FRAME_BYTES = FRAME_MS * PCM_BYTES_PER_MS


@dataclass(frozen=True)
class SpeechStarted:
    audio_start_ms: int


@dataclass(frozen=True)
class SpeechStopped:
    audio_end_ms: int


class Vad:
    def __init__(self, config: dict) -> None:
        semantic = config.get("type") == "semantic_vad"
        self.threshold = 0.5 if semantic else float(config.get("threshold", 0.5))
        self.prefix_ms = 300 if semantic else int(config.get("prefix_padding_ms", 300))
        self.silence_ms = 500 if semantic else int(config.get("silence_duration_ms", 200))
        self._pending = b""  # bytes short of a whole frame, judged with the next append
        self._judged_bytes = 0  # session audio already judged, in bytes
        self._in_speech = False
        self._silent_ms = 0

    def feed(self, pcm16: bytes) -> list[SpeechStarted | SpeechStopped]:
        """Judge newly appended audio; returns the boundaries found, in order."""
        data = self._pending + pcm16
        start_ms = self._judged_bytes // PCM_BYTES_PER_MS
        boundaries: list[SpeechStarted | SpeechStopped] = []
        whole = len(data) - len(data) % _FRAME_BYTES
        for offset in range(0, whole, _FRAME_BYTES):
            frame_ms = start_ms + offset // PCM_BYTES_PER_MS
            voiced = level(data[offset:offset + _FRAME_BYTES]) > self.threshold
            if voiced:
                self._silent_ms = 0
                if not self._in_speech:
                    self._in_speech = True
                    boundaries.append(SpeechStarted(max(0, frame_ms - self.prefix_ms)))
            elif self._in_speech:
                self._silent_ms += FRAME_MS
                if self._silent_ms >= self.silence_ms:
                    self._in_speech = False
                    self._silent_ms = 0
                    boundaries.append(SpeechStopped(frame_ms + FRAME_MS))
        self._pending = data[whole:]
        self._judged_bytes += whole
        return boundaries

    def reset(self) -> None:
        """Forget a speech turn in progress (buffer cleared or committed by hand); the clock runs on."""
        self._judged_bytes += len(self._pending)
        self._pending, self._in_speech, self._silent_ms = b"", False, 0
