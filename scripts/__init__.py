"""qapprox command-line fronts: `qapprox SUBCOMMAND` (scripts/cli.py), or `python -m scripts.NAME` from a checkout."""
