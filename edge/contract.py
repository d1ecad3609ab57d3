"""The Vision Grader upload/process contract, one pydantic model per shape.

The local API serves these shapes and the cloud client parses the cloud's answers with them, so a
kiosk written against the cloud works against the booth by changing its base URL. The booth adds
its own fields to the process answer (``BoothProcessResponse``); every contract key keeps its name
and type.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from edge.statuses import FinalStatus

SECTION_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
SCORE_MIN = 0
SCORE_MAX = 100
# The contract's answer to a wrong or missing key, word for word (booth and cloud alike).
KEY_NOT_FOUND = "Invalid request: key not found"

DefectKind = Literal["scratch", "crack", "chip", "dirt"]
# The model's defect labels, the renderer's classes and the grading rules all use this order.
DEFECT_KINDS: tuple[DefectKind, ...] = get_args(DefectKind)
Grade = Literal["A", "B", "C", "D", "E"]
GRADES: tuple[Grade, ...] = get_args(Grade)


class ContractModel(BaseModel):
    """Answers from the cloud may carry keys this booth does not know yet; keep them."""

    model_config = ConfigDict(extra="allow")


class ErrorResponse(BaseModel):
    """Every non-2xx answer, local and cloud: ``{"error": "<text>"}``."""

    error: str


class UploadResponse(ContractModel):
    """``POST /api/upload`` answer. The contract shows it with and without ``path`` and ``size``: the
    booth always sends them and takes the cloud's answer either way."""

    success: Literal[True] = True
    url: str
    path: str | None = None
    size: int | None = Field(default=None, ge=0)
    section: str


class ImageRef(BaseModel):
    """One image named in a process request: a URL issued by an upload, and its section."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048)
    section: str = Field(min_length=1, max_length=32)


class ProcessRequest(BaseModel):
    """``POST /api/process`` body. The API key travels in the body, as the contract has it."""

    model_config = ConfigDict(extra="forbid")

    # Optional here so that a missing key is the contract's 401 "key not found", like a wrong one.
    key: str | None = Field(default=None, min_length=1, max_length=256)
    imei: str = Field(min_length=1, max_length=32)
    images: list[ImageRef] = Field(min_length=1, max_length=64)


class SectionAnalysis(ContractModel):
    """The contract's per-section result."""

    score: int = Field(ge=SCORE_MIN, le=SCORE_MAX)
    issues: list[str]
    recommendations: list[str]


class ProcessedImage(ContractModel):
    """One image of a process answer."""

    url: str
    section: str
    path: str
    size: int = Field(ge=0)


class ProcessResponse(ContractModel):
    """``POST /api/process`` answer, as the cloud gives it."""

    success: Literal[True] = True
    message: str = "Session created successfully"
    sessionId: str
    imei: str
    analysis: dict[str, SectionAnalysis]
    images: list[ProcessedImage]


class Defect(BaseModel):
    """One defect the booth found, in the canonical (upright) view of a section."""

    kind: DefectKind
    severity: Literal["light", "deep", "n/a"] = "n/a"
    length_mm: float = Field(ge=0)
    width_mm: float = Field(ge=0)
    area_mm2: float = Field(ge=0)
    place: str
    confidence: float = Field(ge=0, le=1)
    # Bounding box in the canonical crop, as fractions of its width and height.
    box: tuple[float, float, float, float]
    image_index: int = Field(ge=0)


class BoothSectionAnalysis(SectionAnalysis):
    """The contract's section result plus the booth's own fields.

    A section whose photos failed the quality gate has ``status="retake"`` and a ``reason``; its
    score is 0 and it is never graded.
    """

    status: Literal["graded", "retake"] = "graded"
    reason: str | None = None
    defects: list[Defect] = Field(default_factory=list)


class ModelInfo(BaseModel):
    name: str
    version: str
    sha256: str
    runtime: str


class BoothProcessResponse(ProcessResponse):
    """The process answer the booth gives: the contract's keys plus grade, model, timings, booth."""

    analysis: dict[str, BoothSectionAnalysis]  # type: ignore[assignment]
    status: FinalStatus
    grade: Grade | None
    reason: str | None = None
    # With status "review": the grade the booth would give, until a technician confirms or changes it.
    provisional_grade: Grade | None = None
    # Once a technician decided a review: who, and why (the grade is then theirs).
    reviewed_by: str | None = None
    review_note: str | None = None
    model: ModelInfo
    timings_ms: dict[str, float]
    booth_id: str
    time: str
    overlays: list[ProcessedImage] = Field(default_factory=list)
