"""A detector of the tensor calls that would make a GPU step wait for the host (a step that makes none never waits)."""

from __future__ import annotations

from torch.overrides import TorchFunctionMode


class HostSyncs(TorchFunctionMode):
    """Records the tensor operations that copy device data to the host or wait for it."""

    SYNCS: frozenset[str] = frozenset(
        {"item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__", "nonzero"}
    )

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        if name in self.SYNCS:
            self.calls.append(name)
        return func(*args, **(kwargs or {}))
