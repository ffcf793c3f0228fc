"""Request and response bodies of the studio loop (generations, samples and their feedback,
comparisons, datasets drawn from feedback, lineage): the public HTTP contract, keep these names."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from events.catalogue import Choice, DatasetKind, FeedbackFilter, RatingCriterion
from events.comparisons import ComparisonStatus
from events.generations import FINISHED, GenerationStatus
from services.api.validation import Moment, Name, Text

Tag = Annotated[Name, Field(max_length=64)]
Prompt = Annotated[Name, Field(max_length=2000)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --- requests -----------------------------------------------------------------------------------
class GenerationParameters(Body):
    duration_seconds: float = Field(8.0, gt=0, le=120, description="Seconds of audio per sample")
    guidance_scale: float = Field(3.0, ge=1, le=20, description="Classifier-free guidance (1: off)")
    temperature: float = Field(1.0, gt=0, le=10)
    top_k: int = Field(250, ge=0, le=2048, description="0: no top-k")
    top_p: float = Field(0.0, ge=0, le=1, description="0: no nucleus sampling")
    base_model: Name | None = Field(
        None, max_length=1000,
        description="Default: the adapter's base model, or the default MusicGen without an adapter")


class GenerationCreate(GenerationParameters):
    prompt: Prompt
    adapter_id: Text | None = Field(None, description="null: the base model alone")
    seed: int = Field(0, ge=0, le=2**32 - 1)
    num_samples: int = Field(1, ge=1, le=8, description="Generated in one batched call")


class RatingCreate(Body):
    rating: int = Field(ge=1, le=5)
    criterion: RatingCriterion = "overall"


class TagCreate(Body):
    tag: Tag


class PreferenceCreate(Body):
    chosen_sample_id: Text
    rejected_sample_id: Text


class SideBody(Body):
    adapter_id: Text | None = Field(description="null: the base model")


class ComparisonCreate(GenerationParameters):
    name: Name
    a: SideBody
    b: SideBody
    prompts: list[Prompt] = Field(min_length=1, max_length=50)
    samples_per_prompt: int = Field(1, ge=1, le=8)
    seed: int = Field(0, ge=0, le=2**32 - 1 - 50, description="Prompt i is generated with seed + i on both sides")


class VoteCreate(Body):
    pair_id: Text
    choice: Choice = Field(description="first | second (as shown) | equal")


class FeedbackFilterBody(FeedbackFilter):
    """Supervised datasets take samples by `adapter_id`, `min_rating`/`max_rating` (their latest
    `overall` rating), `tags` (all of them), `q` (in the prompt, any case) and `since`/`until` (when
    generated). Preference datasets take comparison votes (`comparison_ids`; winner chosen, loser
    rejected, ties left out) and, with `include_free_pairs`, free preferences, filtered by `q` (the
    chosen sample's prompt) and `since`/`until` (when voted)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    tags: list[Tag] = Field(default_factory=list, max_length=20)
    adapter_id: Text | None = None
    q: Text | None = Field(None, max_length=200)
    since: Moment | None = Field(None, description="With its time zone, e.g. 2024-05-01T00:00:00Z")
    until: Moment | None = Field(None, description="With its time zone; later than since")
    comparison_ids: list[Text] = Field(default_factory=list, max_length=100)


class DatasetPreview(Body):
    kind: DatasetKind
    filter: FeedbackFilterBody = Field(default_factory=FeedbackFilterBody)


# --- responses ----------------------------------------------------------------------------------
class Sample(BaseModel):
    id: str
    generation_id: str
    index: int
    prompt: str
    adapter_id: str | None
    base_model: str
    seed: int
    format: str
    duration_seconds: float
    sample_rate: int
    channels: int
    size: int
    sha256: str
    seconds_taken: float
    favorite: bool
    ratings: dict[str, int] = Field(description="The latest rating per criterion")
    tags: list[str]
    audio_url: str
    created_at: datetime


class Generation(BaseModel):
    id: str
    status: GenerationStatus
    prompt: str
    adapter_id: str | None
    base_model: str
    duration_seconds: float
    seed: int
    num_samples: int
    guidance_scale: float
    temperature: float
    top_k: int
    top_p: float
    comparison_id: str | None
    cancel_requested: bool
    attempt: int
    worker_id: str | None
    steps_done: int | None
    steps_total: int | None
    seconds_taken: float | None
    error: str | None
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    samples: list[Sample]

    @computed_field(description="Whether the status is final: nothing changes it any more")  # type: ignore[prop-decorator]
    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class Preference(BaseModel):
    id: str
    chosen_sample_id: str
    rejected_sample_id: str
    created_at: datetime


class ComparisonGenerationStatus(BaseModel):
    generation_id: str
    side: str
    prompt_index: int
    status: GenerationStatus


class Comparison(BaseModel):
    id: str
    name: str
    a: dict[str, str | None]
    b: dict[str, str | None]
    prompts: list[str]
    samples_per_prompt: int
    seed: int
    status: ComparisonStatus
    pairs_total: int
    pairs_ready: int = Field(description="Pairs whose two samples exist")
    pairs_voted: int
    generations: list[ComparisonGenerationStatus]
    created_at: datetime


class NextPair(BaseModel):
    pair_id: str
    prompt: str
    first_sample_id: str
    second_sample_id: str
    first_audio_url: str
    second_audio_url: str


class ComparisonResults(BaseModel):
    votes: int
    a_wins: int
    b_wins: int
    ties: int
    a_win_rate: float | None = Field(description="a_wins / (a_wins + b_wins); null while no vote is decisive")
    a_win_rate_ci: tuple[float, float] | None = Field(description="95 % Wilson interval of a_win_rate")
    p_value: float | None = Field(description="Exact two-sided sign test, ties left out")


class PreviewCount(BaseModel):
    count: int


class LineageSample(BaseModel):
    id: str
    generation_id: str
    prompt: str
    adapter_id: str | None


class LineageComparison(BaseModel):
    id: str
    name: str
    a_adapter_id: str | None
    b_adapter_id: str | None
    votes_taken: int = Field(description="Votes of this comparison the dataset took")


class LineageDataset(BaseModel):
    id: str
    name: str
    kind: DatasetKind
    filter: dict[str, Any] | None = Field(description="The feedback filter it was drawn with; null if uploaded")
    samples: list[LineageSample]
    comparisons: list[LineageComparison]


class LineageRun(BaseModel):
    id: str
    name: str
    status: str
    dataset: LineageDataset


class Lineage(BaseModel):
    """An adapter, the run that trained it and its dataset, and (recursively) the adapters whose
    samples that dataset was drawn from."""

    adapter_id: str
    name: str
    base_model: str
    run: LineageRun
    learned_from: list["Lineage"] = Field(description="Lineages of the adapters that generated its samples")
    learned_from_base_model: bool = Field(description="Some of its samples came from the base model alone")
