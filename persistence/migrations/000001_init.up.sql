-- Journal of every actor: one row per event, (actor_id, seq) is the fence
-- between two incarnations of the same actor.
CREATE TABLE IF NOT EXISTS journal_events (
    actor_id   text        NOT NULL,
    seq        bigint      NOT NULL CHECK (seq > 0),
    event_type text        NOT NULL,
    payload    bytea       NOT NULL,
    writer_id  text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor_id, seq)
);

-- One snapshot row per actor, overwritten by newer ones.
CREATE TABLE IF NOT EXISTS journal_snapshots (
    actor_id      text        PRIMARY KEY,
    seq           bigint      NOT NULL,
    snapshot_type text        NOT NULL,
    payload       bytea       NOT NULL,
    writer_id     text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Catalog: read-mostly data.
CREATE TABLE IF NOT EXISTS users (
    id         bigserial   PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS concerts (
    id         bigserial   PRIMARY KEY,
    title      text        NOT NULL,
    price      bigint      NOT NULL CHECK (price >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS concert_options (
    id           bigserial PRIMARY KEY,
    concert_id   bigint    NOT NULL REFERENCES concerts (id),
    concert_date date      NOT NULL,
    seats        integer   NOT NULL CHECK (seats >= 0),
    UNIQUE (concert_id, concert_date)
);

CREATE TABLE IF NOT EXISTS seats (
    id         bigserial PRIMARY KEY,
    option_id  bigint    NOT NULL REFERENCES concert_options (id),
    concert_id bigint    NOT NULL REFERENCES concerts (id),
    seat_no    integer   NOT NULL CHECK (seat_no > 0),
    price      bigint    NOT NULL CHECK (price >= 0),
    UNIQUE (option_id, seat_no)
);
