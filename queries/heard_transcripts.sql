-- heard_transcripts: one row per barge-in with a cut item: the item's transcript as generated and as heard
-- (cut at the barge-in's audio_end_ms; docs/definitions.md, "Interruptions", "Transcript as heard").
-- Answers: "what did the assistant say, and what did the caller actually hear before cutting in?"
-- Each transcript delta of the item (a JSON string `delta`), in seq order, with the item's audio bytes streamed
-- before it; heard = the deltas whose audio before them is less than audio_end_ms × bytes per ms. NULL as
-- generated when the item streamed no transcript delta; NULL as heard also when the barge-in has no
-- audio_end_ms or the item streamed no audio deltas (WebRTC/SIP: nothing places a word in the audio).
-- Relies on: barge_ins, events (the cut items' audio and transcript deltas only).
WITH cut AS (
    SELECT session_id, seq, item_id, audio_end_ms, generated_ms, bytes_per_ms FROM barge_ins
    WHERE item_id IS NOT NULL
),
deltas AS (
    SELECT e.session_id, e.item_id, e.seq, e.type,
           coalesce(sum(CASE WHEN e.type IN ('response.output_audio.delta', 'response.audio.delta')
                             THEN coalesce(octet_length(e.audio), 0) ELSE 0 END)
                    OVER (PARTITION BY e.session_id, e.item_id ORDER BY e.seq
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS audio_before,
           CASE WHEN e.type IN ('response.output_audio_transcript.delta', 'response.audio_transcript.delta')
                     AND json_valid(e.payload) AND json_type(e.payload, '$.delta') = 'VARCHAR'
                THEN e.payload ->> '$.delta' END AS delta
    FROM events e SEMI JOIN (SELECT DISTINCT session_id, item_id FROM cut) c
        ON c.session_id = e.session_id AND c.item_id = e.item_id
    WHERE e.direction = 'server' AND e.type IN ('response.output_audio.delta', 'response.audio.delta',
                                               'response.output_audio_transcript.delta', 'response.audio_transcript.delta')
)
SELECT c.session_id, c.seq, c.item_id,
       string_agg(d.delta, '' ORDER BY d.seq) AS transcript_generated,
       CASE WHEN c.audio_end_ms IS NOT NULL AND c.generated_ms IS NOT NULL AND count(d.delta) > 0
            THEN coalesce(string_agg(d.delta, '' ORDER BY d.seq)
                              FILTER (WHERE d.audio_before < c.audio_end_ms * c.bytes_per_ms), '') END
           AS transcript_heard
FROM cut c LEFT JOIN deltas d ON d.session_id = c.session_id AND d.item_id = c.item_id AND d.delta IS NOT NULL
GROUP BY c.session_id, c.seq, c.item_id, c.audio_end_ms, c.generated_ms
