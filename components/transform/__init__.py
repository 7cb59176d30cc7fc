"""transform step of the emograph pipeline."""
