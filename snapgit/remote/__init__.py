"""Remotes: somewhere else to keep a store's packs, indexes and refs (a directory, S3).

``base`` is the small key-value protocol every back end implements (:class:`RemoteStore`) and
its errors; ``memory``, ``directory`` and ``s3`` are the back ends; ``open`` turns a URL into one;
``layout`` is what snapgit keeps on a remote, in terms of that protocol.
"""
