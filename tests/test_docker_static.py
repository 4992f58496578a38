"""No Docker daemon here: check the deployment files statically (what can be checked without building)."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_is_well_formed_and_copies_what_exists():
    steps = _instructions((REPO / "docker" / "Dockerfile").read_text())
    ops = [op for op, _ in steps]
    assert ops[0] == "FROM" and re.search(r":\d+\.\d+\.\d+", steps[0][1]), "base image must be pinned to a version"
    known = {"FROM", "ENV", "RUN", "WORKDIR", "COPY", "USER", "ENTRYPOINT", "CMD", "ARG", "LABEL", "EXPOSE"}
    assert set(ops) <= known
    for op, rest in steps:
        if op == "COPY":
            *sources, _dest = rest.split()
            for src in sources:
                assert (REPO / src).exists(), f"COPY source {src} does not exist"
    run = " ".join(rest for op, rest in steps if op == "RUN")
    assert "requirements.lock" in run and "build_hand_model.py" in run and "ffmpeg" in run
    # every package directory of the distribution is copied
    copied = {rest.split()[0] for op, rest in steps if op == "COPY"}
    for pkg in ("schemas", "converters", "shards", "pipelines", "training", "teleop", "deploy", "dashboard", "psi0",
                "samples"):
        assert pkg in copied


def test_rayjob_manifest_runs_the_egodex_job():
    doc = yaml.safe_load((REPO / "docker" / "rayjob-egodex.yaml").read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    assert "pipelines/egodex_tokenize.py" in doc["spec"]["entrypoint"]
    import ray
    assert doc["spec"]["rayClusterSpec"]["rayVersion"] == ray.__version__
    script = doc["spec"]["entrypoint"].split()[1]
    assert (REPO / script).is_file()
    for group in [doc["spec"]["rayClusterSpec"]["headGroupSpec"], *doc["spec"]["rayClusterSpec"]["workerGroupSpecs"]]:
        (container,) = group["template"]["spec"]["containers"]
        assert container["image"] == "psi0:0.1.0"
