"""How far a quantized tensor is from its float original: MSE, SQNR, cosine similarity."""

from __future__ import annotations

import numpy as np

from edgeq.errors import BadInput


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise BadInput(f"cannot compare tensors of shapes {a.shape} and {b.shape}")
    return a, b


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared difference."""
    a, b = _pair(a, b)
    return float(np.mean((a - b) ** 2))


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio, 10 log10(sum ref^2 / sum (ref - test)^2); inf when equal."""
    reference, test = _pair(reference, test)
    noise = float(np.sum((reference - test) ** 2))
    if noise == 0.0:
        return float("inf")
    signal = float(np.sum(reference**2))
    return float("-inf") if signal == 0.0 else float(10.0 * np.log10(signal / noise))


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """cos of the angle between a and b flattened; 1.0 when both are zero, 0.0 when one is."""
    a, b = _pair(a, b)
    a, b = a.ravel(), b.ravel()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a, b) / (na * nb))
