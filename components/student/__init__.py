"""student step of the emograph pipeline."""
