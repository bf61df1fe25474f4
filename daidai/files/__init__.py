"""File dependencies: declarations, fetching, the on-disk cache, hashing and the lockfile."""
