"""scheduler recovery: a fencing token on the scheduler lease, the child process of each job run

Revision ID: 0005_scheduler_recovery
Revises: 0004_deploy_lock
Create Date: 2026-12-08

- `scheduler_lease.token`: grows by one whenever another scheduler takes the lease; a scheduler renews and
  checks the lease by holder and token, so one that lost the lease stops before its next state change.
- `job_runs.child_pid`, `job_runs.child_pgid`: the process (and process group) of a run's child process, so a
  scheduler that starts after a crash can end the children the dead one left running.
"""

import sqlalchemy as sa
from alembic import op

revision = '0005_scheduler_recovery'
down_revision = '0004_deploy_lock'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('scheduler_lease', schema=None) as batch_op:
        batch_op.add_column(sa.Column('token', sa.BigInteger(), nullable=False, server_default='0'))
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('child_pid', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('child_pgid', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.drop_column('child_pgid')
        batch_op.drop_column('child_pid')
    with op.batch_alter_table('scheduler_lease', schema=None) as batch_op:
        batch_op.drop_column('token')
