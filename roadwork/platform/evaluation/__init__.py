"""Evaluation as validators score: validation split, challenge replay, scoring, the deploy gate."""
