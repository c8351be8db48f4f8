from tests.db import database_url, engine  # noqa: F401  (fixtures)
