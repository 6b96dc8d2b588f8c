"""`edgeq sweep`: many models on many devices, each (model, device, quantization) cell deployed and
measured as a Ray task, locally or on a cluster with boards wired to its nodes (docs/sweep.md)."""

from edgeq.sweep.cells import PLAN, Options, SweepRequest
from edgeq.sweep.run import SweepResult, run_sweep

__all__ = ["PLAN", "Options", "SweepRequest", "SweepResult", "run_sweep"]
