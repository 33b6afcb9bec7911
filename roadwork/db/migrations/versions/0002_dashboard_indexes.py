"""indexes for the dashboard's reads on a long history

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

- `audit_events(action, created_at)`: the failure feed, open alerts, pending candidates and gate decisions read
  the audit feed by action; without it each of them scans the whole feed, which grows with every request and
  alert (200,000 events: 13 ms per read, 0.1 ms with the index).
- `evaluations(version_id, kind)`: the newest evaluation of one kind per version (champion summary, heatmap,
  lineage) is answered from the index, without reading the rows and their metrics JSON.
"""

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_audit_events_action_time', 'audit_events', ['action', 'created_at'], unique=False)
    op.create_index('ix_evaluations_version_kind', 'evaluations', ['version_id', 'kind'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_evaluations_version_kind', table_name='evaluations')
    op.drop_index('ix_audit_events_action_time', table_name='audit_events')
