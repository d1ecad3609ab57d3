"""The model card, written from the metadata the training run just measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Sections from this heading on are written by hand (checks outside the run) and kept on rewrite.
KEPT_HEADING = "## Checks outside the training run"


def _real_training(t: dict[str, Any]) -> str:
    if not t.get("real_photos"):
        return "No real photo was trained on."
    return f"""Real photos, weakly supervised: {t["real_photos"]} photos of the MSD dataset (Mobile phone Screen
surface Defect dataset, Jian Zhang and Miaoju Ban, Peking University; GPL-3.0), the training part
of a fixed split (`edge/train/labelled_photos.py`), with image-level labels only (good, oil, stain,
scratch). Every cell of a good, oil or stain photo is held to "no scratch, crack or chip", every
cell of a scratch photo to "no crack or chip", and the most likely scratch cell of a scratch photo
(dirt cell of an oil or stain photo) is pulled up: multiple-instance learning
(`edge/train/weak.py`). One step on two whole real crops follows every six synthetic batches.
The photos are not in this repository: `edge-grader-train --real DIR` reads them."""


# Crack evidence (edge.grade.evidence.confidence) stays below 1; a crack_confirm of 1 or more
# sends every lone crack to review.
_MAX_EVIDENCE = 0.9999


def _saturation_note(crack_confirm: float | None) -> str:
    if crack_confirm is None or crack_confirm <= _MAX_EVIDENCE:
        return ""
    return """It lies above any evidence the pipeline can give: with this model one crack alone
always goes to a person and only a shattered face is graded E by the booth itself. """


def _real_results(real: dict[str, Any] | None, thresholds: dict[str, float]) -> str:
    if not real:
        return ""
    return f"""## Real photos
The whole pipeline (locate, quality gate, model, rules, review) on {real["photos"]} real photos
with image-level labels, judged by the rules of the photo set's README (`bench/bench_real.py`).
The dirt threshold ({thresholds.get("dirt")}) is the one that misses the fewest oil and stain photos
while telling the fewest intact phones to clean their screen (the model is less sure of real oil
than of rendered dirt). `crack_confirm` = {thresholds.get("crack_confirm")}: a crack with less evidence (the model's
certainty summed over the cells a thin line crosses, weighed by the share of the crack's cells
that carry it, `edge/grade/evidence.py`; its highest probability alone saturates on screen
content as on broken glass) sends the session to a
technician's review, unless the face is shattered (a web of cracks settles it whatever their
evidence). Both were picked on the calibration part (web and hand-held photos) and the MSD
training part. {_saturation_note(thresholds.get("crack_confirm"))}
The held-out part ({real["held_out"]} photos) never trained the model and never
picked a threshold:

```
{real["table_held_out"]}
```

All photos (the held-out part, the calibration part and the MSD photos the model trained on):

```
{real["table_all"]}
```

"""


def write_card(path: Path, meta: dict[str, Any]) -> None:
    old = path.read_text() if path.exists() else ""
    kept = old[old.index(KEPT_HEADING) :] if KEPT_HEADING in old else ""
    rows = "\n".join(
        f"| {c} | {m['precision']} | {m['recall']} | {m['true_defects']} | {m['predicted']} |"
        for c, m in meta["metrics"].items()
    )
    t = meta["training"]
    real = meta.get("real_photos")
    h, w = meta["input_shape"][1:3]
    gh, gw = meta["output_grid"]
    path.write_text(
        f"""# {meta["name"]} {meta["version"]}: booth defect model card

## What it does
Given the canonical crop of one phone face (the device found on the booth background and warped
upright to {w}x{h} px, {meta["canonical_margin"] * 100:.0f} % margin on each side, about
{1 / meta["nominal_px_per_mm"]:.3f} mm per px for a {meta["nominal_device_length_mm"]:.0f} mm phone),
it gives class probabilities for every {meta["stride"]}x{meta["stride"]} px cell ({gh}x{gw} grid):
{", ".join(meta["labels"])}. The grading pipeline (edge/grade) merges cells into defects, measures
them in mm and grades. One invoke per photo.

## Architecture
A fully convolutional MobileNet-style net: a 3x3 stride-2 convolution (24 ch), then depthwise
separable blocks 32-32 (stride 4), 64-64 (stride 8), 96 and two dilated 96 blocks (stride 16,
dilation 2 and 4 for context), a 1x1 head and a softmax per cell. ReLU6, BatchNorm folded.
- parameters: {meta["parameters"]:,}
- MACs per photo: {meta["macs"] / 1e6:.0f} M
- file: full-integer int8 TFLite (int8 input = pixel - 128, int8 output), sha256 `{meta["sha256"][:16]}...`
- invoke on the training machine (x86-64, 2 threads): {meta["invoke_ms_x86_2_threads"]} ms;
  Raspberry Pi 4 estimate: see `bench/bench_grading.py` (scaled from int8 MobileNet v2, ~300 M MACs in ~17-20 ms)

