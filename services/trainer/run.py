"""One delivery of a run request: decide whether to train, train, and say what happened as events.

The trainer reads everything it needs from the stream (the run's, its dataset's and its
experiment's histories), never from the registry's PostgreSQL, so it only depends on NATS.
"""
from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from events.base import ObjectRef
from events.bus import Bus
from events.reader import StoredEvent
from events import runs
from events.catalogue import (
    AdapterSaved, CheckpointSaved, DatasetExported, ExperimentCreated, ExperimentUpdated, RunAttemptFailed,
    RunCancelled, RunCancelRequested, RunCompleted, RunFailed, RunHandedBack, RunRequested, RunStarted,
)
from events.subjects import subject_filter
from model.training import protocol
from model.training.protocol import AdapterLine, CheckpointLine, CompletedLine, FailedLine, StartedLine
from model.training.config import TrainingConfig
from services.trainer import process
from services.trainer.archive import pack_tar, pack_zip, unpack_tar
from services.trainer.cli_lines import PlainLine, parse_line
from services.server_folders import ServerFolders
from services.trainer.settings import TrainerSettings
from services.trainer.export import DatasetUnavailable, ObjectCache, export_dataset
from services import cancels
from services.faults import retry
from services.trainer.outbox import OUTAGE_TOLERANCE, RunOutbox
from services.trainer.retention import delete_superseded

log = logging.getLogger(__name__)

ADAPTER_ID_NAMESPACE = uuid.UUID("3b0f6f0e-2d7c-4a8e-9a57-0c5e1f4d8b21")
STDERR_TAIL = 20  # lines quoted in RunFailed when the process died without saying why


class Outcome(enum.Enum):
    DONE = "done"  # the run reached a final state (or already had one): ack the request
    REQUEUE = "requeue"  # this trainer is stopping; another one resumes from the last checkpoint


@dataclass(frozen=True)
class Delivery:
    request: RunRequested
    request_seq: int  # the request's stream sequence: the dataset is exported as it was then
    attempt: int  # deliveries of this request so far, this one included


def adapter_id_for(run_id: str) -> str:
    """One adapter per run, whichever attempt registers it."""
    return str(uuid.uuid5(ADAPTER_ID_NAMESPACE, run_id))


def experiment_name(history: list[StoredEvent]) -> str:
    name = ""
    for stored in history:
        if isinstance(stored.event, (ExperimentCreated, ExperimentUpdated)) and stored.event.name is not None:
            name = stored.event.name
    return name


