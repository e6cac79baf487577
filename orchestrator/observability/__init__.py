"""What operators watch: Prometheus metrics (structured logs and Sentry join them here)."""
