"""What every job's configuration is made of: strict sections, the Ray section, the run fingerprint."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

CONFIG_ERROR_EXIT_CODE = 2
MODELS_DIR_ENV = "REID_RAY_MODELS_DIR"


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the field."""


class Strict(BaseModel):
    # allow_inf_nan=False: a nan or inf would pass every bound and fail later inside actors, after the run started
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class StageResources(Strict):
    """What each actor of one stage gets, and how many actors the stage has."""

    num_cpus: float = Field(1.0, gt=0)
    num_gpus: float = Field(0.0, ge=0)
    min_actors: int = Field(1, ge=1)
    max_actors: int = Field(1, ge=1)
    batch_size: int = Field(1, ge=1)


class RayConnection(Strict):
    """Where a job's Ray runs."""

    ray_address: str | None = Field(None, description="None: join a running cluster if any, else start a local one.")


class JobResources(RayConnection):
    """The ``resources`` section of the video jobs: where Ray runs and how many CPUs a Ray they start has; each job
    adds its stages."""

    num_cpus: int | None = Field(None, description="CPUs of a locally started Ray (None: all).")


class JobConfig(Strict):
    """What every video job's config has: where model files live, and the fingerprint of its results."""

    # What changes no result (``model_dump``'s ``exclude``: a section name -> True, or -> the set of its fields left out).
    FINGERPRINT_EXCLUDE: ClassVar[dict[str, Any]] = {}

    models_dir: str | None = Field(None, description=f"Directory of model files; env {MODELS_DIR_ENV} overrides.")

    def resolved_models_dir(self) -> Path:
        """Environment first (so CI and clusters can point at a shared folder), then config, then ~/.cache."""
        d = os.environ.get(MODELS_DIR_ENV) or self.models_dir or "~/.cache/reid_ray/models"
        return Path(d).expanduser()

    def run_record(self) -> dict:
        """The config as a run records it (``_run.json``): ``models_dir`` the folder the run actually used."""
        return self.model_dump(mode="json") | {"models_dir": str(self.resolved_models_dir())}

    def fingerprint(self) -> str:
        """Key of everything that changes results (all but ``FINGERPRINT_EXCLUDE``): an ``--out`` holding results
        of another fingerprint is refused."""
        payload = self.model_dump(mode="json", exclude=self.FINGERPRINT_EXCLUDE)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
