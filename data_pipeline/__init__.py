"""Ingest → probe → decode → sample: getting any video a user points at into frames, audio and metadata.

Stage logic lives in plain functions (ingest, probe, decode, sampling, scenes, audio) that run
without a cluster; `pipeline` wires them into Ray Data stages and `run` is the batch entry point.
"""
