"""The landscape registry: spec-language name -> class."""
from __future__ import annotations

from landscapes.base import Landscape
from landscapes.cubic import Cubic
from landscapes.models import LinReg, TinyMLP
from landscapes.mse2024 import MSE2024
from landscapes.rosenbrock import Rosenbrock, Rosenbrock1D
from landscapes.simple import DoubleWell, Quadratic, Sextic, Shifted

#: name -> Landscape subclass, in the order ``adamflow landscapes`` lists them
REGISTRY: dict[str, type[Landscape]] = {
    cls.name: cls
    for cls in (Rosenbrock1D, Rosenbrock, Quadratic, Shifted, DoubleWell, Sextic, LinReg, TinyMLP,
                MSE2024, Cubic)
}


def available() -> list[tuple[str, str]]:
    """[(name, one-line description)] of every registered landscape, sorted by name."""
    return sorted((name, cls.description) for name, cls in REGISTRY.items())
