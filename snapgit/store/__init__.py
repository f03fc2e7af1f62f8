"""The store: what lies under ``.snapstore/`` and the promises that keep it whole.

Packs of objects and their indexes (``pack``, ``packindex``, ``objectstore``), refs moved by
compare-and-swap with their reflogs (``refs``), lock files and leases (``lock``), the config file
(``config``), the audit log (``oplog``), the directory layout that ties them together
(``layout``), reading history out of it (``history``) and rebuilding damaged indexes (``repair``).
Nothing here knows of databases, trees or operations.
"""
