"""Audio ingest: decoding, corpus adapters, windowing and speaker splits."""
