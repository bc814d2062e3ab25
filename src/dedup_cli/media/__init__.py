"""Files on disk: the folder walk, decoding, copy-name patterns, edits that make test copies,
and file operations that never follow a symlink.
"""
