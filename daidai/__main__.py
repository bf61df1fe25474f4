"""`python -m daidai`: the command-line interface."""

from daidai.cli import main

main()
