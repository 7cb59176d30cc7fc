"""teacher step of the emograph pipeline."""
