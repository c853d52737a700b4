"""The Python half of the Snakemake workflow: the config schema completed from the registries,
the start-up checks, and the log filter. Only the workflow imports it."""
