"""The procedure catalog: YAML schema and checks, database tables, loading and queries."""
