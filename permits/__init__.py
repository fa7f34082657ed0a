"""Applications, their lifecycle and deadlines, reviews, decisions, conditions, participation."""
