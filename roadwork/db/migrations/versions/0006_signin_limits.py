"""sign-in limits: the counts of recent sign-in attempts per user name, per client address and of everyone

Revision ID: 0006_signin_limits
Revises: 0004_deploy_lock
Create Date: 2026-12-08

- `signin_limits`: one row per (scope, key); the newest counted attempt times, and the refused and unknown-name
  attempts not yet summed up in an audit event. Rows untouched for longer than the limits' windows are removed.
"""

import sqlalchemy as sa
from alembic import op

revision = '0006_signin_limits'
down_revision = '0005_scheduler_recovery'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('signin_limits',
    sa.Column('scope', sa.String(length=8), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('times', sa.JSON(), nullable=False),
    sa.Column('refused', sa.Integer(), nullable=False),
    sa.Column('unknown', sa.Integer(), nullable=False),
    sa.Column('reported_at', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'key')
    )
    with op.batch_alter_table('signin_limits', schema=None) as batch_op:
        batch_op.create_index('ix_signin_limits_updated', ['updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('signin_limits', schema=None) as batch_op:
        batch_op.drop_index('ix_signin_limits_updated')
    op.drop_table('signin_limits')
