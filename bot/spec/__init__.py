"""The model definition (`models/<name>/aipc.yaml`): schema and loader."""

from bot.spec.loader import load_spec
from bot.spec.schema import Spec

__all__ = ["Spec", "load_spec"]
