-- voice_items: one row per output item that streamed deltas (audio, transcript or text), per session.
-- Answers: "when did each item start streaming, when did its audio start, and how much audio was generated?"
-- (docs/definitions.md, "Voice sessions"). `audio_bytes` is the decoded audio of its audio deltas; the
-- response is the item's first delta's response_id.
-- Relies on: events.direction, type, seq, mono_ns, response_id, item_id, audio (its length only).
SELECT
    session_id,
    item_id,
    arg_min(response_id, seq) AS response_id,
    min(seq) AS first_seq,
    arg_min(mono_ns, seq) AS first_mono,
    min(seq) FILTER (WHERE type IN ('response.output_audio.delta', 'response.audio.delta')) AS audio_seq,
    arg_min(mono_ns, seq) FILTER (WHERE type IN ('response.output_audio.delta', 'response.audio.delta'))
        AS audio_mono,
    coalesce(sum(octet_length(audio)) FILTER (WHERE type IN ('response.output_audio.delta', 'response.audio.delta')), 0)
        AS audio_bytes
FROM events
WHERE direction = 'server' AND type IN (
    'response.output_audio.delta', 'response.audio.delta',
    'response.output_audio_transcript.delta', 'response.audio_transcript.delta',
    'response.output_text.delta', 'response.text.delta')
GROUP BY session_id, item_id
