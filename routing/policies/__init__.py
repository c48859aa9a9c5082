"""Route policies (CONTRACT section 5): each a compiled, self-contained step of the pipeline."""
