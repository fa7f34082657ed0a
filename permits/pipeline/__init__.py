"""The review pipeline after every submission and supplement: steps, runs, who hears of events."""
