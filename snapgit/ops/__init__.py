"""Operations: what a user asks for, joining the database, trees and the store.

Commit, diff and status against the live database, merges and restores applied in one
transaction, verify and gc. The ``Repo`` API delegates here, one call per verb.
"""
