"""`python -m moalign` runs the command line."""

from moalign.cli import main

main()
