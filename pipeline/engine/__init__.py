"""The asyncio runtime: sources → stages → per-sink queues, with orderly shutdown."""

from pipeline.engine.runner import Runner, run_plan

__all__ = ["Runner", "run_plan"]
