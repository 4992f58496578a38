"""On-disk names shared by writers, readers, the dashboard and training."""
from __future__ import annotations

CATALOG_FILE = "catalog.json"
SHARD_FILE = "shard.json"
SHARDS_DIR = "shards"
REJECTS_FILE = "rejects.jsonl"
TOKENIZER_DIR = "tokenizer"
STAGING_PREFIX = ".tmp-"          # shards are written under this prefix, then renamed

# LeRobot v3 feature keys
TIMESTAMP = "timestamp"
STATE = "observation.state"
STATE_PRIVILEGED = "observation.state_privileged"   # + simulator object poses (sim demos; CPU proofs)
ACTION = "action"
ACTION_LOWER_BODY = "action.lower_body"
ACTION_TOKENS = "action.tokens"
ACTION_TOKENS_LEN = "action.tokens_len"
IMAGES_PREFIX = "observation.images."
LEROBOT_DEFAULT_KEYS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
# Shard formats are not listed here: they are registered in one place, `shards.formats`.
