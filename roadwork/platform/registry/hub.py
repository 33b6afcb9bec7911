"""The Hugging Face Hub publish target: one commit per deployed version, model_card.json included."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi


def publish_to_hub(
    export_dir: Path,
    *,
    repo_id: str,
    token: str | None,
    version: str,
    endpoint: str | None = None,
    private: bool = True,
    api: HfApi | None = None,
) -> str:
    """Upload every file of `export_dir` to `repo_id` in one commit; returns the commit's id."""
    if not token:
        raise ValueError("publishing to the Hub needs a token: set ROADWORK_HF_TOKEN or HF_TOKEN")
    api = api or HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    operations = [
        CommitOperationAdd(path_in_repo=str(p.relative_to(export_dir)), path_or_fileobj=str(p))
        for p in sorted(Path(export_dir).rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    ]
    info = api.create_commit(repo_id, operations=operations, commit_message=f"Roadwork Ops: deploy {version}",
                             repo_type="model")
    return info.oid
