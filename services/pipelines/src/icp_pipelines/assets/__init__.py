"""Assets (source-owned and standalone), their dependency edges and lineage (spec 2.13)."""
