"""`edge-grader`: run the booth, check a config, trigger a session, grade photos, simulate the cloud."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.timefmt import utc_iso

if TYPE_CHECKING:
    from collections.abc import Callable

    from edge.config.root import AppConfig

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
CLI_TIMEOUT_S = 10.0


def _load(path: Path) -> AppConfig:
    from edge.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        sys.stderr.write(f"config {exc.path} is not usable:\n")
        for problem in exc.problems:
            sys.stderr.write(f"  - {problem}\n")
        raise SystemExit(EXIT_CONFIG) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.config)
    from edge.grade.runtime import ModelError, read_model

    # The unit runs this before the daemon: a missing or corrupt model stops the start here, with
    # the reason, instead of a daemon that fails after it.
    try:
        read_model(config.model.path)
    except ModelError as exc:
        sys.stderr.write(f"config {args.config} is not usable:\n  - model.path: {exc}\n")
        return EXIT_CONFIG
    sys.stdout.write(f"{args.config}: ok (booth {config.booth.id}, {len(config.rig.sections)} sections)\n")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    from edge.daemon.logs import setup_logging
    from edge.daemon.run import run
    from edge.grade.runtime import ModelError

    setup_logging(args.log_level or config.booth.log_level)
    try:
        return run(config)
    except ModelError as exc:
        logger.error("model cannot be used: %s", exc)
        return EXIT_FAILED


def _control(args: argparse.Namespace, request: dict[str, Any], timeout_s: float) -> int:
    from edge.daemon.wiring import control_socket_path
    from edge.trigger.control import AnswerLostError, call

    config = _load(args.config)
    path = control_socket_path(config)
    try:
        answer = call(path, request, timeout_s)
    except AnswerLostError as exc:
        lost = {"sessionId": exc.first["sessionId"]} if exc.first else {}
        lost["error"] = "the booth daemon stopped before it answered (is it still running?)"
        sys.stdout.write(json.dumps(lost, indent=2) + "\n")
        sys.stderr.write(f"error: {lost['error']}\n")
        return EXIT_FAILED
    except OSError as exc:
        sys.stderr.write(f"cannot reach the booth daemon at {path}: {exc.strerror or exc} (is it running?)\n")
        return EXIT_FAILED
    sys.stdout.write(json.dumps(answer, indent=2) + "\n")
    return EXIT_FAILED if "error" in answer else EXIT_OK


def cmd_trigger(args: argparse.Namespace) -> int:
    request: dict[str, Any] = {"cmd": "trigger", "imei": args.imei, "request_id": args.request_id}
    if args.wait:
        request |= {"wait": True, "timeout_s": args.timeout}
    return _control(args, request, args.timeout + CLI_TIMEOUT_S if args.wait else CLI_TIMEOUT_S)


def cmd_arm(args: argparse.Namespace) -> int:
    return _control(args, {"cmd": "arm", "imei": args.imei}, CLI_TIMEOUT_S)


def cmd_status(args: argparse.Namespace) -> int:
    return _control(args, {"cmd": "status"}, CLI_TIMEOUT_S)


def _section_file(value: str) -> tuple[str, Path]:
    section, sep, path = value.partition("=")
    if not sep or not section or not path:
        raise argparse.ArgumentTypeError(f"{value!r}: expected SECTION=FILE, e.g. front=front-1.jpg")
    return section, Path(path)


def cmd_grade(args: argparse.Namespace) -> int:
    from edge.config.model import GradingConfig, ModelConfig
    from edge.contract import BoothProcessResponse, ProcessedImage
    from edge.grade.decode import ImageError
    from edge.grade.pipeline import Grader
    from edge.grade.runtime import ModelError
    from edge.imei import InvalidImeiError, validate_imei

    try:
        imei = validate_imei(args.imei)
    except InvalidImeiError as exc:
        sys.stderr.write(json.dumps({"error": str(exc)}) + "\n")
        return EXIT_USAGE
    if args.config:
        config = _load(args.config)
        model_config, grading_config, booth_id = config.model, config.grading, config.booth.id
    else:
        model_config, grading_config, booth_id = ModelConfig(), GradingConfig(), "cli"
    if args.model:
        model_config = model_config.model_copy(update={"path": args.model})
    shots: list[tuple[str, bytes]] = []
    images: list[ProcessedImage] = []
    for section, path in args.section:
        try:
            data = path.read_bytes()
        except OSError as exc:
            sys.stderr.write(json.dumps({"error": f"cannot read {path}: {exc.strerror}"}) + "\n")
            return EXIT_USAGE
        shots.append((section, data))
        images.append(ProcessedImage(url=path.resolve().as_uri(), section=section, path=str(path), size=len(data)))
    try:
        grader = Grader(model_config, grading_config)
    except ModelError as exc:
        sys.stderr.write(json.dumps({"error": f"model cannot be used: {exc}"}) + "\n")
        return EXIT_FAILED
    try:
        grade = grader.grade(shots, progress=_progress(len(shots)))
    except ImageError as exc:
        sys.stderr.write(json.dumps({"error": f"Invalid request: {exc}"}) + "\n")
        return EXIT_USAGE
    response = BoothProcessResponse(
        sessionId=str(uuid.uuid4()),
        imei=imei,
        analysis=grade.analysis,
        images=images,
        status=grade.status,
        grade=grade.grade,
        reason=grade.reason,
        provisional_grade=grade.provisional_grade,
        model=grader.info,
        timings_ms=grade.timings_ms,
        booth_id=booth_id,
        time=utc_iso(),
    )
    if args.overlays:
        args.overlays.mkdir(parents=True, exist_ok=True)
        for section, index, data in grade.overlays:
            (args.overlays / f"{section}-{index + 1}-overlay.jpg").write_bytes(data)
    if args.json:
        sys.stdout.write(response.model_dump_json(indent=2) + "\n")
    else:
        sys.stdout.write(_human(response))
    return EXIT_OK


def _progress(total: int) -> Callable[[int], None] | None:
    if total < 2 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="image", file=sys.stderr, leave=False)

    def advance(done: int) -> None:
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return advance


def _human(response: Any) -> str:
    lines = [
        f"session {response.sessionId}: {response.status}, grade {response.grade or '-'}"
        + (f" (provisional {response.provisional_grade})" if response.provisional_grade else "")
        + (f" ({response.reason})" if response.reason else ""),
    ]
    for section, analysis in response.analysis.items():
        state = f"retake: {analysis.reason}" if analysis.status == "retake" else f"score {analysis.score}"
        lines.append(f"  {section}: {state}")
        lines.extend(f"    issue: {issue}" for issue in analysis.issues)
        lines.extend(f"    advice: {rec}" for rec in analysis.recommendations)
    lines.append(
        f"  model {response.model.name} {response.model.version}, {response.timings_ms.get('total', 0):.0f} ms"
    )
    return "\n".join(lines) + "\n"


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Photograph the empty booth with one camera and store it as that camera's background."""
    from edge.capture.calibrate import CalibrationError, calibrate
    from edge.capture.camera import make_camera
    from edge.capture.errors import CaptureError
    from edge.capture.rig import CaptureRig

    config = _load(args.config)
    if args.camera not in config.cameras:
        sys.stderr.write(f"no camera {args.camera!r} in {args.config}; cameras: {', '.join(config.cameras)}\n")
        return EXIT_USAGE
    # The rig with this camera alone: it opens and shoots under its section's lights, as sessions do.
    rig = CaptureRig(config, cameras={args.camera: make_camera(args.camera, config.cameras[args.camera])})
    try:
        rig.open()
        path = calibrate(config, args.camera, lambda: rig.shoot(args.camera).image, force=args.force)
    except (CalibrationError, CaptureError) as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_FAILED
    finally:
        rig.close()
    sys.stdout.write(f"camera {args.camera}: empty booth stored in {path}\n")
    return EXIT_OK


