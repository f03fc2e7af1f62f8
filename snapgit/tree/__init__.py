"""Prolly trees: a table's rows as a sorted, content-defined chunked tree of ``(key, record id)``.

``prolly`` builds a tree from a sorted stream, iterates and looks it up; ``diff`` walks two trees
together and skips the subtrees they share. Both read objects through an object reader.
"""
