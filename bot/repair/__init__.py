"""The repair loop: classify a stage failure, choose repairs, apply them to a copy, keep what helps."""