# The cloud simulator, the photo renderer and the training script are development tools: the
# production install leaves them out (see pyproject.toml), a development install has them.
DEV_TOOLS_HINT = "is a development tool, not in a production install: pip install -e '.[{extras}]' in a clone"


def cmd_cloud_sim(args: argparse.Namespace) -> int:
    from edge.cloudsim.__main__ import run as run_sim

    return run_sim(args)


def cmd_dev_tool_missing(args: argparse.Namespace) -> int:
    sys.stderr.write(f"edge-grader {args.command} {DEV_TOOLS_HINT.format(extras='dev')}\n")
    return 2


def train_main() -> int:
    """``edge-grader-train``: the training script, where it is installed."""
    try:
        from edge.train.__main__ import main as train
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("edge."):
            raise
        sys.stderr.write(f"edge-grader-train {DEV_TOOLS_HINT.format(extras='dev,train')}\n")
        return 2
    try:
        return int(train() or 0)
    except ModuleNotFoundError as exc:
        if exc.name not in ("keras", "tensorflow"):
            raise
        need = f"needs the train extra ({exc.name} is missing): pip install -e '.[dev,train]'"
        sys.stderr.write(f"edge-grader-train {need}\n")
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-grader", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the booth daemon")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate a config file and exit")
    p.add_argument("config", type=Path)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("trigger", help="start a session on the running daemon")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--imei", required=True)
    p.add_argument("--request-id")
    p.add_argument("--wait", action="store_true", help="wait for the result and print it")
    p.add_argument("--timeout", type=float, default=120.0)
    p.set_defaults(func=cmd_trigger)

    p = sub.add_parser("arm", help="set the IMEI for the next GPIO (button/drawer) trigger")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--imei", required=True)
    p.set_defaults(func=cmd_arm)

    p = sub.add_parser("status", help="what the running daemon is doing")
    p.add_argument("--config", type=Path, required=True)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("grade", help="grade photos on this machine and print the process answer")
    p.add_argument("--imei", required=True)
    p.add_argument("--section", type=_section_file, action="append", required=True, metavar="SECTION=FILE")
    p.add_argument("--json", action="store_true", help="print the contract's JSON answer")
    p.add_argument("--config", type=Path, help="take model and grading settings from this config")
    p.add_argument("--model", type=Path, help="a .tflite model (its metadata .json beside it)")
    p.add_argument("--overlays", type=Path, help="write annotated overlay JPEGs into this folder")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("calibrate", help="photograph the empty booth with one camera (helps find white phones)")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--camera", required=True, help="camera name from the config")
    p.add_argument("--force", action="store_true", help="store even if something phone-shaped is in view")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("cloud-sim", help="run the Vision Grader cloud simulator (development installs)")
    try:
        from edge.cloudsim.__main__ import add_arguments
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("edge."):
            raise
        p.set_defaults(func=cmd_dev_tool_missing)
    else:
        add_arguments(p)
        p.set_defaults(func=cmd_cloud_sim)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    # A development tool's options are unknown where the tool is not installed: say so, not argparse.
    if unknown and args.func is not cmd_dev_tool_missing:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
