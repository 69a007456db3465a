"""qapprox command-line fronts: run as `python -m scripts.NAME`."""
