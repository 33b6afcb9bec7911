"""ablation studies: the base config and one flipped component per row, trained on the same seeds

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

- `ablation_studies`: one `roadwork ablate` run: the base config as run, the seeds, the components asked for,
  the data fingerprint, who ran it, and whether it is running, finished or failed (with the error).
- `ablation_rows`: the base and each variant, written as each finishes: validation MCC per seed (in the
  study's seed order), their mean, and for a variant the paired delta against the base with its 95% CI.
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ablation_studies',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('config_name', sa.String(length=255), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('seeds', sa.JSON(), nullable=False),
    sa.Column('components', sa.JSON(), nullable=False),
    sa.Column('data_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('ablation_rows',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('component', sa.String(length=64), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('mcc', sa.JSON(), nullable=False),
    sa.Column('mean_mcc', sa.Float(), nullable=False),
    sa.Column('delta', sa.Float(), nullable=True),
    sa.Column('ci_low', sa.Float(), nullable=True),
    sa.Column('ci_high', sa.Float(), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['ablation_studies.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ablation_rows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ablation_rows_study_id'), ['study_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ablation_rows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ablation_rows_study_id'))

    op.drop_table('ablation_rows')
    op.drop_table('ablation_studies')
