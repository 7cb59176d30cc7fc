"""embedder step of the emograph pipeline."""
