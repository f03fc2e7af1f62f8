"""Operations: what a user asks for, joining the database, trees and the store.

The ``Repo`` API delegates here, one call per verb. Operations take the narrow things they need
(the store, its config, a database URL) and expect the caller to hold the store's writer lease
when they write. Each leaves one line in the audit log (:mod:`~snapgit.ops.audit`).

Modules: :mod:`~snapgit.ops.commit` (commit the live database, read it as a diff side),
:mod:`~snapgit.ops.status` (diff and status), :mod:`~snapgit.ops.mergeflow` (merge, conflicts,
continue, abort), :mod:`~snapgit.ops.restore` (restore and checkout), :mod:`~snapgit.ops.apply`
(writing rows in one transaction) with :mod:`~snapgit.ops.readahead`,
:mod:`~snapgit.ops.branches`, :mod:`~snapgit.ops.transfer` (export and import),
:mod:`~snapgit.ops.maintenance` (verify, gc, unlock) over :mod:`~snapgit.ops.verify` and
:mod:`~snapgit.ops.gc`, and :mod:`~snapgit.ops.plumbing` (any object, decoded).
"""
