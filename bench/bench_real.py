"""Grade the labelled real photos and print the table by which the booth is judged.

The folder holds ``labels.csv`` (file,label,booth_like,...) and the photos; its README gives the
rules that ``edge.train.labelled_photos.judge`` implements. Every photo is graded alone as section
"front". The table is printed for the whole folder and for the held-out part alone (photos that
never trained the model nor picked a threshold, see ``edge.train.labelled_photos.split``).

Run: python bench/bench_real.py --folder PATH/TO/PHOTOS [--json answers.json] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from edge.config.model import GradingConfig, ModelConfig
from edge.grade import Grader
from edge.train.labelled_photos import grade_photos, load_labels, split, table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", type=Path, required=True, help="the real photos folder with labels.csv")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write every photo's answer here")
    p.add_argument("--model", type=Path, help="another .tflite (its metadata beside it)")
    args = p.parse_args()

    photos = load_labels(args.folder)
    model = ModelConfig(threads=args.threads, **({"path": args.model} if args.model else {}))
    grader = Grader(model, GradingConfig())
    t = time.perf_counter()
    answers = grade_photos(grader, args.folder, photos)
    seconds = time.perf_counter() - t
    print(f"model {grader.info.name} {grader.info.version} ({grader.info.sha256[:12]}), "
          f"{len(photos)} photos in {seconds:.0f} s")
    print("\nall photos:")
    print(table(answers))
    parts = split(photos)
    print("\nheld-out part only (never trained on, never picked a threshold):")
    print(table([a for a in answers if parts[a.photo.file] == "holdout"]))
    if args.json:
        args.json.write_text(json.dumps([a.as_dict() for a in answers], indent=1))


if __name__ == "__main__":
    main()
