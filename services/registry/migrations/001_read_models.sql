-- Read models folded from the event stream. Dropping them and replaying the stream from
-- sequence 1 gives back the same state, so nothing here is the source of truth.

CREATE TABLE projector_checkpoint (
    name        text PRIMARY KEY,
    last_seq    bigint NOT NULL
);

CREATE TABLE datasets (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('supervised', 'preference')),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL
);

CREATE TABLE clips (
    id               text PRIMARY KEY,
    dataset_id       text NOT NULL REFERENCES datasets(id),
    prompt           text NOT NULL,
    bucket           text NOT NULL,
    object_name      text NOT NULL,
    sha256           text NOT NULL,
    size             bigint NOT NULL,
    filename         text NOT NULL,
    format           text NOT NULL,
    duration_seconds double precision NOT NULL,
    sample_rate      integer NOT NULL,
    channels         integer NOT NULL,
    created_at       timestamptz NOT NULL
);
CREATE INDEX clips_dataset ON clips (dataset_id);

-- A pair's chosen and rejected audio are rows of `clips` too (with the pair's prompt), so every
-- stored audio file is served by one endpoint.
CREATE TABLE preference_pairs (
    id               text PRIMARY KEY,
    dataset_id       text NOT NULL REFERENCES datasets(id),
    prompt           text NOT NULL,
    chosen_clip_id   text NOT NULL REFERENCES clips(id),
    rejected_clip_id text NOT NULL REFERENCES clips(id),
    created_at       timestamptz NOT NULL
);
CREATE INDEX preference_pairs_dataset ON preference_pairs (dataset_id);

CREATE TABLE experiments (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    dataset_id  text NOT NULL REFERENCES datasets(id),
    config      jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE runs (
    id                   text PRIMARY KEY,
    experiment_id        text NOT NULL REFERENCES experiments(id),
    dataset_id           text NOT NULL REFERENCES datasets(id),
    name                 text NOT NULL,
    dataset_type         text NOT NULL,
    status               text NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    cancel_requested     boolean NOT NULL DEFAULT false,
    attempt              integer NOT NULL DEFAULT 0,
    trainer_id           text,
    config               jsonb NOT NULL,
    dataset_rows         integer,
    dataset_digest       text,
    last_checkpoint      jsonb,
    final_loss           double precision,
    best_validation_loss double precision,
    steps                integer,
    error                text,
    adapter_id           text,
    requested_at         timestamptz NOT NULL,
    started_at           timestamptz,
    finished_at          timestamptz
);
CREATE INDEX runs_experiment ON runs (experiment_id);

CREATE TABLE run_metrics (
    run_id        text NOT NULL REFERENCES runs(id),
    split         text NOT NULL,
    step          integer NOT NULL,
    attempt       integer NOT NULL,
    epoch         double precision NOT NULL,
    loss          double precision NOT NULL,
    learning_rate double precision,
    grad_norm     double precision,
    metrics       jsonb NOT NULL DEFAULT '{}',
    reported_at   timestamptz NOT NULL,
    PRIMARY KEY (run_id, split, step)
);

CREATE TABLE run_logs (
    run_id    text NOT NULL REFERENCES runs(id),
    attempt   integer NOT NULL,
    chunk     integer NOT NULL,
    line_no   integer NOT NULL,
    line      text NOT NULL,
    logged_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, attempt, chunk, line_no)
);

CREATE TABLE adapters (
    id            text PRIMARY KEY,
    run_id        text NOT NULL REFERENCES runs(id),
    experiment_id text NOT NULL REFERENCES experiments(id),
    name          text NOT NULL,
    bucket        text NOT NULL,
    object_name   text NOT NULL,
    sha256        text NOT NULL,
    size          bigint NOT NULL,
    base_model    text NOT NULL,
    dataset_type  text NOT NULL,
    lora_config   jsonb NOT NULL,
    final_loss    double precision,
    created_at    timestamptz NOT NULL
);
