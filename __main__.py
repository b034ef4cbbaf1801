"""`python -m rtreplay`: the same as the `rtreplay` command."""
from rtreplay.cli import main

main()
