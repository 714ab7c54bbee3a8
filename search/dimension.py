"""One searched setting as a type: its name and distribution, and what follows from them (whether a value lies
inside, Tune's domain, Optuna's distribution, its scale, which end of it a value sits at)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DISTRIBUTIONS = ("uniform", "loguniform", "int", "logint", "choice")
EDGE_FRACTION = 0.10  # a range's outer tenth (of its log when on a log scale) counts as its edge


@dataclass(frozen=True)
class Dimension:
    name: str
    kind: str                 # one of DISTRIBUTIONS
    values: tuple[Any, ...]   # a range's (low, high), both included; a choice's values in the space file's order

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, list]) -> Dimension:
        """From one line of the space file, {kind: arguments}."""
        (kind, args), = spec.items()
        return cls(name, kind, tuple(args))

    @property
    def spec(self) -> dict[str, list]:
        """Back to the space file's form (as plans and messages show it)."""
        return {self.kind: list(self.values)}

    @property
    def is_choice(self) -> bool:
        return self.kind == "choice"

    @property
    def is_log(self) -> bool:
        return self.kind in ("loguniform", "logint")

    @property
    def is_int(self) -> bool:
        return self.kind in ("int", "logint")

    @property
    def ends(self) -> tuple[Any, ...]:
        """The values a search can reach first: a range's bounds, every value of a choice."""
        return self.values

    def contains(self, value: Any) -> bool:
        """Whether a value is one of the choices, or lies within the range's bounds."""
        return value in self.values if self.is_choice else self.values[0] <= value <= self.values[1]

    def to_tune(self) -> Any:
        """Tune's sampling domain."""
        from ray import tune

        if self.kind == "uniform":
            return tune.uniform(*self.values)
        if self.kind == "loguniform":
            return tune.loguniform(*self.values)
        if self.kind == "int":
            return tune.randint(self.values[0], self.values[1] + 1)  # Tune's upper bound is exclusive
        if self.kind == "logint":
            return tune.lograndint(self.values[0], self.values[1] + 1)
        return tune.choice(list(self.values))

    def to_optuna(self) -> Any:
        """Optuna's distribution."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.is_choice:
            return CategoricalDistribution(list(self.values))
        if self.is_int:
            return IntDistribution(int(self.values[0]), int(self.values[1]), log=self.is_log)
        return FloatDistribution(float(self.values[0]), float(self.values[1]), log=self.is_log)

    def optuna_value(self, value: Any) -> Any:
        """A value read back from trials.csv as Optuna's distribution holds it (None when missing or unknown)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if self.is_int:
            return int(round(float(value)))
        if not self.is_choice:
            return float(value)
        return next((choice for choice in self.values if choice == value or str(choice) == str(value)), None)

    def edge(self, value: Any) -> tuple[str, Any] | None:
        """("lower" or "upper", that bound) when a value sits in the outer tenth of the range or at an end of an
        ordered (numeric, at least 3 values) choice; else None."""
        return self._choice_edge(value) if self.is_choice else self._range_edge(float(value))

    def _range_edge(self, value: float) -> tuple[str, Any] | None:
        low, high = float(self.values[0]), float(self.values[1])
        if self.is_log:
            value, low, high = math.log(value), math.log(low), math.log(high)
        position = (value - low) / (high - low)
        if position >= 1 - EDGE_FRACTION:
            return "upper", self.values[1]
        if position <= EDGE_FRACTION:
            return "lower", self.values[0]
        return None

    def _choice_edge(self, value: Any) -> tuple[str, Any] | None:
        numbers = [c for c in self.values if isinstance(c, (int, float)) and not isinstance(c, bool)]
        if len(numbers) < 3 or len(numbers) != len(self.values):  # unordered, or two values: always "at an end"
            return None
        if value == max(numbers):
            return "upper", max(numbers)
        if value == min(numbers):
            return "lower", min(numbers)
        return None


def shape_problem(kind: str, args: Any) -> str | None:
    """What is wrong with a distribution's arguments as the space file gives them (None when nothing)."""
    if kind == "choice":
        return None if isinstance(args, list) and args else f"choice needs a non-empty list of values, got {args!r}"
    if not (isinstance(args, list) and len(args) == 2 and all(isinstance(a, (int, float)) for a in args)):
        return f"{kind} needs [low, high], got {args!r}"
    low, high = args
    if not low < high:
        return f"{kind} needs low < high, got [{low}, {high}]"
    if kind.startswith("log") and low <= 0:
        return f"{kind} needs low > 0, got {low}"
    if kind in ("int", "logint") and not all(isinstance(a, int) for a in args):
        return f"{kind} needs integer bounds, got {args!r}"
    return None


def dimensions(space: dict[str, dict[str, list]]) -> dict[str, Dimension]:
    """Every searched setting of a space (as the file and SearchSpec.space hold it), in its order."""
    return {key: Dimension.from_spec(key, spec) for key, spec in space.items()}
