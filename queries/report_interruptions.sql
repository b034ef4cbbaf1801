-- report interruptions: barge-ins and truncations per session (= `rtreplay analyze --report interruptions`).
-- Spoken turns, barge-ins, those truncated afterwards, truncations, invalid truncations (`sessions`).
-- Answers: "how often do callers interrupt, and does the app truncate correctly?"
-- Relies on: voice_sessions, barge_ins, truncations.
SELECT v.session_id, v.turns,
       (SELECT count(*) FROM barge_ins b WHERE b.session_id = v.session_id) AS barge_ins,
       (SELECT count(*) FROM barge_ins b WHERE b.session_id = v.session_id AND b.truncate_seq IS NOT NULL) AS truncated,
       (SELECT count(*) FROM truncations t WHERE t.session_id = v.session_id) AS truncations,
       (SELECT count(*) FROM truncations t WHERE t.session_id = v.session_id AND NOT t.valid) AS invalid_truncations
FROM voice_sessions v
WHERE v.session_id IN (SELECT session_id FROM control_events)
ORDER BY v.session_id
