"""The ExportJob worker: PostgreSQL tables → gzip CSV → S3 or a volume, then the tasks' deletes."""
