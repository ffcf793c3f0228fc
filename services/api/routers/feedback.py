"""Free preferences between samples, and previews of datasets drawn from feedback."""
from __future__ import annotations

from fastapi import APIRouter

from services.api import feedback_datasets, studio_commands
from services.api.context import ContextDep
from services.api.studio_schemas import DatasetPreview, Preference, PreferenceCreate, PreviewCount

router = APIRouter(prefix="/api", tags=["feedback"])


@router.post("/preferences", status_code=201)
async def record_preference(body: PreferenceCreate, ctx: ContextDep) -> Preference:
    """One sample preferred over another (of any prompts)."""
    return await studio_commands.record_preference(ctx, body)


@router.post("/datasets/preview")
async def preview_dataset(body: DatasetPreview, ctx: ContextDep) -> PreviewCount:
    """How many items `POST /api/datasets` with this `kind` and `from_feedback` filter would take now."""
    return PreviewCount(count=await feedback_datasets.preview(ctx, body.kind, body.filter))
