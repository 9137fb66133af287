"""Fine-tuning ("none"): cross-entropy on each context in turn, nothing against forgetting. The lower bound."""

from core.methods.base import Method


class FineTuning(Method):
    name = "none"
