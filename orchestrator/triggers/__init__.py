"""What starts runs besides a direct submit: schedules, as celery beat entries (one run per tick)."""
