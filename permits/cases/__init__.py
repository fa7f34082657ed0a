"""The authority's side: the case state machine, decisions, deemed approvals, the conditions catalogue."""
