"""Benchmarks of the worker on the local stack (devstack). See bench/README.md.

Every figure is printed next to a baseline measured in the same run (the machine is shared and
noisy, so only ratios compare across runs). Nothing here asserts a timing.
"""
