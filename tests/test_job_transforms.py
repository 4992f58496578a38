"""Retargeting and MediaPipe hand QA as job stages on real sample episodes."""
from __future__ import annotations

import numpy as np

from converters import egodex
from pipelines.stages import JobConfig, build_transforms, load
from samples import egodex as egodex_sample
from schemas import Episode, Rejected, RejectReason


def test_retarget_and_hand_qa_stages_record_quality_or_reject_with_reason(tmp_path):
    egodex_sample.write_sample(tmp_path, 0, (320, 240), episodes_per_task=1, seconds=1.0)
    cfg = JobConfig(source="egodex", input=str(tmp_path), output=str(tmp_path / "out"), retarget=True, hand_qa=True)
    transforms = build_transforms(cfg, None)
    outcomes = [load(ref, cfg, transforms) for ref in egodex.discover(str(tmp_path))]
    assert len(outcomes) == 3
    for outcome in outcomes:
        if isinstance(outcome, Rejected):
            assert outcome.reason in (RejectReason.HAND_QA_FAILED, RejectReason.RETARGET_ERROR)
            assert "detection rate" in outcome.message or "residual" in outcome.message
            continue
        assert isinstance(outcome, Episode)
        robot = outcome.column("action.robot")
        assert robot.shape == (outcome.length, 36) and np.isfinite(robot).all()
        assert "hand_qa.detection_rate" in outcome.meta.quality
        assert outcome.meta.quality["retarget.left_arm.position_m.p95"] < 0.05


def test_worker_error_in_a_transform_becomes_a_reject(tmp_path):
    egodex_sample.write_sample(tmp_path, 0, (96, 64), episodes_per_task=1, seconds=0.5)
    cfg = JobConfig(source="egodex", input=str(tmp_path), output=str(tmp_path / "out"))

    def explode(ep):
        raise RuntimeError("boom")

    ref = egodex.discover(str(tmp_path))[0]
    out = load(ref, cfg, [explode])
    assert isinstance(out, Rejected) and out.reason is RejectReason.WORKER_ERROR and "boom" in out.message
