"""The recording side of rtreplay: the transparent proxy and the event archive (everything that writes).

Rules: `recorder` never imports `analyzer`. The archive schema lives in `rtreplay.recorder.schema` and nowhere else.
"""
