"""The search file of `micforge tune`: which spec fields to vary, and how far.

`load_search(path)` reads a YAML file such as projects/search/fire_alarm.yaml:

    spec: ../fire_alarm.yaml           # the spec searched, relative to this file
    trials: 20                         # sampled configurations (plus trial 0, the spec itself)
    seed: 1                            # the same seed gives the same trials
    objective: crossval_accuracy       # see OBJECTIVES
    targets: [pico, teensy]            # variants whose budgets bind (default: all of the spec's)
    budget:                            # fixed overrides for every trial (never in the overlay)
      evaluation.streaming.minutes: 10
    space:                             # spec field -> one of choice / int / uniform / loguniform
      features.mel_bands: {choice: [24, 32, 40]}
      model.filters: {choice: [[8, 12], [8, 16]]}
      model.first_stride: {int: [2, 4], step: 2}
      augmentation.pitch.probability: {uniform: [0.3, 1.0], step: 0.1}
      training.learning_rate: {loguniform: [0.0005, 0.005]}

and validates it as strictly as a spec, every mistake at its `file:line:col`: unknown keys, a
key path that is not a field of the spec (with the closest name), a section that is not
searchable (the data, the classes, the targets and the evaluation are the yardstick, not the
design), a range or choice outside the field's own constraints, and a value that makes the
spec invalid. A value that is invalid only with the spec's other values as they stand is
accepted when another parameter of the same section may make it valid; such a combination
becomes an invalid trial (costing nothing) instead.

`trial_list(search)` draws the configurations from a numpy generator seeded with `seed`, in
the order the space is written, without duplicates; `trial_spec_data(search, params)` is the
spec's own YAML data with the budget and the parameters set, its relative paths made absolute
and its targets reduced to `targets`, ready to be written as a trial's spec.
"""

from __future__ import annotations

import copy
import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import yamlpos
from .errors import Problem, SpecError
from .spec import Project, ProjectSpec, load_spec
from .validate import data_loc, error_message, unwrap, validate
from .yamlpos import Positions

# Objectives, all from the build's own artifacts and none from the test split.
OBJECTIVES = {
    "validation_accuracy": "float accuracy on the validation split at the best epoch "
                           "(model/history.json; grouped by the spec's dataset.split)",
    "crossval_accuracy": "mean int8 TFLM accuracy over the cross-validation folds, on "
                         "recordings each fold's model never heard (analysis/crossval.json; "
                         "the folds leave the test split out)",
    "crossval_recall": "mean detection recall over the held-out recordings of the "
                       "cross-validation (analysis/crossval.json; the test split left out)",
    "stream_detection_rate": "detection rate on the validation stream at the spec's "
                             "false_alarms_per_hour (analysis/streaming.json; threshold: auto)",
}
# Sections a search may vary: they shape the model, its features, its training or its cost.
# The data, the classes and the evaluation are what trials are measured with; the targets
# are the budgets they must meet; the name keys every artifact.
SEARCHABLE = ("audio", "features", "augmentation", "model", "training", "quantization",
              "detection", "arena")
