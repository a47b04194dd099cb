"""The side-by-side benchmark of issue 5 (run it as ``python bench/bench_compare.py``)."""
