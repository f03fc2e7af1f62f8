"""Portable files: export a commit to JSON, CSV or SQL, and import such files back.

``fileformat`` names the formats and their versions, ``typedvalue`` turns stored values into
JSON and CSV cells and back, ``sqlgen`` renders SQL literals and statements.
"""
