-- voice_sessions: one row per session: its first event (by seq), whose monotonic clock reading is the zero of
-- "session minute", and its spoken turns (server speech_stopped events).
-- Answers: "when did each session start, and how many turns did the caller speak?"
-- A proxy run's own session of `proxy.refused` records is no voice session (see `refused`).
-- Relies on: events.session_id, seq, ts, mono_ns; control_events (speech_stopped); refused.
SELECT e.session_id, e.start_ts, e.start_mono, coalesce(t.turns, 0) AS turns
FROM (SELECT session_id, arg_min(ts, seq) AS start_ts, arg_min(mono_ns, seq) AS start_mono FROM events
      WHERE session_id NOT IN (SELECT session_id FROM refused) GROUP BY ALL) e
LEFT JOIN (SELECT session_id, count(*) AS turns FROM control_events
           WHERE direction = 'server' AND type = 'input_audio_buffer.speech_stopped' GROUP BY ALL) t
    ON t.session_id = e.session_id
