"""A tiny built-in binary problem (faint lines in noise) that exercises the engine end to end in seconds."""
