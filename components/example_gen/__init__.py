"""AudioExampleGen: the Beam ingest job and its TFX component."""
