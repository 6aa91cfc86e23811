"""Benchmarks run by `spg bench NAME`: each module has `add_arguments(parser)` and `run(args) -> int`.

They time an optimised path against a straightforward baseline in the same run and print both,
ending with a ratio line. They are not tests: timings on shared machines are noisy.
"""
