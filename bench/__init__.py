"""chatapp benchmark suite (bench-only; see bench/README.md)."""
