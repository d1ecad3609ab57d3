"""``python -m edge.synth.demo_images OUT_DIR``: a fixed set of booth photos for the replay cameras.

Writes OUT_DIR/front/NN.jpg and OUT_DIR/back/NN.jpg: clean, damaged and dirty phones, the same
bytes on every run.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from edge.synth.scene import render_scene

log = logging.getLogger(__name__)

# (what is on the phone, its colour): clean ones first so a demo's first session grades A.
PLAN: tuple[tuple[dict[str, int], str], ...] = (
    ({}, "black"),
    ({}, "white"),
    ({"scratch": 3}, "blue"),
    ({"crack": 1, "scratch": 1}, "black"),
    ({"dirt": 2}, "silver"),
    ({"chip": 1, "dirt": 1}, "gold"),
)
SEED = 20240611


def write_demo_images(out: Path, width: int = 1920, height: int = 1080) -> list[Path]:
    written = []
    for section in ("front", "back"):
        folder = out / section
        folder.mkdir(parents=True, exist_ok=True)
        for i, (defects, colour) in enumerate(PLAN):
            rng = np.random.default_rng([SEED, i, section == "back"])
            r = render_scene(
                rng, width, height, face=section, colour=colour, defects=defects,  # type: ignore[arg-type]
                fill=float(rng.uniform(0.7, 0.9)), blur_sigma=0.0, exposure=1.0, jpeg_quality=92,
            )  # fmt: skip
            path = folder / f"{i:02d}.jpg"
            path.write_bytes(r.jpeg)
            written.append(path)
    log.info("wrote %d demo images under %s", len(written), out)
    return written


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m edge.synth.demo_images", description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_demo_images(args.out_dir)


if __name__ == "__main__":
    main()
