-- barge_ins: one row per server input_audio_buffer.speech_started while a response was producing audio: created
-- before it, no response.done before it, and its first audio delta before it (docs/definitions.md,
-- "Interruptions"). When several were, the one created last is the interrupted one.
-- Answers: "when did callers talk over the assistant, what was cut, and did the app truncate it?"
-- The cut item is that response's item whose audio started last before the barge-in; `generated_ms` its whole
-- audio; the truncate is the first conversation.item.truncate of the cut item after the barge-in (NULL: never
-- truncated — the model believes the caller heard everything).
-- Relies on: control_events (speech_started), voice_responses, voice_items, voice_settings, voice_sessions,
-- truncations.
WITH starts AS (
    SELECT session_id, seq, ts, mono_ns FROM control_events
    WHERE direction = 'server' AND type = 'input_audio_buffer.speech_started'
),
cut AS (
    SELECT s.*, r.response_id
    FROM starts s JOIN voice_responses r ON r.session_id = s.session_id AND r.created_seq < s.seq
        AND (r.done_seq IS NULL OR r.done_seq > s.seq) AND r.audio_seq < s.seq
    QUALIFY row_number() OVER (PARTITION BY s.session_id, s.seq ORDER BY r.created_seq DESC) = 1
),
item AS (
    SELECT c.*, i.item_id, i.audio_bytes
    FROM cut c LEFT JOIN voice_items i ON i.session_id = c.session_id AND i.response_id = c.response_id
        AND i.audio_seq < c.seq
    QUALIFY row_number() OVER (PARTITION BY c.session_id, c.seq ORDER BY i.audio_seq DESC NULLS LAST) = 1
)
SELECT
    b.session_id, b.seq, b.ts,
    greatest(0, (b.mono_ns - v.start_mono) // 60000000000) AS minute,
    (b.mono_ns - v.start_mono) / 1e9 AS at_s,
    b.response_id, b.item_id,
    coalesce(b.audio_bytes, 0) / coalesce(st.bytes_per_ms, 48) AS generated_ms,
    t.seq AS truncate_seq, t.audio_end_ms, t.valid
FROM item b
JOIN voice_sessions v ON v.session_id = b.session_id
ASOF LEFT JOIN (SELECT * FROM voice_settings WHERE source = 'session') st
    ON st.session_id = b.session_id AND b.seq > st.seq
LEFT JOIN truncations t ON t.session_id = b.session_id AND t.item_id = b.item_id AND t.seq > b.seq
QUALIFY row_number() OVER (PARTITION BY b.session_id, b.seq ORDER BY t.seq NULLS LAST) = 1
