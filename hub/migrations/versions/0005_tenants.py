"""tenants: customers and everything about them per tenant; keyed hashes for erasure

Existing rows move into the `default` tenant. Throttle counters, parcel ledgers and digest
holds are re-keyed from the external id to the customer key (HMAC), and suppressions and
inbound keywords get the keyed digest of their address, both with the erasure key of the
settings this migration runs under (HUB_TOMBSTONE_KEY, else HUB_SECRET_KEY): run it with the
same settings as the hub.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TENANT = {"server_default": "default", "nullable": False}
_TENANT_TABLES = ("api_keys", "customers", "events", "consents", "push_subscriptions",
                  "customer_tombstones", "channel_suppressions", "inbound_keywords")
# SQLite reflects unnamed unique constraints without a name: name them for batch mode.
_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _key() -> str:
    from hub.customers import tombstone_key
    from hub.settings import get_settings

    return tombstone_key(get_settings())


def _drop_unique(table: str, column: str) -> None:
    """Drops the UNIQUE(column) that 0001/0002 created (unnamed; named after a downgrade)."""
    found = [u["name"] for u in sa.inspect(op.get_bind()).get_unique_constraints(table)
             if u["column_names"] == [column]]
    name = found[0] if found and found[0] else f"uq_{table}_{column}"
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(name, table, type_="unique")
        return
    with op.batch_alter_table(table, naming_convention=_NAMES, recreate="always") as batch:
        batch.drop_constraint(name, type_="unique")


def upgrade() -> None:
    for table in _TENANT_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("tenant", sa.String(length=64), **_TENANT))
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("details_at", hub.db.UtcDateTime(timezone=True),
                                   nullable=True))
    _drop_unique("customers", "external_id")
    with op.batch_alter_table("customers") as batch:
        batch.create_unique_constraint("uq_customers_tenant_external_id",
                                       ["tenant", "external_id"])
    _drop_unique("customer_tombstones", "digest")
    with op.batch_alter_table("customer_tombstones") as batch:
        batch.create_unique_constraint("uq_customer_tombstones_tenant_digest",
                                       ["tenant", "digest"])
    key = _key()
    for table, old_index in (("channel_suppressions", "ix_channel_suppressions_address"),
                             ("inbound_keywords", "ix_inbound_keywords_address")):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("address_digest", sa.String(length=64), nullable=True))
        _fill_digests(table, key)
        with op.batch_alter_table(table) as batch:
            batch.drop_index(old_index)
            batch.alter_column("address_digest", existing_type=sa.String(length=64),
                               nullable=False)
            batch.alter_column("address", existing_type=sa.String(length=512), nullable=True)
            batch.create_index(f"ix_{table}_digest", ["tenant", "channel", "address_digest"])
    _rekey_throttling(key)


def _fill_digests(table: str, key: str) -> None:
    from hub.suppressions import address_digest

    bind = op.get_bind()
    rows = bind.execute(sa.text(f"SELECT id, channel, address FROM {table}")).all()
    for row in rows:
        bind.execute(sa.text(f"UPDATE {table} SET address_digest = :d WHERE id = :i"),
                     {"d": address_digest(key, row.channel, row.address), "i": row.id})


def _rekey_throttling(key: str) -> None:
    """External ids in the limiter's tables become customer keys of the default tenant."""
    from hub.customers import customer_key

    bind = op.get_bind()
    for table in ("throttle_parcels", "throttle_marks", "throttle_digest"):
        ids = bind.execute(sa.text(f"SELECT DISTINCT customer_id FROM {table}")).scalars()
        for old in list(ids):
            bind.execute(sa.text(f"UPDATE {table} SET customer_id = :new WHERE customer_id = :old"),
                         {"new": customer_key(key, "default", old), "old": old})
    scopes = bind.execute(sa.text("SELECT DISTINCT scope_key FROM throttle_hits")).scalars()
    for scope in list(scopes):
        customer, sep, rest = scope.partition("|")
        bind.execute(sa.text("UPDATE throttle_hits SET scope_key = :new WHERE scope_key = :old"),
                     {"new": customer_key(key, "default", customer) + sep + rest, "old": scope})


def downgrade() -> None:
    # Customer keys cannot be turned back into ids: the limiter starts afresh.
    for table in ("throttle_hits", "throttle_parcels", "throttle_marks", "throttle_digest"):
        op.execute(f"DELETE FROM {table}")
    for table, old_index in (("channel_suppressions", "ix_channel_suppressions_address"),
                             ("inbound_keywords", "ix_inbound_keywords_address")):
        op.execute(f"UPDATE {table} SET address = address_digest WHERE address IS NULL")
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_digest")
            batch.drop_column("address_digest")
            batch.alter_column("address", existing_type=sa.String(length=512), nullable=False)
            batch.create_index(old_index, ["channel", "address"])
    with op.batch_alter_table("customer_tombstones") as batch:
        batch.drop_constraint("uq_customer_tombstones_tenant_digest", type_="unique")
        batch.create_unique_constraint("customer_tombstones_digest_key", ["digest"])
    with op.batch_alter_table("customers") as batch:
        batch.drop_constraint("uq_customers_tenant_external_id", type_="unique")
        batch.create_unique_constraint("customers_external_id_key", ["external_id"])
        batch.drop_column("details_at")
    for table in _TENANT_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("tenant")
