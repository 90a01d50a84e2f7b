"""`python -m ogasearch`."""

from ogasearch.cli import main

main()
