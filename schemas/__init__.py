"""Contracts of psi0: embodiments, named spaces, Episode / Rejected, catalog records, validation.

Depends on numpy and pyarrow only, so every other package (and the dashboard) can import it.
"""
from schemas.actions import (HUMAN_ACTION_48, HUMAN_ACTION_48_DELTA, LOWER_BODY_COMMAND, NOMINAL_TORSO_HEIGHT,
                             PSI0_ACTION, PSI0_STATE, PSI0_STATE_USED)
from schemas.catalog import CATALOG_FORMAT, Catalog, Ingested, ShardRecord
from schemas.episode import (SCHEMA_VERSION, Episode, EpisodeError, EpisodeMeta, FeatureSpec, Rejected, RejectReason,
                             SourceRef,
                             VideoRef, build_frames, canonical_json, column_to_numpy, vector_column)
from schemas.spaces import Space, concat, padded
from schemas.validation import validate_episode

__all__ = [
    "HUMAN_ACTION_48", "HUMAN_ACTION_48_DELTA", "LOWER_BODY_COMMAND", "NOMINAL_TORSO_HEIGHT", "PSI0_ACTION",
    "PSI0_STATE", "PSI0_STATE_USED", "CATALOG_FORMAT", "Catalog", "Ingested", "ShardRecord", "SCHEMA_VERSION",
    "Episode", "EpisodeError", "EpisodeMeta", "FeatureSpec", "Rejected", "RejectReason", "SourceRef", "VideoRef", "build_frames",
    "canonical_json", "column_to_numpy", "vector_column", "Space", "concat", "padded", "validate_episode",
]
