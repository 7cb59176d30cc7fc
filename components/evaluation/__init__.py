"""evaluation step of the emograph pipeline."""