NOT_IN_BUDGET = ("name", "classes", "dataset", "targets")
MAX_DRAWS_PER_TRIAL = 200  # draws before a space smaller than `trials` is declared exhausted


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Param(_Strict):
    """One searched field: exactly one of choice, int, uniform, loguniform."""

    choice: list[Any] | None = Field(None, min_length=1, description="Values drawn uniformly.")
    int_range: tuple[int, int] | None = Field(None, alias="int",
                                              description="Integers lo..hi, both included, "
                                                          "every `step`.")
    uniform: tuple[float, float] | None = Field(None, description="Numbers uniform in lo..hi, "
                                                                  "rounded to `step` if given.")
    loguniform: tuple[float, float] | None = Field(None, description="Numbers log-uniform in "
                                                                     "lo..hi (both > 0).")
    step: float | None = Field(None, gt=0, description="Grid of int and uniform draws.")

    @model_validator(mode="after")
    def _one_kind(self) -> "Param":
        kinds = [k for k in ("choice", "int_range", "uniform", "loguniform")
                 if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of choice, int, uniform, loguniform")
        lo_hi = self.int_range or self.uniform or self.loguniform
        if lo_hi is not None and lo_hi[0] > lo_hi[1]:
            raise ValueError(f"the range {lo_hi[0]} .. {lo_hi[1]} is empty: lo must not exceed hi")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError("loguniform needs lo > 0")
        if self.int_range is not None and self.step is not None and self.step != int(self.step):
            raise ValueError(f"step of an int range must be an integer, not {self.step:g}")
        if self.step is not None and (self.choice is not None or self.loguniform is not None):
            raise ValueError("step applies to int and uniform only")
        return self

    def extremes(self) -> list[tuple[Any, tuple]]:
        """(value, location in the param) of every value a draw may take at the edges: each
        choice, or a range's ends (reachable ends, for a stepped range)."""
        if self.choice is not None:
            return [(v, ("choice", i)) for i, v in enumerate(self.choice)]
        if self.int_range is not None:
            values = self.grid()
            return [(values[0], ("int", 0)), (values[-1], ("int", 1))]
        lo, hi = self.uniform or self.loguniform
        key = "uniform" if self.uniform is not None else "loguniform"
        return [(_clean(lo), (key, 0)), (_clean(hi), (key, 1))]

    def grid(self) -> list[int]:
        lo, hi = self.int_range
        return list(range(lo, hi + 1, int(self.step or 1)))

    def draw(self, rng: np.random.Generator):
        """One value; the generator's state advances the same way for the same param."""
        if self.choice is not None:
            return copy.deepcopy(self.choice[int(rng.integers(len(self.choice)))])
        if self.int_range is not None:
            values = self.grid()
            return values[int(rng.integers(len(values)))]
        if self.uniform is not None:
            lo, hi = self.uniform
            v = float(rng.uniform(lo, hi))
            if self.step:
                v = min(hi, lo + round((v - lo) / self.step) * self.step)
            return _clean(v)
        lo, hi = self.loguniform
        return _clean(math.exp(float(rng.uniform(math.log(lo), math.log(hi)))))


def _clean(v: float) -> float:
    """A float at 6 significant digits: readable in a spec, and the same on every machine."""
    return float(f"{v:.6g}")


Objective = Literal["validation_accuracy", "crossval_accuracy", "crossval_recall",
                    "stream_detection_rate"]


class SearchFile(_Strict):
    spec: str = Field(description="The spec searched, relative to this file.")
    trials: int = Field(20, ge=1, le=1000, description="Configurations drawn from the space "
                                                       "(trial 0, the spec itself, comes on top).")
    seed: int = Field(0, description="Seed of the draws: the same seed gives the same trials.")
    baseline: bool = Field(True, description="Run the spec's own values as trial 0.")
    objective: Objective | None = Field(None, description="What to maximise (default: "
                                                          "crossval_accuracy with cross-validation "
                                                          "in the spec, else validation_accuracy).")
    targets: list[str] | None = Field(None, min_length=1,
                                      description="Variants kept in the trial specs (default: "
                                                  "all); each trial must fit every one of them.")
    budget: dict[str, Any] = Field(default_factory=dict,
                                   description="Spec fields set to these values in every trial "
                                               "(shorter training, shorter streams); not part of "
                                               "the chosen overlay.")
    space: dict[str, Param] = Field(min_length=1, description="Spec field (dotted path) -> "
                                                              "its values.")


@dataclass(frozen=True)
class Search:
    """A validated search file and the spec it searches."""

    file: SearchFile
    path: Path                 # the search file
    positions: Positions
    project: Project           # the spec, validated
    spec_data: dict            # the spec's YAML data as written
    paths: dict[str, tuple]    # space key -> key path

    @property
    def name(self) -> str:
        """search/fire_alarm.yaml or fire_alarm.search.yaml -> fire_alarm."""
        stem = self.path.name
        for suffix in (".yaml", ".yml"):
            stem = stem.removesuffix(suffix)
        return stem.removesuffix(".search")

    @property
    def objective(self) -> str:
        return self.file.objective or default_objective(self.project.spec)

    @property
    def targets(self) -> list[str]:
        return list(self.file.targets or [t.name for t in self.project.spec.targets])


def default_objective(spec: ProjectSpec) -> str:
    """crossval_accuracy for a spec with cross-validation, else validation_accuracy."""
    return ("crossval_accuracy" if spec.evaluation.cross_validation is not None
            else "validation_accuracy")


# ------------------------------------------------------------------ key paths

def field_path(key: str) -> tuple[str, ...]:
    return tuple(key.split("."))


def _field_problem(spec: ProjectSpec, path: tuple[str, ...]) -> str | None:
    """Why `path` names no field of the spec's model (None when it does)."""
    obj: Any = spec
    cls: Any = type(spec)
    for i, part in enumerate(path):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return (f"'{'.'.join(path[:i])}' is a value, not a section: it has no "
                    f"'{part}'; search the whole value")
        fields = cls.model_fields
        if part not in fields:
            hint = difflib.get_close_matches(part, list(fields), n=1)
            where = ".".join(path[:i]) or "the spec"
            extra = f" (did you mean '{hint[0]}'?)" if hint else \
                f"; its keys: {', '.join(sorted(fields))}"
            return f"{where} has no key '{part}'{extra}"
        obj = getattr(obj, part) if obj is not None else None
        cls = type(obj) if isinstance(obj, BaseModel) else unwrap(fields[part].annotation)
    if path[:2] == ("model", "architecture"):
        return ("model.architecture cannot be searched: the other model fields belong to one "
                "architecture; write one search file per architecture")
    return None


def _check_keys(data: dict, spec: ProjectSpec, pos: Positions, section: str,
                allowed: tuple[str, ...] | None, refused: tuple[str, ...]) -> list[Problem]:
    out = []
    for key in data.get(section) or {}:
        loc = (section, key)
        path = field_path(key)
        if allowed is not None and path[0] not in allowed:
            out.append(pos.problem(loc, f"'{path[0]}' cannot be searched: the search varies "
                                        f"{', '.join(allowed)} (the data, classes, targets and "
                                        f"evaluation are what trials are measured with)",
                                   at_key=True))
            continue
        if path[0] in refused:
            out.append(pos.problem(loc, f"'{path[0]}' cannot be overridden in a search",
                                   at_key=True))
            continue
        problem = _field_problem(spec, path)
        if problem:
            out.append(pos.problem(loc, problem, at_key=True))
    return out


def get_value(data: dict, path: tuple[str, ...], default=None):
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return default
        data = data[part]
    return data


def set_value(data: dict, path: tuple[str, ...], value) -> dict:
    """`data` with the value at `path` set (sections created as needed), in place."""
    node = data
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = copy.deepcopy(value)
    return data


def spec_value(spec: ProjectSpec, path: tuple[str, ...]):
    """The spec's value at `path` as JSON-able data (defaults included)."""
    return get_value(spec.model_dump(mode="json"), path)


# ------------------------------------------------------------------ values

def value_problems(base: dict, path: tuple[str, ...], value, spec_path: Path
                   ) -> tuple[list[str], bool]:
    """(messages, own): why the spec with `value` at `path` is invalid; `own` when the field's
    own constraints refuse it (else the spec's other values do)."""
    data = set_value(copy.deepcopy(base), path, value)
    try:
        ProjectSpec.model_validate(data)
    except ValidationError as exc:
        own, other = [], []
        for err in exc.errors(include_url=False):
            loc, owner = data_loc(ProjectSpec, tuple(err["loc"]))
            msg = error_message(err, loc[-1] if loc else "", owner)
            (own if loc[:len(path)] == path else other).append(
                msg if loc[:len(path)] == path else f"{'.'.join(map(str, loc))}: {msg}")
        return (own, True) if own else (other, False)
    import yaml
    try:
        load_spec(spec_path, spec_path.name, text=yaml.safe_dump(data, sort_keys=False))
    except SpecError as exc:
        return [p.message for p in exc.problems], False
    return [], False


def _check_budget(search_data: dict, pos: Positions, spec_data: dict, spec_path: Path
                  ) -> list[Problem]:
    out = []
    for key, value in (search_data.get("budget") or {}).items():
        msgs, _ = value_problems(spec_data, field_path(key), value, spec_path)
        if msgs:
            out.append(pos.problem(("budget", key), f"{key}: {json_text(value)} is not valid "
                                                    f"for {spec_path.name}: "
                                                    f"{'; '.join(dict.fromkeys(msgs))}"))
    return out


def _check_values(pos: Positions, base: dict, spec_path: Path,
                  params: dict[str, Param]) -> list[Problem]:
    out = []
    sections = [field_path(k)[0] for k in params]
    for key, param in params.items():
        path = field_path(key)
        shared = sections.count(path[0]) > 1  # another parameter may make the value valid
        for value, where in param.extremes():
            msgs, own = value_problems(base, path, value, spec_path)
            if msgs and (own or not shared):
                why = "; ".join(dict.fromkeys(msgs))
                out.append(pos.problem(("space", key) + where,
                                       f"{key}: {json_text(value)} is not valid for "
                                       f"{spec_path.name}: {why}"))
    return out


def _check_test_split(pos: Positions, base: dict, objective: str, spec_display: str
                      ) -> list[Problem]:
    """A cross-validation objective whose folds hold the test split would choose with it."""
    if not objective.startswith("crossval_"):
        return []
    cv = ProjectSpec.model_validate(base).evaluation.cross_validation
    if cv is None or not cv.include_test:
        return []
    return [pos.problem(("objective",) if ("objective",) in pos.values else ("spec",),
                        f"{objective} would choose with the test split: {spec_display} sets "
                        f"evaluation.cross_validation.include_test: true (or the budget does); "
                        f"set it to false there, or add evaluation.cross_validation.include_test: "
                        f"false to this file's budget")]


def json_text(value) -> str:
    import json
    return json.dumps(value)


# ------------------------------------------------------------------ loading

def load_search(path: str | Path, display: str | None = None) -> Search:
    """Read and validate a search file; raises SpecError with file:line:col on bad input."""
    path = Path(path)
    data, pos = yamlpos.load(path, display)
    if not isinstance(data, dict):
        raise SpecError(Problem(pos.path, 1, 1, "a search file must be a YAML mapping"))
    model = validate(SearchFile, data, pos)
    spec_path = (path.parent / model.spec).resolve()
    if not spec_path.is_file():
        raise SpecError(pos.problem(("spec",), f"spec {model.spec} does not exist (paths are "
                                               f"relative to the search file)"))
    spec_display = display_path(spec_path)
    project = load_spec(spec_path, spec_display)
    spec_data, _ = yamlpos.load(spec_path, spec_display)
    spec = project.spec
    problems = (_check_keys(data, spec, pos, "space", SEARCHABLE, ())
                + _check_keys(data, spec, pos, "budget", None, NOT_IN_BUDGET))
    for key in set(model.space) & set(model.budget):
        problems.append(pos.problem(("budget", key), f"{key} is both searched and fixed by the "
                                                     f"budget; remove one", at_key=True))
    names = [t.name for t in spec.targets]
    for i, name in enumerate(model.targets or []):
        if name not in names:
            problems.append(pos.problem(("targets", i), f"{spec_display} has no variant "
                                                        f"'{name}'; variants: {', '.join(names)}"))
    objective = model.objective
    if objective in ("crossval_accuracy", "crossval_recall") and \
            spec.evaluation.cross_validation is None:
        problems.append(pos.problem(("objective",), f"{objective} needs "
                                                    f"evaluation.cross_validation in the spec"))
    if objective == "stream_detection_rate" and spec.detection.threshold != "auto":
        problems.append(pos.problem(("objective",), "stream_detection_rate needs detection."
                                                    "threshold: auto (with false_alarms_per_"
                                                    "hour): the validation stream calibrates it"))
    if not problems:  # values are checked on key paths known to be fields
        problems += _check_budget(data, pos, spec_data, spec_path)
    if not problems:  # ... and against a spec the budget leaves valid
        base = _with_budget(spec_data, model.budget)
        problems += _check_test_split(pos, base, objective or default_objective(spec),
                                      spec_display)
        problems += _check_values(pos, base, spec_path, model.space)
    if problems:
        raise SpecError(problems)
    return Search(file=model, path=path.resolve(), positions=pos, project=project,
                  spec_data=spec_data, paths={k: field_path(k) for k in model.space})


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _with_budget(spec_data: dict, budget: dict) -> dict:
    data = copy.deepcopy(spec_data)
    for key, value in budget.items():
        set_value(data, field_path(key), value)
    return data


# ------------------------------------------------------------------ trials

def baseline_params(search: Search) -> dict:
    """The spec's own values of the searched fields."""
    return {key: spec_value(search.project.spec, path) for key, path in search.paths.items()}


def trial_list(search: Search, trials: int | None = None) -> list[dict]:
    """[{"id": k, "params": {key: value}}]: trial 0 the spec itself (baseline: true), then
    `trials` distinct draws from a generator seeded with the search's seed. Fewer when the
    space holds fewer distinct configurations."""
    count = search.file.trials if trials is None else trials
    rng = np.random.default_rng(search.file.seed)
    out, seen = [], set()
    if search.file.baseline:
        params = baseline_params(search)
        out.append({"id": 0, "params": params})
        seen.add(json_text(params))
    draws = 0
    while len(out) < count + int(search.file.baseline) and draws < MAX_DRAWS_PER_TRIAL * count:
        draws += 1
        params = {key: param.draw(rng) for key, param in search.file.space.items()}
        key = json_text(params)
        if key in seen:
            continue
        seen.add(key)
        out.append({"id": len(out) if search.file.baseline else len(out) + 1, "params": params})
    return out


def trial_spec_data(search: Search, params: dict) -> dict:
    """The spec's YAML data for one trial (see the module docstring)."""
    project = search.project
    data = _with_budget(search.spec_data, search.file.budget)
    for key, value in params.items():
        set_value(data, search.paths[key], value)
    dataset = data.get("dataset") or {}
    if dataset.get("root"):
        dataset["root"] = str(project.resolve(dataset["root"]))
    folder = get_value(data, ("augmentation", "background", "folder"))
    if folder:
        set_value(data, ("augmentation", "background", "folder"), str(project.resolve(folder)))
    base = get_value(data, ("transfer", "base"))
    if base:
        set_value(data, ("transfer", "base"), str(project.resolve(base)))
    keep = set(search.targets)
    data["targets"] = [t for t in data.get("targets", []) if t.get("name") in keep]
    return data


def changed_params(search: Search, params: dict) -> dict:
    """The parameters whose value differs from the spec's own."""
    base = baseline_params(search)
    return {k: v for k, v in params.items() if json_text(v) != json_text(base[k])}
