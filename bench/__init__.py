"""`make bench`: side-by-side benchmarks of our control plane and the reference implementation.
See bench/README.md."""
