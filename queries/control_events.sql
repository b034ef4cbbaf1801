-- control_events: the events whose JSON the other views read — requests, response lifecycle, errors, session
-- settings, proxy lifecycle, tool-call and turn markers — one row each, without the audio column.
-- Answers: nothing new ("what exactly went over the wire?", for these types only); it exists for speed.
-- Audio appends and output deltas are the bulk of an archive (88% of the events in the benchmark's mix), so
-- the request, answer, response, error, tool-call and turn views read this narrow slice instead of
-- `events`: one Parquet scan with the type filter pushed into it. `queries.connect()` stores it once as a
-- TEMP table (each later use of a view that reads it then costs no Parquet scan); the `--views` script
-- keeps it a plain view. Only the types listed below are here, and client events that carry an event_id
-- (an error naming one answers it: answers.sql) or are not audio appends (the voice views read them); a view
-- that needs another type reads `events`.
-- Relies on: events.session_id, seq, ts, mono_ns, direction, type, event_id, response_id, item_id, payload.
SELECT session_id, seq, ts, mono_ns, direction, type, event_id, response_id, item_id, payload
FROM events
WHERE type IN (
    'response.create', 'response.created', 'response.done', 'error',  -- requests and answers
    'session.created', 'session.updated', 'proxy.open',  -- session settings
    'proxy.error', 'proxy.upstream_rejected', 'conversation.item.input_audio_transcription.failed',  -- errors
    'response.function_call_arguments.done', 'conversation.item.create',  -- tool calls
    'input_audio_buffer.speech_started', 'input_audio_buffer.speech_stopped',  -- turns
    'conversation.item.truncated', 'conversation.item.input_audio_transcription.completed', 'proxy.close',  -- voice
    'output_audio_buffer.started', 'output_audio_buffer.stopped', 'output_audio_buffer.cleared',  -- WebRTC/SIP
    'output_audio_buffer.audio_started', 'output_audio_buffer.audio_stopped',  -- their beta names of January
    'output_audio_buffer.audio_cleared',  -- 2025 (the views that read these take them as .started, …)
    'proxy.refused'  -- connections refused before they became sessions (refused.sql)
) OR (direction = 'client' AND (event_id IS NOT NULL OR type <> 'input_audio_buffer.append'))
