"""The service's database fixture (SQLite and PostgreSQL) for the reliability tests too."""

from tests.service.conftest import database_url

__all__ = ["database_url"]
