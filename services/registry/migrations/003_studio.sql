-- The studio loop: generations and their samples, feedback on samples, comparisons, and what
-- datasets drawn from feedback took.

CREATE TABLE generations (
    id               text PRIMARY KEY,
    prompt           text NOT NULL,
    adapter_id       text,
    base_model       text NOT NULL,
    duration_seconds double precision NOT NULL,
    seed             bigint NOT NULL,
    num_samples      integer NOT NULL,
    guidance_scale   double precision NOT NULL,
    temperature      double precision NOT NULL,
    top_k            integer NOT NULL,
    top_p            double precision NOT NULL,
    comparison_id    text,
    status           text NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    cancel_requested boolean NOT NULL DEFAULT false,
    attempt          integer NOT NULL DEFAULT 0,
    worker_id        text,
    steps_done       integer,
    steps_total      integer,
    seconds_taken    double precision,
    error            text,
    requested_at     timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz
);
CREATE INDEX generations_comparison ON generations (comparison_id);

-- A sample carries its generation's prompt and adapter so that feedback filters read one table.
CREATE TABLE samples (
    id               text PRIMARY KEY,
    generation_id    text NOT NULL REFERENCES generations(id),
    index            integer NOT NULL,
    prompt           text NOT NULL,
    adapter_id       text,
    base_model       text NOT NULL,
    seed             bigint NOT NULL,
    bucket           text NOT NULL,
    object_name      text NOT NULL,
    sha256           text NOT NULL,
    size             bigint NOT NULL,
    filename         text NOT NULL,
    format           text NOT NULL,
    duration_seconds double precision NOT NULL,
    sample_rate      integer NOT NULL,
    channels         integer NOT NULL,
    seconds_taken    double precision NOT NULL,
    favorite         boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL,
    UNIQUE (generation_id, index)
);

CREATE TABLE sample_ratings (
    sample_id  text NOT NULL REFERENCES samples(id),
    criterion  text NOT NULL,
    rating     integer NOT NULL CHECK (rating BETWEEN 1 AND 5),
    rated_at   timestamptz NOT NULL,
    PRIMARY KEY (sample_id, criterion)
);

CREATE TABLE sample_tags (
    sample_id  text NOT NULL REFERENCES samples(id),
    tag        text NOT NULL,
    tagged_at  timestamptz NOT NULL,
    PRIMARY KEY (sample_id, tag)
);

CREATE TABLE preferences (
    id                 text PRIMARY KEY,
    chosen_sample_id   text NOT NULL REFERENCES samples(id),
    rejected_sample_id text NOT NULL REFERENCES samples(id),
    created_at         timestamptz NOT NULL
);

CREATE TABLE comparisons (
    id                 text PRIMARY KEY,
    name               text NOT NULL,
    a_adapter_id       text,
    b_adapter_id       text,
    prompts            jsonb NOT NULL,
    samples_per_prompt integer NOT NULL,
    seed               bigint NOT NULL,
    created_at         timestamptz NOT NULL
);

CREATE TABLE comparison_generations (
    comparison_id text NOT NULL REFERENCES comparisons(id),
    generation_id text NOT NULL,
    side          text NOT NULL CHECK (side IN ('a', 'b')),
    prompt_index  integer NOT NULL,
    PRIMARY KEY (comparison_id, side, prompt_index)
);

-- A pair is ready when both sides' samples of its (prompt, index) exist: a join, not a column.
CREATE TABLE comparison_pairs (
    id            text PRIMARY KEY,
    comparison_id text NOT NULL REFERENCES comparisons(id),
    prompt_index  integer NOT NULL,
    sample_index  integer NOT NULL,
    first         text NOT NULL CHECK (first IN ('a', 'b')),
    choice        text CHECK (choice IN ('first', 'second', 'equal')),
    outcome       text CHECK (outcome IN ('a', 'b', 'tie')),
    voted_at      timestamptz
);
CREATE INDEX comparison_pairs_comparison ON comparison_pairs (comparison_id);

CREATE TABLE dataset_filters (
    dataset_id text PRIMARY KEY REFERENCES datasets(id),
    filter     jsonb NOT NULL
);

-- Which sample each item of a dataset drawn from feedback is (`role`: clip, chosen or rejected),
-- and the vote or preference a pair came from.
CREATE TABLE dataset_sources (
    dataset_id         text NOT NULL REFERENCES datasets(id),
    item_id            text NOT NULL,
    role               text NOT NULL CHECK (role IN ('clip', 'chosen', 'rejected')),
    sample_id          text NOT NULL,
    comparison_id      text,
    comparison_pair_id text,
    preference_id      text,
    PRIMARY KEY (item_id, role)
);
CREATE INDEX dataset_sources_dataset ON dataset_sources (dataset_id);