## Training data
Synthetic renders made by `edge/synth` with seed {t["seed"]}: {t["renders"]} booth photos
({t["patches"]} patches of 256x256 px cut from their canonical crops: half centred on defects, a
quarter on the outline and corners as hard negatives, a quarter anywhere),
{t["epochs"]} epochs, {t["seconds"]} s on a 2-core machine. The renders vary phone shape (aspect
1.9-2.3, corner radius, bezels, notch / punch hole / home button, 1-4 lens camera bumps, logos),
colour, background (grey felt, dark, light; and white, paper, wood, black and coloured
shop backdrops), lit displays (wallpapers with hard edges, skylines, app icon grids, clocks, text,
app screens with list rows and dividers, status bars: all labelled clean), placement, rotation,
scale, lamp reflections,
lighting gradients, exposure, blur, noise and JPEG quality. Drawn defects: scratches (1.5-70 mm
smooth arcs, faint to deep, broken, in bundles, with brightness wandering along them), cracks
(nearly straight runs with sharp turns and branches, spider webs, shattered corners), chips and
dents on the outline; dirt that is not damage (fingerprints, oil smudges, droplets up to about
25 mm across with specular highlights, round stains). Dust specks and lamp streaks (from broad
glows to narrow soft lines) are drawn but labelled clean.

{_real_training(t)}

## Held-out results
{meta["training"]["held_out_renders"]} renders with seeds the training never used, through the
int8 model, thresholds {meta["thresholds"]} (scratch, crack and chip picked on a separate
validation set of renders; dirt and crack_confirm on real photos, see below). Scratch and
crack are both lines in the glass: each is tested on their summed probability and every connected
line takes the kind with more probability on it. Predictions go through the pipeline's own rules
(`edge/grade/detect.py`: strokes in the pixels, smooth inner lines are scratches, lines on dirt
are dirt, chips at the outline), so these figures are for what the booth reports. A true defect is
found when a predicted blob of its class touches it; a predicted blob is correct when it touches a
true defect of its class.

| class | precision | recall | true defects | predicted blobs |
|---|---|---|---|---|
{rows}

{_real_results(real, meta["thresholds"])}
## Limits (read before trusting a grade)
- Trained mostly on synthetic pictures. Real glass, real lamps and real damage differ: the render
  figures above say how well the model learned the renderer; the real-photo figures say how the
  booth answers real phones, on a few dozen held-out photos each (every photo moves a rate by
  several points).
- Thresholds favour precision (a false defect costs the customer a grade, F0.5): on the renders
  (lit screens and shop backdrops included) most faint or short scratches, most chips and most
  dirt are missed; see the recall above. On the real MSD photos scratches and dirt are found far
  more often (see the real-photo tables).
- Scratch versus crack on real glass leans on the pipeline's rules as much as on the model: a
  single smooth hairline crack in the middle of the glass is reported as a scratch, and a crack
  under an oil film as dirt (clean and retake first). Both need real training photos to fix.
- The model is not symmetric: a phone turned end for end can get a different answer (see the
  checks below); the locator fixes the orientation per camera, so a booth sees one of the two.
- One face from above: deep vs light scratches are told apart by measured width in the pipeline
  (the width at half the line's peak contrast),
  not by depth (fingernail catch), which one photo cannot show.
- The same seed gives the same training photos, but TensorFlow on several threads is not
  bit-exact, and a rerun is a different model: on the real photos its figures can differ by
  several photos per label (in bench/RESULTS.md, a rerun of the command that made booth-defects
  1.2.0 flags 4 of the 20 booth-like damaged phones where 1.2.0 flags 7). Judge a change
  to the recipe over several runs, and replace a model only with one that is better on the
  calibration part.

## Retraining for a real booth
Collect a few hundred photos per face from the booth's own cameras and lights, with defects
outlined (per-pixel masks or boxes per class), and fine-tune from this model with the real images
mixed into the synthetic stream; re-pick the thresholds on a held-out set of real photos; then
replace both files here (the metadata's sha256 must match or the booth refuses to start).
Reproduce this file with `edge-grader-train --out models --real DIR` (extra `train`; DIR is the
labelled real photos folder); after a change to the pipeline's rules,
`edge-grader-train --out models --rethreshold --real DIR` re-picks the thresholds and re-measures
the committed model without training.
"""
        + ("\n" + kept if kept else "")
    )
