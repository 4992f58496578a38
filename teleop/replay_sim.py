"""`teleop replay DIR --to sim`: play recorded commands open-loop through SimRobot, compare states.

The first thing to check when a policy fine-tuned on teleop data fails: do the recorded actions, replayed
open-loop, reproduce the recorded robot states? Each episode's `commands` are sent to a fresh SimRobot at
their recorded times and its state is read at every recorded `robot_state` time; the report gives the
mean |recorded - replayed| (L1 per joint, averaged) per body part, after a warm-up window (the fresh
robot starts from its default pose, the recorded one from wherever the session left it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from schemas import embodiments
from schemas.actions import PSI0_HANDS
from schemas.recording import (episode_dirs, episode_info, find_sessions, fixed_column, load_session, read_stream,
                               table_to_commands)
from teleop.devices.sim import SIM_BODY

BODY_PARTS: dict[str, tuple[str, slice]] = {
    **{part: ("body_q", SIM_BODY.slice(part)) for part in ("left_leg", "right_leg", "waist", "left_arm", "right_arm")},
    "left_hand": ("hand_q", PSI0_HANDS.slice("left_hand")), "right_hand": ("hand_q", PSI0_HANDS.slice("right_hand")),
    "base_height": ("base_height", slice(0, 1)), "imu_rpy": ("imu_rpy", slice(0, 3)),
}
"""Part -> (robot_state column, slice). Joint parts in rad, base height in m."""


def replay_episode(episode: Path, robot: str = embodiments.DEFAULT, warmup_s: float = 1.0) -> dict[str, Any]:
    """Per-part mean L1 between the recorded states and SimRobot driven by the recorded commands."""
    from teleop.devices.sim import SimRobot  # noqa: PLC0415
    commands = table_to_commands(read_stream(episode / "commands"))
    states = read_stream(episode / "robot_state")
    ts = states.column("t").to_numpy()
    if not commands or len(ts) == 0:
        return {"episode": episode.name, "error": "no commands or no robot states"}
    recorded = {"body_q": fixed_column(states, "body_q", SIM_BODY.size),
                "hand_q": fixed_column(states, "hand_q", PSI0_HANDS.size),
                "imu_rpy": fixed_column(states, "imu_rpy", 3),
                "base_height": states.column("base_height").to_numpy()[:, None]}
    sim = SimRobot(robot)
    replayed: dict[str, list] = {k: [] for k in recorded}
    ci = 0
    for t in ts:                               # same order as the live loop: send (t_k), then state (t_k)
        while ci < len(commands) and commands[ci].t <= t + 1e-9:
            sim.send(commands[ci])
            ci += 1
        s = sim.state(float(t))
        replayed["body_q"].append(s.body_q)
        replayed["hand_q"].append(s.hand_q)
        replayed["imu_rpy"].append(s.imu_rpy)
        replayed["base_height"].append([s.base_height])
    keep = ts - ts[0] >= warmup_s
    if not keep.any():
        keep[:] = True
    out: dict[str, Any] = {"episode": episode.name, "outcome": episode_info(episode).get("outcome"),
                           "states": int(len(ts)), "compared": int(keep.sum()), "warmup_s": warmup_s, "l1": {}}
    for part, (column, sl) in BODY_PARTS.items():
        a = recorded[column][keep][:, sl]
        b = np.asarray(replayed[column])[keep][:, sl]
        out["l1"][part] = float(np.abs(a - b).mean())
    return out


def replay(directory: str | Path, warmup_s: float = 1.0) -> list[dict[str, Any]]:
    """Replay every episode of every session under `directory`."""
    results = []
    for session in find_sessions(directory):
        robot = load_session(session).get("robot", embodiments.DEFAULT)    # old sessions: "g1-dex3" (accepted)
        for episode in episode_dirs(session):
            if (episode / "commands").is_dir():
                results.append(dict(replay_episode(episode, robot, warmup_s), session=str(session)))
    return results


def format_report(results: list[dict[str, Any]]) -> str:
    if not results:
        return "no episodes with commands found"
    parts = list(BODY_PARTS)
    head = f"{'episode':<16}{'outcome':<12}" + "".join(f"{p:>12}" for p in parts)
    lines = ["L1 |recorded - replayed| per body part (rad; base_height m), after warm-up", head]
    for r in results:
        if "error" in r:
            lines.append(f"{r['episode']:<16}{r['error']}")
            continue
        lines.append(f"{r['episode']:<16}{str(r['outcome']):<12}" + "".join(f"{r['l1'][p]:>12.5f}" for p in parts))
    return "\n".join(lines)
