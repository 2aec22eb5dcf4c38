"""The development stack behind `make run`, the tests and the benchmark (not shipped in the wheel)."""
