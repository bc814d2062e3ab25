"""Which pairs to prove: exact chunked search, k-means cells and the cell join, the kept cells,
and the one place that chooses between them.
"""
