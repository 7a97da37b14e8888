"""The dataset store: one database (SQLite by default, PostgreSQL via ``WMSTUDIO_DATABASE_URL``).

Manifests stay the exchange format on disk; the store is where everything that accumulates
around them lives (labels with their authors, predictions per model version, curation flags and
reviewers' decisions, the labelling queue), so ingest, training, the API, the dashboard and the
queue all read one place. Import ``wmstudio.store.session`` for engines and transactions and
``wmstudio.store.models`` for the tables; this package itself imports nothing heavy.
"""
