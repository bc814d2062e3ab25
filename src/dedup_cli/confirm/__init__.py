"""The proof that a candidate pair is a copy, read from the files: content hashes, thumbnails,
dense and geometric comparison.
"""
