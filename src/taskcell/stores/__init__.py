"""Task stores: in memory, SQLite (one server) and PostgreSQL (a cluster)."""
