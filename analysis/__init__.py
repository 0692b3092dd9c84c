"""Video intelligence: transcript, index, Q&A, summary + chapters, video-to-code, actions, modes.

Start here: `schema` holds the public result contract (`vidray analyze --json`, the HTTP API's job
results); `runner.analyze()` is the one entry point: it ingests, builds what the requested tasks
need once, runs each task from the registry in `tasks`, and reports progress.
"""

from analysis.schema import AnalysisRequest, AnalysisResult

__all__ = ["AnalysisRequest", "AnalysisResult"]
