"""Sources: configured instances of catalog sources, with their asset rows (spec 2.8)."""
