"""HTTP API tests: the Flask blueprint through its test client, on SQLite and PostgreSQL."""
