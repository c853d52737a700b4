"""Features from the kinds: the extraction loop and its decoder pipeline, the networks a weights
choice loads, the weights records, and the feature store and packing that training reads."""
