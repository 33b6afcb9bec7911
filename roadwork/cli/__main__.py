"""`python -m roadwork.cli ...` (and `torchrun ... -m roadwork.cli train ...`)."""

from roadwork.cli.app import main

main()
