"""Participation (§ 127 (5) TKG): protected areas, the bodies to be heard, their statements."""
