"""Fine-tuning ("none"): cross-entropy on each context in turn, nothing against forgetting. The lower bound."""

from core.methods.parts.base import Method
from core.schema.params import NoneParams


class FineTuning(Method[NoneParams]):
    """The base Method as it is: its default loss, and no hook."""
