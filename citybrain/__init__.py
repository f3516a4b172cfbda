"""citybrain's command line, local stack, demo and data-set adapters (the app's edges)."""
