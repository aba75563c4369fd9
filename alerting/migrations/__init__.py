"""Alembic migrations of the alerting tables (run them with :mod:`alerting.migrate`).

A package so that the revisions ship in the wheel and ``script_location`` can name it
as ``alerting:migrations``.
"""
