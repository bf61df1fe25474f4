"""File dependencies: declarations, the on-disk cache, fetching, hashing and the lockfile.

Importing this package loads nothing heavy; fsspec and filelock load when a file is fetched.
"""
