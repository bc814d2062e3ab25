"""Carrying out a plan: re-checks at the moment of acting, trash/move/delete, the journal and
undo, the run index, the folder locks.
"""