class RunAttempt:
    """Everything one attempt at one run needs, and its steps in order."""

    def __init__(self, bus: Bus, trainer: TrainerSettings, cache_root: Path, delivery: Delivery,
                 stop: asyncio.Event) -> None:
        self.bus = bus
        self.trainer = trainer
        self.cache_root = cache_root
        self.request = delivery.request
        self.run_id = delivery.request.run_id
        self.request_seq = delivery.request_seq
        self.attempt = delivery.attempt
        self.stop = stop  # the trainer is shutting down
        self.cancelled = asyncio.Event()  # the user cancelled this run
        self.folder = cache_root / "runs" / self.run_id / f"attempt-{self.attempt}"
        self.outbox = RunOutbox(bus, self.run_id, self.attempt)
        self.saved_checkpoints: list[ObjectRef] = []
        self.server_folders = ServerFolders(cache_root)

    # --- deciding -------------------------------------------------------------------------------
    async def handle(self) -> Outcome:
        async with self._watching_cancel():
            history = await self.bus.history("run", self.run_id)
            state = runs.fold(stored.event for stored in history)
            # Every attempt's checkpoints, oldest first: what retention may delete.
            self.saved_checkpoints = [stored.event.checkpoint for stored in history
                                      if isinstance(stored.event, CheckpointSaved)]
            decision = runs.take_delivery(state, self.run_id, self.attempt, self.trainer.max_attempts,
                                          cancel_seen=self.cancelled.is_set())
            if isinstance(decision, runs.Skip):
                log.info("run %s is already finished; skipping its request", self.run_id)
                return Outcome.DONE
            if isinstance(decision, runs.Finish):
                await self.bus.publish(decision.event)
                await self._delete_checkpoints()
                return Outcome.DONE
            try:
                outcome = await self._train(decision.resume_from)
            except Exception as error:
                # Retried (by redelivery) up to max_attempts; the next delivery reads why from this event.
                with contextlib.suppress(Exception):
                    await self.outbox.publish(RunAttemptFailed(
                        run_id=self.run_id, attempt=self.attempt,
                        error=self._public(f"{type(error).__name__}: {error}")))
                raise
            finally:
                shutil.rmtree(self.folder, ignore_errors=True)
                with contextlib.suppress(OSError):  # the run's folder, once no attempt of it is left
                    self.folder.parent.rmdir()
            if outcome is Outcome.DONE:
                await self._delete_checkpoints()
            return outcome

    async def _delete_checkpoints(self) -> None:
        """The run is finished (completed, failed or cancelled): no attempt will resume from its checkpoints."""
        self.saved_checkpoints = await delete_superseded(self.bus, self.saved_checkpoints, keep=0)

    def _watching_cancel(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Listen for a cancel from before reading the history on, so none falls in between. The API
        publishes RunCancelled itself for a run it still saw queued, so that counts too."""
        return cancels.watching(self.bus, [subject_filter(self.bus.subject_root, "run", self.run_id, event.event_name())
                                           for event in (RunCancelRequested, RunCancelled)], self.cancelled)

    # --- training -------------------------------------------------------------------------------
    async def _train(self, checkpoint: CheckpointSaved | None) -> Outcome:
        config = self.request.config
        if self.trainer.device:
            config = config.model_copy(update={"device": self.trainer.device})
        await self.bus.publish(RunStarted(run_id=self.run_id, attempt=self.attempt, trainer_id=self.trainer.trainer_id))
        log.info("run %s: attempt %d on %s", self.run_id, self.attempt, self.trainer.trainer_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        async with self.outbox.flushing():
            cache = ObjectCache(self.bus, self.cache_root / "objects")
            try:
                dataset = await export_dataset(self.bus, cache, self.request.dataset_id, config.dataset_type,
                                               self.request_seq, self.folder)
            except DatasetUnavailable as error:
                await self.outbox.publish(RunFailed(run_id=self.run_id, attempt=self.attempt,
                                                    error=self._public(str(error))))
                return Outcome.DONE
            resume = await self._fetch_checkpoint(checkpoint) if checkpoint else None
            if self.cancelled.is_set():
                await self.outbox.publish(RunCancelled(run_id=self.run_id, attempt=self.attempt))
                return Outcome.DONE
            config_path = process.write_config(config, self.folder / "config.json")
            name = await self._adapter_name()
            command = process.training_command(
                self.trainer.python, self.trainer.gpus, dataset, self.folder / "output", name, config_path,
                self.cache_root / "features", resume)
            return await self._supervise(await process.start(command, self.folder), config, name)

    async def _fetch_checkpoint(self, checkpoint: CheckpointSaved) -> Path:
        archive = await self.bus.get_file(checkpoint.checkpoint, self.folder / "resume.tar")
        folder = await asyncio.to_thread(unpack_tar, archive, self.folder / "resume")
        archive.unlink()
        self.outbox.add_log(f"[trainer] resuming from the checkpoint of step {checkpoint.step}")
        return folder

    async def _adapter_name(self) -> str:
        experiment = experiment_name(await self.bus.history("experiment", self.request.experiment_id))
        return f"{experiment}-{self.request.name}" if experiment else self.request.name

    async def _supervise(self, child: asyncio.subprocess.Process, config: TrainingConfig, name: str) -> Outcome:
        """Turn the child's output into events until it exits; stop it on cancel or shutdown."""
        stderr_tail: list[str] = []

        async def read_stderr() -> None:
            async for line in process.lines(child.stderr):
                self.outbox.add_log(self._public(line))
                stderr_tail[:] = [*stderr_tail[-(STDERR_TAIL - 1):], line]

        async def stop_on_request() -> None:
            waits = [asyncio.create_task(self.cancelled.wait()), asyncio.create_task(self.stop.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
            process.terminate(child)

        stderr_task = asyncio.create_task(read_stderr())
        stopper = asyncio.create_task(stop_on_request())
        adapter: AdapterLine | None = None
        completed: CompletedLine | None = None
        failed: FailedLine | None = None
        try:
            async for text in process.lines(child.stdout):
                line = parse_line(text, self.run_id, self.attempt)
                if isinstance(line, StartedLine):
                    # The CLI read the exported dataset: its digest is the one checkpoints and the adapter carry.
                    await self.outbox.publish(DatasetExported(run_id=self.run_id, attempt=self.attempt,
                                                              rows=line.rows, digest=line.dataset_digest))
                elif isinstance(line, CheckpointLine):
                    if not self.cancelled.is_set():
                        await self._upload_checkpoint(line)
                elif isinstance(line, AdapterLine):
                    adapter = line
                elif isinstance(line, CompletedLine):
                    completed = line
                elif isinstance(line, FailedLine):
                    failed = line
                elif isinstance(line, PlainLine):
                    self.outbox.add_log(self._public(line.text))
                else:
                    self.outbox.add_loss(line)
            await stderr_task
            exit_code = await child.wait()
        finally:
            stopper.cancel()
            if child.returncode is None:  # we are being cancelled ourselves: take the child along
                child.kill()
                await child.wait()
        log.info("run %s: training process exited with %s", self.run_id, exit_code)

        if exit_code == protocol.EXIT_OK and completed and adapter:
            await self._register_adapter(adapter, completed, config, name)
            return Outcome.DONE
        if self.cancelled.is_set():
            await self.outbox.publish(RunCancelled(run_id=self.run_id, attempt=self.attempt))
            return Outcome.DONE
        if self.stop.is_set():
            await self.outbox.publish(RunHandedBack(run_id=self.run_id, attempt=self.attempt))
            return Outcome.REQUEUE
        if failed is not None:
            error = failed.error
        else:
            error = f"training process exited with code {exit_code}"
            if stderr_tail:
                error += ":\n" + "\n".join(stderr_tail)
        await self.outbox.publish(RunFailed(run_id=self.run_id, attempt=self.attempt, error=self._public(error)))
        return Outcome.DONE

    def _public(self, text: str) -> str:
        """`text` as clients may see it: the server's folders shown as placeholders."""
        return self.server_folders.hidden(text)

    # --- uploads --------------------------------------------------------------------------------
    async def _upload_checkpoint(self, checkpoint: CheckpointLine) -> None:
        archive = await asyncio.to_thread(pack_tar, checkpoint.path, self.folder / f"{checkpoint.path.name}.tar")
        # Named per attempt: an object an event refers to is never overwritten by a later attempt.
        name = f"{self.run_id}/attempt-{self.attempt}/{checkpoint.path.name}.tar"
        ref = await retry(lambda: self.bus.put_file(self.bus.checkpoints_bucket, name, archive),
                          f"uploading the checkpoint of step {checkpoint.step}", give_up_after=OUTAGE_TOLERANCE)
        archive.unlink()
        await self.outbox.publish(CheckpointSaved(run_id=self.run_id, attempt=self.attempt,
                                                  step=checkpoint.step, checkpoint=ref))
        self.saved_checkpoints = await delete_superseded(self.bus, [*self.saved_checkpoints, ref])

    async def _register_adapter(self, adapter: AdapterLine, completed: CompletedLine, config: TrainingConfig,
                                name: str) -> None:
        adapter_id = adapter_id_for(self.run_id)
        archive = await asyncio.to_thread(pack_zip, adapter.path, self.folder / "adapter.zip")
        ref = await retry(
            lambda: self.bus.put_file(self.bus.adapters_bucket, f"{adapter_id}/attempt-{self.attempt}.zip", archive),
            "uploading the adapter", give_up_after=OUTAGE_TOLERANCE)
        lora_config = config.model_dump(include={"lora_r", "lora_alpha", "lora_dropout", "target_modules"})
        await self.outbox.publish(AdapterSaved(
            run_id=self.run_id, adapter_id=adapter_id, experiment_id=self.request.experiment_id, name=name,
            adapter=ref, base_model=config.base_model, dataset_type=config.dataset_type,
            lora_config=lora_config, final_loss=completed.final_loss,
        ))
        await self.outbox.publish(RunCompleted(
            run_id=self.run_id, attempt=self.attempt, final_loss=completed.final_loss,
            best_validation_loss=completed.best_validation_loss, steps=completed.steps,
            seconds=completed.seconds, adapter_id=adapter_id,
        ))

