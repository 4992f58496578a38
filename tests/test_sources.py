"""The Source protocol and its registry, transforms as composable dataclasses, the job's one output root,
and the import rules that keep the layers apart."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from converters import egodex, humanoid_everyday, teleop
from converters.registry import SOURCES, get, names
from converters.source import Source, task_key, task_sentence
from converters.transforms import Compose, HandQA, Retarget, Tokenize, Validate, compose, stage_of
from pipelines.output import OutputRoot
from pipelines.stages import JobConfig, build_transforms, load
from samples import egodex as egodex_sample
from samples import humanoid_everyday as he_sample
from schemas import HUMAN_ACTION_48_DELTA, Episode, EpisodeError, Rejected, RejectReason

REPO = Path(__file__).resolve().parent.parent


def test_every_registered_source_implements_the_protocol():
    assert names() == ["egodex", "humanoid_everyday", "teleop"]
    for name, source in SOURCES.items():
        assert isinstance(source, Source) and source.name == name and get(name) is source
        info = source.describe()
        assert {"name", "summary", "layout", "fps", "embodiments", "features", "derived", "tokens",
                "defaults"} <= set(info)
        assert source.token_column is None or source.token_column in info["features"]
        assert info["defaults"] == {"token_horizon": source.defaults.token_horizon,
                                    "episodes_per_shard": source.defaults.episodes_per_shard}
    assert (egodex.EGODEX.hand_qa() is not None and humanoid_everyday.HUMANOID_EVERYDAY.hand_qa() is None
            and teleop.TELEOP.hand_qa() is None)
    with pytest.raises(ValueError, match="unknown source 'nope'.*egodex"):
        get("nope")


def test_token_chunks_are_the_sources_own(tmp_path):
    egodex_sample.write_sample(tmp_path / "ego", 0, (96, 64), episodes_per_task=1, seconds=0.6)
    he_sample.write_sample(tmp_path / "he", 0, (64, 48), seconds=0.5)
    cases = ((egodex.EGODEX, tmp_path / "ego", 1, HUMAN_ACTION_48_DELTA.size),
             (humanoid_everyday.HUMANOID_EVERYDAY, tmp_path / "he", 4, HUMAN_ACTION_48_DELTA.size))
    for source, root, horizon, dims in cases:
        module = egodex if source is egodex.EGODEX else humanoid_everyday
        refs = source.discover(str(root))
        assert refs == module.discover(str(root))            # the module functions other code calls, same answer
        episode = source.read(refs[0])
        chunks = source.token_chunks(episode, horizon)
        assert chunks.shape == (episode.length, horizon, dims) and np.isfinite(chunks).all()
        # the same chunks from the columns alone (what `psi0 tokenizer fit` and the loader read from shards)
        columns = {role: episode.column(col).astype(np.float64) for role, col in source.token_inputs.items()}
        np.testing.assert_array_equal(source.chunks_from_columns(columns, episode.meta.fps, horizon), chunks)
        if source.token_column is not None:          # chunks of a recorded column, end-padded with its last frame
            column = episode.column(source.token_column)
            np.testing.assert_array_equal(chunks[0, :, :], column[:horizon])
            np.testing.assert_array_equal(chunks[-1], np.repeat(column[-1:], horizon, 0))


def test_catalog_records_what_the_tokens_were_made_of():
    """The catalog's config says what the tokens were made of: every built-in source is in the one stage-1
    space (48-D hand deltas, issue 14), derived from the columns `token_inputs` names (token_column None)."""
    from converters.tokenize import hand48

    for source in ("egodex", "humanoid_everyday", "teleop"):
        cfg = JobConfig(source=source, input="", output="").to_json()
        assert cfg["token_column"] is None and cfg["token_space"] == hand48.SPACE
        assert set(cfg["token_inputs"]) <= set(hand48.ROLES) and "hand48" in cfg["token_inputs"]


def test_hand_qa_is_a_step_of_the_sources_that_have_one():
    chain = build_transforms(JobConfig(source="egodex", input="", output="", hand_qa=True, retarget=True), None)
    assert [type(step) for step in chain.steps] == [Validate, HandQA, Retarget]
    with pytest.raises(ValueError, match="no hand QA.*egodex"):
        JobConfig(source="humanoid_everyday", input="", output="", hand_qa=True)
    with pytest.raises(ValueError, match="unknown source"):
        JobConfig(source="nope", input="", output="")


def test_transforms_compose_flat_and_name_their_stage():
    def double(ep):
        return ep

    inner = compose(Validate(), double)
    outer = compose(inner, None, Retarget("h1_inspire"))
    assert isinstance(outer, Compose) and outer.steps == (Validate(), double, Retarget("h1_inspire"))
    assert [stage_of(s) for s in outer.steps] == ["validate", "transform", "transform"]
    assert Retarget("h1_inspire") == Retarget("h1_inspire") != Retarget() and hash(Validate()) == hash(Validate())
    he = humanoid_everyday.HUMANOID_EVERYDAY
    assert Tokenize(None, egodex.EGODEX.token_chunks) != Tokenize(None, he.token_chunks)


def test_validation_failure_is_rejected_at_the_validate_stage(tmp_path):
    egodex_sample.write_sample(tmp_path, 0, (96, 64), episodes_per_task=1, seconds=0.5)
    cfg = JobConfig(source="egodex", input=str(tmp_path), output=str(tmp_path / "out"))
    ref = egodex.discover(str(tmp_path))[0]

    def too_short(ep: Episode) -> Episode:
        raise EpisodeError(RejectReason.EMPTY_EPISODE, "cut")

    class Truncate:                                     # a transform before validation breaks the episode
        stage = "transform"

        def __call__(self, ep: Episode) -> Episode:
            return Episode(ep.meta, ep.frames.slice(0, 0), ep.features, ep.videos)

    out = load(ref, cfg, compose(Truncate(), Validate()))
    assert isinstance(out, Rejected) and out.stage == "validate"
    out = load(ref, cfg, compose(Validate(), too_short))
    assert isinstance(out, Rejected) and out.stage == "transform" and out.reason is RejectReason.EMPTY_EPISODE
    assert isinstance(load(ref, cfg, build_transforms(cfg, None)), Episode)


def test_output_root_keeps_the_tokenizer_and_cleans_debris(tmp_path):
    from converters.tokenize.fast import FastTokenizer
    from shards.commit import staging_path

    out = OutputRoot(str(tmp_path / "out"))
    assert not out.is_remote and out.prepare() == [] and out.load_tokenizer() is None
    chunks = np.random.default_rng(0).normal(size=(64, 4, 3))
    tok = FastTokenizer.fit(chunks, vocab_size=300, scale=10.0, seed=0)
    out.save_tokenizer(tok)
    back = out.load_tokenizer()
    assert back is not None and back.config == tok.config
    assert back.encode(chunks[:8]) == tok.encode(chunks[:8])
    debris = staging_path(tmp_path / "out", "egodex-00000")
    assert out.prepare() and not debris.exists()
    assert not out.is_committed("egodex-00000", ("lerobot",))
    assert OutputRoot("s3://bucket/out").is_remote and OutputRoot("s3://bucket/out").tokenizer_location == \
        "s3://bucket/out/tokenizer"


def test_task_names_have_one_rule():
    assert task_key(" Push a-button ") == "push_a_button"
    assert task_sentence("push_a  button") == "Push a button"
    assert humanoid_everyday.task_key is task_key and teleop.task_key is task_key


# ------------------------------------------------------------------------------------------ import rules
def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at top level) for every import in a file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, id(node) in top))
    return out


def test_fault_injection_lives_in_tests_only():
    for package in ("pipelines", "converters", "shards", "schemas", "psi0", "samples"):
        for path in (REPO / package).rglob("*.py"):
            text = path.read_text()
            assert "PSI0_FAULT" not in text and "fault_point" not in text, path


def test_entry_scripts_do_not_edit_sys_path():
    for script in ("egodex_tokenize.py", "humanoid_everyday.py", "teleop_ingest.py"):
        assert "sys.path" not in (REPO / "pipelines" / script).read_text()


def test_ingest_front_door_teaches_and_refuses_clearly(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "psi0", "ingest", *a], cwd=REPO, capture_output=True,  # noqa: E731
                                    text=True, timeout=120)
    general = run("--help")
    assert general.returncode == 0 and all(name in general.stdout for name in names())
    assert "RAY_AUTH_MODE=token ray job submit" in general.stdout
    one = run("egodex", "--help")
    assert one.returncode == 0 and "HUMAN_ACTION_48_DELTA" in one.stdout and "(default: 64)" in one.stdout
    bad = run("nope", "--input", "x", "--output", "y")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    qa = run("humanoid_everyday", "--input", str(tmp_path), "--output", str(tmp_path / "o"), "--hand-qa")
    assert qa.returncode == 2 and "no hand QA" in qa.stderr
