"""Watching a running pipeline: live status, periodic summaries and the HTTP endpoint.

Everything here reads the engine's counters (`Runner.stats()`) and its tap; nothing
here can slow or change what the pipelines do.
"""
