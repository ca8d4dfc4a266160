"""Configuration: YAML with located errors, `${VAR}` expansion, validation into a plan."""

from pipeline.config.loader import load_config, load_config_data
from pipeline.config.plan import ComponentPlan, DeliveryPolicy, PipelinePlan, Plan

__all__ = [
    "ComponentPlan",
    "DeliveryPolicy",
    "PipelinePlan",
    "Plan",
    "load_config",
    "load_config_data",
]
