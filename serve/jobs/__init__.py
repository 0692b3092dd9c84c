"""Durable jobs: the SQL store (claims with leases), the dispatcher loop and the analysis runner."""
