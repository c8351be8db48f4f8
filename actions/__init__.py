"""The dvcbot action server (rasa-sdk): one module per area, plus the catalog tables and queries."""
