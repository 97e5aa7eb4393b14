"""The ``bench`` command line: thin wrappers over library functions."""
