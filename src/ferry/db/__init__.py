"""The database floor below the layers: engine, metadata, leases, migrations, events.

Each layer owns its tables (``<layer>/tables.py``); they share the one MetaData of
``ferry.db.schema`` so that one Alembic chain migrates them all."""
