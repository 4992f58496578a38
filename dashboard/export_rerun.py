"""Write one episode of an output root to a Rerun `.rrd` file: every named action/state dimension
as a scalar time series (entity path feature/body_part/dim) and the camera frames as images."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dashboard.data import Store


def export_episode(root: Path | str, episode_id: str, out: Path) -> dict[str, int]:
    """Export `episode_id` (a source id, or `<root>:<source id>`) of `root` to `out`; returns counts."""
    import av
    import rerun as rr

    store = Store([root])
    sid = episode_id.split(":", 1)[1] if episode_id[:1].isdigit() and ":" in episode_id else episode_id
    row = next((r for r in store.root(0).rows if r.source_id == sid), None)
    if row is None:
        raise KeyError(f"no episode {episode_id!r} in {root}")
    if row.status != "ingested":
        raise ValueError(f"{sid} was rejected ({row.reason}): nothing to export")
    ep = store.episode(row)
    rec = rr.new_recording("psi0_dashboard", recording_id=f"{sid}")
    ts = ep["timestamp"]
    scalars = 0
    for feat, parts in {**ep["groups"], **ep.get("residuals", {})}.items():
        for part, series in parts.items():
            for name, values in series.items():
                for k, v in enumerate(values):
                    if v is None:
                        continue
                    rec.set_time("time", duration=float(ts[k] - ts[0]))
                    rec.log(f"{feat}/{part}/{name}", rr.Scalars(float(v)))
                    scalars += 1
    images = 0
    reader = store.reader(0, row.shard)
    fps = ep["fps"] or 30.0
    for v in ep["videos"]:
        if not v["url"].startswith("/files/"):   # frames kept as arrays (Zarr): log them as they are
            for k, img in enumerate(reader.frames(v["key"], row.episode_index)):
                rec.set_time("time", duration=k / fps)
                rec.log(f"camera/{v['key']}", rr.Image(img))
                images += 1
            continue
        where = store.locations[0].child(v["url"].split("/", 3)[3])  # /files/<root>/<rel>
        t0, t1 = float(v["from_timestamp"] or 0.0), float(v["to_timestamp"] or np.inf)
        with where.open() as fh, av.open(fh) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base)
                if t < t0 - 1e-6 or t >= t1 - 1e-6:
                    continue
                rec.set_time("time", duration=t - t0)
                rec.log(f"camera/{v['key']}", rr.Image(frame.to_ndarray(format="rgb24")))
                images += 1
    out.parent.mkdir(parents=True, exist_ok=True)
    rec.save(str(out))
    rec.flush()
    return {"scalars": scalars, "images": images}
