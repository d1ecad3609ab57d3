"""On-device grading: quality gate, device location, TFLite defect model, score and grade."""

from edge.grade.decode import ImageError
from edge.grade.pipeline import Grader, SessionGrade
from edge.grade.runtime import ModelError

__all__ = ["Grader", "ImageError", "ModelError", "SessionGrade"]
