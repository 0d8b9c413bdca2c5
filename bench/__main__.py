"""``python -m bench``: run the benchmark and print the report."""

from bench.run import main

main()
