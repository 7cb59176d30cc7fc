"""models step of the emograph pipeline."""
