"""The ``civic`` command and the pieces every stage shares: settings and local services."""
