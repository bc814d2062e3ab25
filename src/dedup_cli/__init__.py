"""dedup: find and safely remove duplicate and near-duplicate photos with deep embeddings."""

__version__ = "0.1.0"
