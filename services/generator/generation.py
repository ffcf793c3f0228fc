"""One delivery of a generation request: decide whether to generate, generate the request's samples
in one batched call, store them, and say what happened as events.

Like the trainer, the worker reads everything from the stream and the object store, never from
the registry's PostgreSQL.
"""
from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from events import generations
from events.base import AudioFile
from events.bus import Bus
from events.catalogue import (
    GenerationCancelled, GenerationCancelRequested, GenerationCompleted, GenerationFailed, GenerationHandedBack,
    GenerationProgressed, GenerationRequested, GenerationStarted, SampleGenerated,
)
from events.subjects import subject_filter
from model.decoding import GenerationCancelled as DecodingStopped
from model.errors import InputError
from model.generate import GeneratedSample, GenerationRequest, MusicGenerator, write_audio
from services import cancels
from services.generator.settings import GeneratorSettings
from services.generator.models import AdapterFolders, BadAdapter, BaseModels, warm
from services.server_folders import ServerFolders

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0  # seconds between GenerationProgressed events of one attempt (and the last step)


class Outcome(enum.Enum):
    DONE = "done"  # the generation reached a final state (or already had one): ack the request
    REQUEUE = "requeue"  # this worker is stopping; another one generates it again


class GenerationAttempt:
    """Everything one attempt at one generation needs, and its steps in order."""

    def __init__(self, bus: Bus, generator: GeneratorSettings, models: BaseModels, adapters: AdapterFolders,
                 server_folders: ServerFolders, request: GenerationRequested, attempt: int, stop: asyncio.Event) -> None:
        self.bus = bus
        self.generator = generator
        self.models = models
        self.adapters = adapters
        self.server_folders = server_folders
        self.request = request
        self.generation_id = request.generation_id
        self.attempt = attempt
        self.stop = stop  # the worker is shutting down
        self.cancelled = threading.Event()  # the user cancelled it; read by the generating thread

    async def handle(self) -> Outcome:
        async with self._watching_cancel():
            history = await self.bus.history("generation", self.generation_id)
            state = generations.fold(stored.event for stored in history)
            decision = generations.take_delivery(state, self.generation_id, self.attempt, self.generator.max_attempts,
                                                 cancel_seen=self.cancelled.is_set())
            if isinstance(decision, generations.Skip):
                log.info("generation %s is already finished; skipping its request", self.generation_id)
                return Outcome.DONE
            if isinstance(decision, generations.Finish):
                await self.bus.publish(decision.event)
                return Outcome.DONE
            await self.bus.publish(GenerationStarted(generation_id=self.generation_id, attempt=self.attempt,
                                                     worker_id=self.generator.worker_id))
            log.info("generation %s: attempt %d on %s", self.generation_id, self.attempt, self.generator.worker_id)
            try:
                return await self._generate(state.samples)
            except (InputError, BadAdapter) as error:  # the request itself is wrong: no attempt would do better
                await self.bus.publish(GenerationFailed(generation_id=self.generation_id, attempt=self.attempt,
                                                        error=self.server_folders.hidden(str(error))))
                return Outcome.DONE

    def _watching_cancel(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Listen for a cancel from before reading the history on, so none falls in between. The
        worker's own stop interrupts generating too (the request then goes to another worker)."""
        subject = subject_filter(self.bus.subject_root, "generation", self.generation_id,
                                 GenerationCancelRequested.event_name())
        return cancels.watching(self.bus, [subject], self.cancelled)

    async def _generate(self, stored: frozenset[int]) -> Outcome:
        """Generate every sample (the batch is what makes them seed-exact) and store those that an
        earlier attempt did not (`stored`)."""
        request = self.request
        if request.adapter_id is None:
            generator = await self.models.get(request.base_model)
        elif request.adapter is None:
            raise BadAdapter(f"the request names adapter '{request.adapter_id}' but carries no weights")
        else:
            generator = await warm(self.models, self.adapters, request.base_model, request.adapter_id,
                                   request.adapter)
        wanted = GenerationRequest(
            prompt=request.prompt, adapter_id=request.adapter_id, duration_seconds=request.duration_seconds,
            seed=request.seed, num_samples=request.num_samples, guidance_scale=request.guidance_scale,
            temperature=request.temperature, top_k=request.top_k,
            top_p=request.top_p or 1.0)  # the API's top_p 0 turns nucleus sampling off; the model's 1 does
        started = time.perf_counter()
        try:
            samples = await self._run_in_thread(generator, wanted)
        except DecodingStopped:
            if self.cancelled.is_set():
                await self.bus.publish(GenerationCancelled(generation_id=self.generation_id, attempt=self.attempt))
                return Outcome.DONE
            # said before the request goes back, so the next delivery does not count this attempt as failed
            await self.bus.publish(GenerationHandedBack(generation_id=self.generation_id, attempt=self.attempt))
            return Outcome.REQUEUE
        for index, sample in enumerate(samples):
            if index not in stored:
                await self._store(index, sample)
        await self.bus.publish(GenerationCompleted(generation_id=self.generation_id, attempt=self.attempt,
                                                   seconds_taken=time.perf_counter() - started))
        return Outcome.DONE

    async def _run_in_thread(self, generator: MusicGenerator, wanted: GenerationRequest) -> list[GeneratedSample]:
        """`generator.generate` in a thread, stopping on cancel or the worker's stop, with progress
        published every PROGRESS_INTERVAL seconds and at the last step (before any sample)."""
        loop = asyncio.get_running_loop()
        stopping = threading.Event()
        stop_watch = asyncio.create_task(self.stop.wait())
        stop_watch.add_done_callback(lambda _: stopping.set())
        published: list[Future] = []
        last_published = time.monotonic()

        def on_progress(done: int, total: int) -> None:
            nonlocal last_published
            if done < total and time.monotonic() - last_published < PROGRESS_INTERVAL:
                return
            last_published = time.monotonic()
            event = GenerationProgressed(generation_id=self.generation_id, attempt=self.attempt, steps_done=done,
                                         steps_total=total)
            published.append(asyncio.run_coroutine_threadsafe(self.bus.publish(event), loop))

        def should_stop() -> bool:
            return self.cancelled.is_set() or stopping.is_set()

        try:
            return await asyncio.to_thread(generator.generate, wanted, should_stop, on_progress)
        finally:
            stop_watch.cancel()
            for future in published:  # progress is never worth failing a generation over
                with contextlib.suppress(Exception):
                    await asyncio.wrap_future(future)

    async def _store(self, index: int, sample: GeneratedSample) -> None:
        sample_id = generations.sample_id(self.generation_id, index)
        with tempfile.TemporaryDirectory(prefix="cadenza-sample-") as folder:
            path = Path(folder) / f"{sample_id}.wav"
            await asyncio.to_thread(write_audio, path, sample.audio, sample.sample_rate)
            # Named per attempt: an object an event refers to is never overwritten by a later attempt.
            ref = await self.bus.put_file(self.bus.samples_bucket,
                                          f"{self.generation_id}/attempt-{self.attempt}/{index}.wav", path)
        channels, frames = sample.audio.shape
        audio = AudioFile(**ref.model_dump(), filename=f"{sample_id}.wav", format="WAV",
                          duration_seconds=frames / sample.sample_rate, sample_rate=sample.sample_rate,
                          channels=channels)
        await self.bus.publish(SampleGenerated(generation_id=self.generation_id, sample_id=sample_id, index=index,
                                               audio=audio, seed=self.request.seed,
                                               seconds_taken=sample.seconds_taken))
