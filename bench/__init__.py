"""toolrun benchmarks: ``python -m bench`` (or ``make bench``) runs them all and prints tables."""
