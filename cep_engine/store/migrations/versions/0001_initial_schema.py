"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 21:58:34.863179
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cep_engine.store.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", cep_engine.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_people")),
        sa.UniqueConstraint("email", name=op.f("uq_people_email")),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("agency", sa.String(length=200), nullable=False),
        sa.Column("phase", sa.String(length=20), nullable=False),
        sa.Column("held_from", sa.String(length=20), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", cep_engine.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cep_engine.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("key", name=op.f("uq_projects_key")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", cep_engine.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("actor_roles", sa.String(length=400), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("entity_type", sa.String(length=20), nullable=False),
        sa.Column("entity", sa.String(length=100), nullable=False),
        sa.Column("trigger", sa.String(length=40), nullable=False),
        sa.Column("from_state", sa.String(length=40), nullable=True),
        sa.Column("to_state", sa.String(length=40), nullable=True),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("guards", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_audit_log_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_project_id_id", ["project_id", "id"], unique=False)

    op.create_table(
        "customer_signoffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("signer_name", sa.String(length=200), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("signed_at", cep_engine.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_customer_signoffs_person_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_customer_signoffs_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_signoffs")),
    )
    op.create_table(
        "readiness_guides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", cep_engine.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_readiness_guides_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readiness_guides")),
        sa.UniqueConstraint("project_id", "stage", name=op.f("uq_readiness_guides_project_id")),
    )
    op.create_table(
        "role_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("assigned_at", cep_engine.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_role_assignments_person_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_role_assignments_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_assignments")),
        sa.UniqueConstraint(
            "project_id", "person_id", "role", name=op.f("uq_role_assignments_project_id")
        ),
    )
    op.create_table(
        "checklist_submissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guide_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("signer_name", sa.String(length=200), nullable=False),
        sa.Column("attestation", sa.Text(), nullable=False),
        sa.Column("submitted_by_id", sa.Integer(), nullable=False),
        sa.Column(
            "submitted_at", cep_engine.store.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["guide_id"],
            ["readiness_guides.id"],
            name=op.f("fk_checklist_submissions_guide_id_readiness_guides"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by_id"],
            ["people.id"],
            name=op.f("fk_checklist_submissions_submitted_by_id_people"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checklist_submissions")),
        sa.UniqueConstraint("guide_id", "number", name=op.f("uq_checklist_submissions_guide_id")),
    )
    op.create_table(
        "readiness_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guide_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("party", sa.String(length=10), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("done_by_id", sa.Integer(), nullable=True),
        sa.Column("done_at", cep_engine.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["done_by_id"], ["people.id"], name=op.f("fk_readiness_tasks_done_by_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["guide_id"],
            ["readiness_guides.id"],
            name=op.f("fk_readiness_tasks_guide_id_readiness_guides"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["people.id"], name=op.f("fk_readiness_tasks_owner_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readiness_tasks")),
        sa.UniqueConstraint("guide_id", "number", name=op.f("uq_readiness_tasks_guide_id")),
    )
    op.create_table(
        "checklist_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("reviewed_at", cep_engine.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["reviewer_id"], ["people.id"], name=op.f("fk_checklist_reviews_reviewer_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["checklist_submissions.id"],
            name=op.f("fk_checklist_reviews_submission_id_checklist_submissions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checklist_reviews")),
        sa.UniqueConstraint("submission_id", name=op.f("uq_checklist_reviews_submission_id")),
    )


def downgrade() -> None:
    op.drop_table("checklist_reviews")
    op.drop_table("readiness_tasks")
    op.drop_table("checklist_submissions")
    op.drop_table("role_assignments")
    op.drop_table("readiness_guides")
    op.drop_table("customer_signoffs")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_project_id_id")

    op.drop_table("audit_log")
    op.drop_table("projects")
    op.drop_table("people")
