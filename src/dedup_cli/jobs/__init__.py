"""What the commands do, each a few lines over the shared workflow: find, cross, names
(filename-clean), prune, bench.
"""
