"""The bulk-upload job (a zip in the ingestion bucket -> its entries, one per-batch stack) and the
batch teardown function: the Python replacement of the Node ingest-zip job and IngestDelete Lambda."""
