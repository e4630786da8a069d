"""A fleet of hub machines on one PostgreSQL: shared artifacts, retention, change notices,
telemetry partitioned by day, the task queue's tables.

- artifacts, artifact_chunks: bundle archives and dataset files every hub machine reads.
- retention_policy: days kept per kind of data (edge-hub retention set KIND=DAYS).
- PostgreSQL only:
  - a trigger on tokens, gateways, deployments and config_overlays sends a notice on the
    channel ``edge_hub.<schema>`` naming the token hash or target it changed: every API worker
    drops what it cached of it within a second (hub.fleet.notify).
  - telemetry becomes a table partitioned by day of the record's creation (``created``), with a
    default partition for records far outside the made days; retention drops whole partitions.
    Its uniqueness is (gateway_id, seq, created): a partitioned table's unique keys hold the
    partition key, and a resent record carries its created time unchanged.
  - procrastinate's schema (tables, functions, triggers of procrastinate 3.10) in the hub's own
    schema: the job queue of hub.fleet.queue. A procrastinate upgrade that changes its schema
    comes with a new revision applying its migration.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DAY = 86400

# table -> (column whose value the notice names, key in the notice)
NOTIFIED = {"tokens": ("token_hash", "token"), "gateways": ("id", "target"),
            "deployments": ("target", "target"), "config_overlays": ("target", "target")}

NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION edge_hub_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row_data jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN row_data := to_jsonb(OLD); ELSE row_data := to_jsonb(NEW); END IF;
    PERFORM pg_notify('edge_hub.' || TG_TABLE_SCHEMA,
                      json_build_object(TG_ARGV[1], row_data ->> TG_ARGV[0])::text);
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    int64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table("artifacts",
                    sa.Column("key", sa.String(length=200), primary_key=True),
                    sa.Column("kind", sa.String(length=16), nullable=False),
                    sa.Column("sha256", sa.String(length=64), nullable=False),
                    sa.Column("size", int64, nullable=False),
                    sa.Column("chunk_size", sa.Integer(), nullable=False),
                    sa.Column("created", sa.Float(), nullable=False))
    op.create_table("artifact_chunks",
                    sa.Column("key", sa.String(length=200), primary_key=True),
                    sa.Column("seq", sa.Integer(), primary_key=True),
                    sa.Column("data", sa.LargeBinary(), nullable=False))
    op.create_table("retention_policy",
                    sa.Column("kind", sa.String(length=32), primary_key=True),
                    sa.Column("days", sa.Integer(), nullable=False),
                    sa.Column("updated", sa.Float(), nullable=False),
                    sa.Column("actor", sa.String(length=128), nullable=False))
    if not postgres:
        return
    op.execute(NOTIFY_FUNCTION)
    for table, (column, key) in NOTIFIED.items():
        op.execute(f"CREATE TRIGGER {table}_notify AFTER INSERT OR UPDATE OR DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION edge_hub_notify('{column}', '{key}')")
    _partition_telemetry()
    from procrastinate.schema import SchemaManager

    # on the driver's cursor, without parameters: the script has '%' of its own and many statements
    cursor = op.get_bind().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(SchemaManager.get_schema())


def _partition_telemetry() -> None:
    bind = op.get_bind()
    op.execute("ALTER TABLE telemetry RENAME TO telemetry_unpartitioned")
    # its constraints and indexes (named by whichever hub made them) make way for the new ones
    op.execute(r"""
        DO $$ DECLARE r record; BEGIN
            FOR r IN SELECT conname FROM pg_constraint
                     WHERE conrelid = 'telemetry_unpartitioned'::regclass LOOP
                EXECUTE format('ALTER TABLE telemetry_unpartitioned RENAME CONSTRAINT %I TO %I',
                               r.conname, 'unp_' || r.conname);
            END LOOP;
            FOR r IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                     WHERE i.indrelid = 'telemetry_unpartitioned'::regclass
                       AND c.relname NOT LIKE 'unp\_%' LOOP
                EXECUTE format('ALTER INDEX %I RENAME TO %I', r.relname, 'unp_' || r.relname);
            END LOOP;
        END $$""")
    sequence = bind.execute(sa.text(
        "SELECT pg_get_serial_sequence('telemetry_unpartitioned', 'id')")).scalar()
    if sequence is None:  # an id without a sequence of its own: one that goes on from the last id
        op.execute("CREATE SEQUENCE telemetry_id_seq AS BIGINT")
        op.execute("SELECT setval('telemetry_id_seq', "
                   "coalesce((SELECT max(id) FROM telemetry_unpartitioned), 0) + 1, false)")
    else:
        op.execute(f"ALTER SEQUENCE {sequence} OWNED BY NONE")
        if sequence.split(".")[-1] != "telemetry_id_seq":
            op.execute(f"ALTER SEQUENCE {sequence} RENAME TO telemetry_id_seq")
    op.execute("""
        CREATE TABLE telemetry (
            id BIGINT NOT NULL DEFAULT nextval('telemetry_id_seq'),
            gateway_id VARCHAR(128) NOT NULL REFERENCES gateways (id),
            seq BIGINT NOT NULL,
            kind VARCHAR(32) NOT NULL,
            items BIGINT NOT NULL,
            payload BYTEA NOT NULL,
            created FLOAT NOT NULL,
            received FLOAT NOT NULL,
            ingested BOOLEAN,
            CONSTRAINT telemetry_pkey PRIMARY KEY (id, created),
            CONSTRAINT telemetry_once UNIQUE (gateway_id, seq, created)
        ) PARTITION BY RANGE (created)""")
    op.execute("ALTER SEQUENCE telemetry_id_seq OWNED BY telemetry.id")
    op.execute("CREATE TABLE telemetry_default PARTITION OF telemetry DEFAULT")
    today = int(time.time() // DAY)
    days = {int(d) for (d,) in bind.execute(sa.text(
        "SELECT DISTINCT floor(created / 86400) FROM telemetry_unpartitioned "
        "WHERE created > 0 AND created < 1e10"))}
    for day in sorted(days | set(range(today - 1, today + 8))):
        name = time.strftime("telemetry_d%Y%m%d", time.gmtime(day * DAY))
        op.execute(f"CREATE TABLE {name} PARTITION OF telemetry "
                   f"FOR VALUES FROM ({day * DAY}) TO ({(day + 1) * DAY})")
    op.execute("INSERT INTO telemetry SELECT id, gateway_id, seq, kind, items, payload, created, "
               "received, ingested FROM telemetry_unpartitioned")
    op.execute("DROP TABLE telemetry_unpartitioned")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table in NOTIFIED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_notify ON {table}")
        op.execute("DROP FUNCTION IF EXISTS edge_hub_notify()")
        # telemetry stays partitioned; procrastinate's objects go with their tables
        for table in ("procrastinate_events", "procrastinate_periodic_defers", "procrastinate_jobs",
                      "procrastinate_workers"):
            op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    for table in ("retention_policy", "artifact_chunks", "artifacts"):
        op.drop_table(table)
