-- A workspace's history filtered by who acted or by what happened (an
-- auditor's questions): newest first within those events, not a walk back
-- through the whole chain keeping the few that match (issue 13).
CREATE INDEX history_events_initiator ON history_events (chain, initiator_name, seq);
CREATE INDEX history_events_kind ON history_events (chain, kind, seq);
