"""A local Realtime server speaking the GA protocol, with fault profiles. Imports neither recorder nor analyzer.

    async with rtreplay.simulator.serve(seed=1, faults="seed-oob-forced-function") as sim:
        ...connect to f"{sim.url}/v1/realtime?model=gpt-realtime"...

Modules: `server` (WebSocket shell), `session` (per-connection state machine, sans-I/O), `response`
(streaming one response), `conversation`, `params` (defaults and validation), `model` (the deterministic
"model"), `arguments` (JSON-schema arguments), `vad`, `audio`, `faults`, `ids`, `errors`, `validate`
(SDK conformance checks in tests), `cli`.
"""
from rtreplay.simulator.faults import Profile, draw, load_profile
from rtreplay.simulator.server import Simulator, serve

__all__ = ["serve", "Simulator", "load_profile", "Profile", "draw"]
