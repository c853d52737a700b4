"""What a person reads: figures, the report's HTML, and the provenance block of metrics.json."""
