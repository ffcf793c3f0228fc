"""A few hundred events of the kinds a real installation sees, late and repeated ones included."""
from __future__ import annotations

import hashlib

from events.base import AudioFile, Event, ObjectRef
from events.catalogue import (
    AdapterSaved, CheckpointSaved, ClipAdded, ClipRemoved, DatasetCreated, DatasetExported, ExperimentCreated,
    ExperimentUpdated, LossReported, PreferencePairAdded, PreferencePairRemoved, RunCancelled, RunCancelRequested, RunCompleted,
    RunFailed, RunLogged, RunRequested, RunStarted,
)


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def audio(name: str) -> AudioFile:
    return AudioFile(bucket="ns-clips", name=name, sha256=digest_of(name), size=1000, filename=f"{name}.wav",
                     format="WAV", duration_seconds=2.5, sample_rate=32_000, channels=1)


def ref(bucket: str, name: str) -> ObjectRef:
    return ObjectRef(bucket=bucket, name=name, sha256=digest_of(name), size=4096)


def config(dataset_type: str = "supervised", **overrides: object) -> dict:
    return {"dataset_type": dataset_type, "base_model": "tiny", "num_epochs": 2, "batch_size": 2,
            "learning_rate": 1e-4, "lora_r": 8, "lora_alpha": 16, **overrides}


def losses(run_id: str, attempt: int, steps: range, split: str = "train") -> list[Event]:
    return [LossReported(run_id=run_id, attempt=attempt, split=split, step=step, epoch=step / 10,
                         loss=round(5.0 / (step + 1) + attempt / 100, 6), learning_rate=1e-4, grad_norm=0.5,
                         metrics={"accuracy": step / 100} if split == "validation" else {})
            for step in steps]


def datasets_and_experiments() -> list[Event]:
    events: list[Event] = [
        DatasetCreated(dataset_id="drums", name="Drums", kind="supervised", description="loops"),
        DatasetCreated(dataset_id="pads", name="Pads", kind="supervised"),
        DatasetCreated(dataset_id="taste", name="Taste", kind="preference"),
    ]
    events += [ClipAdded(dataset_id=dataset, clip_id=f"{dataset}-{n}", prompt=f"{dataset} {n}", audio=audio(f"{dataset}-{n}"))
               for dataset in ("drums", "pads") for n in range(12)]
    events += [PreferencePairAdded(dataset_id="taste", pair_id=f"pair-{n}", prompt=f"warm {n}",
                                   chosen_clip_id=f"chosen-{n}", chosen=audio(f"chosen-{n}"),
                                   rejected_clip_id=f"rejected-{n}", rejected=audio(f"rejected-{n}"))
               for n in range(8)]
    events += [
        ExperimentCreated(experiment_id="beat", name="Beat", dataset_id="drums", config={"lora_r": 8}),
        ExperimentCreated(experiment_id="dpo", name="DPO", dataset_id="taste", config={}),
        ExperimentUpdated(experiment_id="beat", update_id="u1", description="faster"),
        ExperimentUpdated(experiment_id="beat", update_id="u2", dataset_id="pads", config={"lora_r": 16}),
        ExperimentUpdated(experiment_id="dpo", update_id="u3", name="DPO v2"),
    ]
    return events


def run_requests() -> list[Event]:
    return [RunRequested(run_id=run_id, experiment_id=experiment, dataset_id=dataset, name=run_id,
                         config=config("preference" if experiment == "dpo" else "supervised"))
            for run_id, experiment, dataset in (
                ("done", "beat", "pads"), ("broken", "beat", "pads"), ("resumed", "beat", "pads"),
                ("stopped-early", "dpo", "taste"), ("stopped-running", "beat", "pads"), ("waiting", "dpo", "taste"))]


def run_lifecycles() -> list[Event]:
    """Every run status, one run each; `resumed` crashes in attempt 1 and re-reports steps in attempt 2."""
    events: list[Event] = [
        RunStarted(run_id="done", attempt=1, trainer_id="t1"),
        DatasetExported(run_id="done", attempt=1, rows=12, digest=digest_of("pads")),
        *losses("done", 1, range(80)),
        *losses("done", 1, range(0, 80, 10), split="validation"),
        RunLogged(run_id="done", attempt=1, chunk=0, lines=["loading", "training"]),
        CheckpointSaved(run_id="done", attempt=1, step=20, checkpoint=ref("ns-checkpoints", "done-20")),
        CheckpointSaved(run_id="done", attempt=1, step=40, checkpoint=ref("ns-checkpoints", "done-40")),
        AdapterSaved(run_id="done", adapter_id="adapter-done", experiment_id="beat", name="Beat-done",
                     adapter=ref("ns-adapters", "adapter-done"), base_model="tiny", dataset_type="supervised",
                     lora_config={"r": 8, "alpha": 16}, final_loss=0.12),
        RunLogged(run_id="done", attempt=1, chunk=1, lines=["saved"]),
        RunCompleted(run_id="done", attempt=1, final_loss=0.12, best_validation_loss=0.2, steps=80, seconds=12.5,
                     adapter_id="adapter-done"),

        RunStarted(run_id="broken", attempt=1, trainer_id="t2"),
        *losses("broken", 1, range(20)),
        RunFailed(run_id="broken", attempt=1, error="CUDA out of memory"),

        RunStarted(run_id="resumed", attempt=1, trainer_id="t1"),
        *losses("resumed", 1, range(30)),
        CheckpointSaved(run_id="resumed", attempt=1, step=20, checkpoint=ref("ns-checkpoints", "resumed-20")),
        RunStarted(run_id="resumed", attempt=2, trainer_id="t2"),
        DatasetExported(run_id="resumed", attempt=2, rows=12, digest=digest_of("pads")),
        *losses("resumed", 2, range(20, 60)),
        RunLogged(run_id="resumed", attempt=2, chunk=0, lines=["resuming from step 20"]),

        RunCancelRequested(run_id="stopped-early"),
        RunCancelled(run_id="stopped-early", attempt=0),

        RunStarted(run_id="stopped-running", attempt=1, trainer_id="t1"),
        *losses("stopped-running", 1, range(60)),
        RunCancelRequested(run_id="stopped-running"),
        RunCancelled(run_id="stopped-running", attempt=1, reason="cancelled by user"),
    ]
    return events


def late_events() -> list[Event]:
    """What arrives after the fact: none of it may move a run backwards, bring a removed clip back or
    duplicate a row."""
    return [
        ClipRemoved(dataset_id="drums", clip_id="drums-3"),
        ClipAdded(dataset_id="drums", clip_id="drums-3", prompt="drums 3", audio=audio("drums-3")),  # a retry, after
        ClipRemoved(dataset_id="pads", clip_id="drums-5"),  # names another dataset's clip: changes nothing
        PreferencePairRemoved(dataset_id="taste", pair_id="pair-2"),
        RunStarted(run_id="done", attempt=2, trainer_id="t3"),  # a redelivered request, after completion
        RunFailed(run_id="done", attempt=2, error="too late"),
        RunStarted(run_id="resumed", attempt=1, trainer_id="t1"),  # attempt 1 again, after attempt 2 began
        *losses("resumed", 1, range(25, 30)),  # attempt 1's late reports of steps attempt 2 re-reported
        RunCompleted(run_id="broken", attempt=1, final_loss=1.0, steps=5, seconds=1.0, adapter_id="x"),
        RunStarted(run_id="stopped-early", attempt=1, trainer_id="t2"),
        RunCancelRequested(run_id="done"),
    ]


def mixed_history() -> list[Event]:
    return datasets_and_experiments() + run_requests() + run_lifecycles() + late_events()
