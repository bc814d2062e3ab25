"""The embedding pipeline (scan -> decode -> model -> store) and loading a collection's vectors
back.
"""
