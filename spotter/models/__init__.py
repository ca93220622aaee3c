"""Small registries of named model parts: backbones, pooling, heads, attention, losses."""
