"""The data contract: manifests (what a dataset holds), ingest (how photos get in) and splits."""
