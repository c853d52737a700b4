"""The data set's labels and the scores: annotation files, events, the ten numbers, seed aggregation
into metrics.json. Pure numpy, below everything that reads a split."""
