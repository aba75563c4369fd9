"""Hand-written revisions, one file each, applied in order by Alembic."""
