-- Events the projector could not apply (an unknown type or version, a payload that fails
-- validation, a value the read models refuse), parked with the reason so that the projector goes
-- on and an operator can replay them once a handler is fixed. Rebuilt like every read model.

CREATE TABLE dead_letters (
    seq        bigint PRIMARY KEY,
    subject    text NOT NULL,
    type       text NOT NULL,
    error      text NOT NULL,
    parked_at  timestamptz NOT NULL DEFAULT now()
);
