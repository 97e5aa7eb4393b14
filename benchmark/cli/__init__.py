"""The ``bench`` command line: one thin module per command group over the library functions."""
