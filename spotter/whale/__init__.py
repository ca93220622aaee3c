"""Happywhale photo-ID: data, synthetic individuals, retrieval with new_individual, catalogue matching."""
