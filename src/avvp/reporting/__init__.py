"""What a person reads: figures, the leaderboard, the report's HTML, and the provenance block of metrics.json."""
