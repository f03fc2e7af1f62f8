"""Snapshotting a live database into the store: from a read transaction to a commit object.

Tables are read in key order, rows encoded and hashed, trees built and only new objects
written. The modules, from the top:

* :mod:`~snapgit.snapshot.build`: every table of a read snapshot, each read the way it can be;
* :mod:`~snapgit.snapshot.record`: table entries, the root tree, the commit and the branch moved;
* :mod:`~snapgit.snapshot.incremental`: a table read as its changed rows and its keys;
* :mod:`~snapgit.snapshot.scanpool`: worker processes reading key ranges of big tables;
* :mod:`~snapgit.snapshot.ranges`: a table read a key range at a time, and the ranges joined;
* :mod:`~snapgit.snapshot.scan`: a table read in full, through the row cache;
* :mod:`~snapgit.snapshot.rowcache`: the row cache, which lets a commit skip rows unchanged
  since the last one;
* :mod:`~snapgit.snapshot.tablewriter`: a table's tree written, only what the store lacks.
"""
