"""Scripts that run inside a stage's own interpreter: standard library only, no imports from runner."""
