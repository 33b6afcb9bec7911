"""deploy lock and deploy intents: one deploy at a time, and a record that survives a crash mid-deploy

Revision ID: 0004_deploy_lock
Revises: 0003
Create Date: 2026-12-08

- `deploy_lock`: one row (id 1, inserted here so that taking the lock is always an UPDATE, which serializes
  the same way on SQLite and PostgreSQL), holder, expiry and a fencing token that grows on every acquisition.
- `deploy_intents`: written before a deploy switches any published link; `reconcile()` reads the pending ones
  after a crash to complete or revert them.
"""

import sqlalchemy as sa
from alembic import op

revision = '0004_deploy_lock'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    lock = op.create_table('deploy_lock',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.BigInteger(), nullable=False),
    sa.Column('holder', sa.String(length=255), nullable=True),
    sa.Column('hostname', sa.String(length=255), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('purpose', sa.String(length=255), nullable=True),
    sa.Column('acquired_at', sa.DateTime(), nullable=True),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(lock, [{'id': 1, 'token': 0}])
    op.create_table('deploy_intents',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('lock_token', sa.BigInteger(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('from_version_id', sa.Integer(), nullable=True),
    sa.Column('release', sa.String(length=255), nullable=False),
    sa.Column('previous', sa.JSON(), nullable=False),
    sa.Column('published_to', sa.JSON(), nullable=True),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('gate_result', sa.JSON(), nullable=True),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id']),
    sa.ForeignKeyConstraint(['from_version_id'], ['model_versions.id']),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deploy_intents', schema=None) as batch_op:
        batch_op.create_index('ix_deploy_intents_status', ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('deploy_intents', schema=None) as batch_op:
        batch_op.drop_index('ix_deploy_intents_status')
    op.drop_table('deploy_intents')
    op.drop_table('deploy_lock')
