"""The warehouse: connection, embedded server, export/import/backup/restore."""
