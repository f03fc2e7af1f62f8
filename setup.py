"""The optional C extension (snapgit/_native.c); everything else is in pyproject.toml.

It needs a C compiler and the headers of Python, SQLite and OpenSSL. Where it cannot be built
the install goes on without it, and snapgit runs the same work in Python (snapgit/native.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "snapgit._native",
            sources=["snapgit/_native.c"],
            libraries=["sqlite3", "crypto"],
            extra_compile_args=["-O2", "-Wall", "-Wno-missing-field-initializers"],
            optional=True,
        )
    ]
)
