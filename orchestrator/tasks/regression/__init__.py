"""``regression``: a tiny seeded regression problem for tests, benchmarks and first tries."""
