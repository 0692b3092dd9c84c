"""HTTP surface: FastAPI routes, request/response schemas and API-key auth."""
