"""Regenerate data/mlp_params.npz and data/mlp_tangent.npz (seed 004's model case).

python configs/data/make_mlp_params.py
"""

from pathlib import Path

import numpy as np

SHAPES = {"W1": (16, 4), "b1": (16,), "W2": (16, 16), "b2": (16,), "W3": (3, 16), "b3": (3,)}


def draw(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {k: (rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32) for k, s in SHAPES.items()}


if __name__ == "__main__":
    here = Path(__file__).parent
    np.savez(here / "mlp_params.npz", **draw(np.random.default_rng(0)))
    np.savez(here / "mlp_tangent.npz", **draw(np.random.default_rng(1)))
