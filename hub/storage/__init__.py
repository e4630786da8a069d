"""The hub's storage: tables (SQLAlchemy ORM), the engine and its Alembic migrations, and the
queries that change the fleet (gateways, tokens, telemetry with its ingest of training samples
and gateway audit entries, history).

Import from here (``from hub.storage import Deployment, record``); hub.storage.tables holds the
ORM classes, hub/storage/migrations the schema's revisions. A change to a table needs a new
Alembic revision (tests/integration/test_migrations.py compares them).

May import: agent.store (audit hash), agent.errors, hub.ids, hub.limits, hub.ratelimit,
hub.faults. Never hub.api, hub.app, hub.registry, hub.rollouts or the CLI.
"""

from hub.storage.engine import current_revision, head_revision, migrate, open_db
from hub.storage.gateways import (
    add_gateway,
    audit_chains,
    list_gateways,
    remove_gateway,
    rotate_token,
    set_group,
)
from hub.storage.history import acting_as, current_actor, record
from hub.storage.shared import Artifact, ArtifactChunk, RetentionPolicy
from hub.storage.tables import (
    AgentAudit,
    Base,
    ConfigOverlay,
    Dataset,
    Deployment,
    Gateway,
    GatewayMetric,
    GatewayModel,
    GatewayStatus,
    HistoryEntry,
    ModelPolicy,
    ModelVersion,
    RetrainRun,
    Telemetry,
    Token,
    TrainingSample,
)
from hub.storage.telemetry import Stored, store_batch
from hub.storage.tokens import (
    Holder,
    TokenError,
    add_admin_token,
    hash_token,
    list_tokens,
    lookup,
    revoke_token,
)

__all__ = [
    "AgentAudit", "Artifact", "ArtifactChunk", "Base", "ConfigOverlay", "Dataset", "Deployment",
    "Gateway", "GatewayMetric", "GatewayModel", "GatewayStatus", "HistoryEntry", "Holder", "ModelPolicy",
    "ModelVersion", "RetentionPolicy", "RetrainRun", "Stored", "Telemetry", "Token", "TokenError",
    "TrainingSample", "acting_as", "add_admin_token", "add_gateway", "audit_chains",
    "current_actor", "current_revision", "hash_token", "head_revision", "list_gateways",
    "list_tokens", "lookup", "migrate", "open_db", "record", "remove_gateway", "revoke_token",
    "rotate_token", "set_group", "store_batch",
]
