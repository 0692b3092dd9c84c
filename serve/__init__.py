"""vidray's online app on Ray Serve: HTTP API, durable jobs, OpenAI-compatible chat.

Start here: `serve/app.py` builds the deployment graph (FastAPI ingress -> ingest -> analyzer ->
model router); `serve/jobs/store.py` holds every job, video and key in one SQL database so
nothing accepted is lost when replicas or the whole app restart.
"""
