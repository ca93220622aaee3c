"""Allows `python -m spotter ...` (which is also what `accelerate launch -m spotter` runs)."""

from spotter.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
