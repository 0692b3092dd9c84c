"""The Serve deployments: ingress (HTTP), ingest (fetch/probe/cache), analyzer (jobs, chat), models.

Resource numbers are per replica and sized for the 2-core development machine; cluster.yaml raises
them. Every deployment declares autoscaling (min/max replicas, target ongoing requests) and
max_ongoing_requests so Serve queues at the handle instead of overloading a replica.
"""
