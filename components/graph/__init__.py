"""The similarity graph over teacher embeddings: numpy core, Beam transform, statistics."""
