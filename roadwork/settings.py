"""One `Settings` object for every process: a YAML file, then `ROADWORK_*` environment variables on top.

Where the file is: the path given to `load_settings`, else `$ROADWORK_SETTINGS`, else `roadwork.yaml` in the
home directory (`$ROADWORK_HOME`, default `~/.roadwork`). Nested keys come from the environment with a double
underscore: `ROADWORK_SCHEDULER__LEASE_TIMEOUT_S=30`. Secrets (tokens, API keys) are read from the
environment only and are never printed: they are `SecretStr`, and a secret written into the YAML file is an
error, so it is not committed by accident.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from roadwork.cron import validate_cron

SECRET_FIELDS = ("hf_token", "leaderboard_api_key")
ENV_PREFIX = "ROADWORK_"


class SettingsError(ValueError):
    """A settings file or variable is wrong; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SchedulerSettings(_Section):
    lease_timeout_s: float = Field(
        60.0, gt=0, description="A lease whose heartbeat is older than this is stale and may be taken over (a holder "
        "on this machine whose process is gone is taken over at once)."
    )
    heartbeat_s: float = Field(10.0, gt=0, description="How often the scheduler renews its lease.")
    command_poll_s: float = Field(2.0, gt=0, description="How often the scheduler reads the commands table.")
    misfire_grace_time_s: int = Field(
        900, gt=0, description="A run that starts later than this after its fire time is recorded as missed."
    )
    # The jobs, their default crons and timeouts are declared once, in `roadwork.platform.jobs.catalog`, which
    # also checks that these keys name its jobs (settings import nothing from the platform).
    crons: dict[str, str] = Field(
        default_factory=dict,
        description="Cron (UTC) overrides by job id; a job not named keeps the catalog's schedule. "
        "Applied when a job is first registered; later changes go through `roadwork jobs schedule`.",
    )
    timeouts_s: dict[str, float] = Field(
        default_factory=dict,
        description="Wall-clock limit overrides of subprocess jobs, by job id (`evaluate` sets both evaluate_champion "
        "and ab_test); a job still running then is killed and recorded as failed.",
    )

    @field_validator("crons")
    @classmethod
    def _valid_crons(cls, value: dict[str, str]) -> dict[str, str]:
        out = {}
        for job, expr in value.items():
            try:
                out[job] = validate_cron(expr)
            except ValueError as exc:
                raise ValueError(f"{job}: {exc}") from exc
        return out

    @field_validator("timeouts_s")
    @classmethod
    def _positive_timeouts(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [job for job, t in value.items() if t <= 0]
        if bad:
            raise ValueError(f"timeouts must be positive: {', '.join(bad)}")
        return value


class EvaluationSettings(_Section):
    champion_replay_challenges: int = Field(
        500, ge=10, description="Challenges in the replay of the scheduled champion evaluation (`evaluate_champion`)."
    )
    cache_resave: bool = Field(
        True,
        description="Replays render real rows from a JPEG re-save at Pillow's defaults, as the validator's image "
        "cache stores them (false: from the original bytes). Evaluation and the training calibration both use it.",
    )


class DataSettings(_Section):
    max_image_pixels: int = Field(
        100_000_000, ge=1,
        description="Images with more pixels (width x height) than this are refused before they are decoded: "
        "predict and challenge render exit 2, a dataset row is skipped and counted (too_large). "
        "12-megapixel camera frames pass; Pillow itself refuses images over about 179 megapixels.",
    )


class GateSettings(_Section):
    policy: Literal["auto", "manual"] = Field(
        "manual", description="auto: a candidate that passes the gate is deployed at once; manual: it waits for an operator."
    )
    min_mcc_gain: float = Field(0.01, description="The candidate's replay MCC must beat the champion's by this much.")
    min_reward_gain: float = Field(
        0.0, description="The candidate's expected validator score must beat the champion's by this much."
    )
    min_cell_n: int = Field(30, ge=1, description="Condition cells with fewer challenges than this are not judged.")
    cell_tolerance: float = Field(
        0.05, ge=0, description="No judged condition cell's MCC may drop by more than this versus the champion."
    )
    must_beat_all: bool = Field(
        False, description="Also require beating every earlier champion (the announced, unenforced competition rule)."
    )
    replay_challenges: int = Field(1000, ge=10, description="Challenges in the replay candidate and champion share.")
    max_student_gap: float = Field(
        0.02, ge=0, description="A student candidate's replay MCC may be at most this much below its teacher's on "
        "the same replay."
    )


class DistillSettings(_Section):
    epochs: int = Field(3, ge=1, description="Epochs of `roadwork distill` (its --epochs overrides).")
    lr: float = Field(5e-4, gt=0, description="AdamW learning rate of the student (warm-up, then cosine).")
    batch_size: int = Field(32, ge=1, description="Images per distillation step.")
    alpha: float = Field(
        0.7, ge=0, le=1, description="Weight of the KL term (teacher's calibrated probabilities); 1 - alpha weighs "
        "the hard-label cross-entropy."
    )
    temperature: float = Field(1.0, gt=0, description="Softmax temperature of the KL term.")
    render_copies: int = Field(
        2, ge=0, description="Validator-style renders (the replay's renderer) of each image, besides the image itself."
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay of the student.")
    image_size: int = Field(224, ge=16, description="The student's input size (validators send 224 px).")
    seed: int = Field(0, ge=0, description="Seed of the student's initialisation, batch order and renders.")
    student: Literal["dinov2", "vit"] = Field(
        "dinov2", description="The student architecture the train job distils into under deploy.format stock."
    )


class MiningSettings(_Section):
    pool: str | None = Field(
        None, description="Dataset or folder of images to mine; empty: the champion's training data."
    )
    confident_mistakes: int = Field(100, ge=0, description="How many of the most confident mistakes to keep.")
    uncertain: int = Field(100, ge=0, description="How many of the least confident answers to keep.")
    oversample: int = Field(3, ge=1, description="How many times the next training run sees each hard negative.")


class ModelAgeSettings(_Section):
    full_reward_days: int = Field(45, ge=1, description="Days after a submission with full reward (announced rule).")
    zero_reward_days: int = Field(90, ge=1, description="Day by which the reward has decayed to zero.")
    retrain_days_before: int = Field(
        7, ge=0, description="Schedule a training run this many days before the decay starts."
    )


class EventsSettings(_Section):
    webhook_url: SecretStr | None = Field(
        None,
        description="URL that receives every event as Slack-compatible JSON ({\"text\": ...}). Empty: none. "
        "A secret (whoever has it can post): shown as its scheme and host only, never written into run folders.",
    )
    timeout_s: float = Field(5.0, gt=0, description="Timeout of one webhook call.")

    def webhook(self) -> str | None:
        """The webhook URL in clear, for the one place that calls it; None when unset or empty."""
        return (self.webhook_url.get_secret_value() or None) if self.webhook_url is not None else None


class PublishSettings(_Section):
    local_dirs: list[Path] = Field(
        default_factory=list,
        description="Directories the champion is published to (atomic switch of a `current` link). "
        "Empty means `<home>/publish`.",
    )
    reload_command: str | None = Field(
        None, description="Shell command run after a publish, e.g. restarting the miner. Empty: none."
    )
    hf_repo: str | None = Field(
        None, description="Hugging Face Hub repository to publish to (owner/name), one commit per version. Empty: none."
    )
    hf_endpoint: str | None = Field(None, description="Hub endpoint URL; empty: the public Hugging Face Hub.")
    hf_private: bool = Field(True, description="Create the Hub repository as private if it does not exist.")
    lock_wait_s: float = Field(
        60.0, ge=0, description="How long a deploy or rollback waits for another one to finish before it fails."
    )
    lock_ttl_s: float = Field(
        900.0, gt=0, description="A deploy lock not renewed for this long is taken over (its holder died)."
    )


class DeploySettings(_Section):
    format: Literal["stock", "remote-code"] = Field(
        "stock",
        description="stock: publish a student in an architecture the stock miner's transformers knows (deploying a "
        "teacher publishes its newest student; none: refused); remote-code: publish the version itself with its "
        "model code, for miners that install the detector plug-in.",
    )
    max_size_mb: float = Field(
        500.0, gt=0, description="A published model folder larger than this (MB, 10^6 bytes) is refused before publishing."
    )


class LeaderboardSettings(_Section):
    source: Literal["none", "taostats", "btcli", "json"] = Field(
        "none", description="Where standings come from: none, the Taostats API, btcli JSON, or a JSON URL."
    )
    url: str | None = Field(None, description="Base URL of the API, a JSON URL, or a btcli JSON file path.")
    command: str | None = Field(
        None,
        description="For source btcli: the command that prints the metagraph JSON, run with COLUMNS set very "
        "large so that btcli does not wrap it. Empty (and no file in url): `btcli subnets show --netuid <netuid> "
        "--mechid 0 --json-output --no-prompt`.",
    )
    field_map: dict[str, str] = Field(
        default_factory=dict, description="For source json: our field name -> the dotted path in each row."
    )
    timeout_s: float = Field(10.0, gt=0, description="Timeout of one request.")
    retries: int = Field(3, ge=0, description="Retries of a failed request, with exponential backoff.")
    calls_per_minute: float = Field(5.0, gt=0, description="Rate limit of the API (the Taostats free tier allows 5).")
    rank_drop_alert: int = Field(5, ge=1, description="Alert when our rank worsens by at least this many places.")
    deregistration_percentile: float = Field(
        0.1, ge=0, le=1, description="Alert when our incentive is in this bottom share of miners."
    )
    netuid: int = Field(72, ge=0, description="Subnet id (72 on mainnet, 323 on testnet).")


class AuthSettings(_Section):
    """Limits of dashboard sign-in. Refused attempts cost no password check; the counts live in the database, so
    every dashboard process shares them."""

    max_failures_per_name: int = Field(
        5, ge=1, description="Failed sign-ins of one user name within `failure_window_s` that lock that name out "
        "(unknown names too, so the answer does not tell which names exist).",
    )
    max_failures_per_address: int = Field(
        20, ge=1, description="Failed sign-ins from one client address within `failure_window_s` that lock that "
        "address out, whatever the name.",
    )
    failure_window_s: float = Field(
        900.0, gt=0, description="The window of both failure counts: a lock-out ends once the oldest counted "
        "failure is this old.",
    )
    max_attempts_per_minute: int = Field(
        60, ge=1, description="Sign-in attempts of everyone together per minute; further attempts are refused "
        "until the minute's oldest one is a minute old.",
    )


class Settings(BaseSettings):
    """Settings of one Roadwork Ops installation."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    home: Path = Field(
        Path("~/.roadwork"),
        description="Home directory: database, artifacts, datasets, logs and published models live under it.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the registry. Empty: SQLite file `<home>/roadwork.db`. "
        "PostgreSQL: postgresql+psycopg://user@host/db.",
    )
    dashboard_port: int = Field(8501, ge=1, le=65535, description="Port of the web dashboard.")
    dashboard_address: str = Field("localhost", description="Address the dashboard listens on (0.0.0.0 in Docker).")
    model_name: str = Field("roadwork-ops", min_length=1, description="Name under which versions are registered.")
    hotkey: str | None = Field(None, description="Our miner hotkey (ss58); written as `submitted_by` in model cards.")
    uid: int | None = Field(None, ge=0, description="Our miner UID on the subnet.")
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings, description="Scheduler process options.")
    publish: PublishSettings = Field(default_factory=PublishSettings, description="Where deployments are published.")
    deploy: DeploySettings = Field(
        default_factory=DeploySettings, description="What a deployment publishes: a stock student or remote code."
    )
    leaderboard: LeaderboardSettings = Field(
        default_factory=LeaderboardSettings, description="Where standings come from."
    )
    gate: GateSettings = Field(default_factory=GateSettings, description="When a candidate replaces the champion.")
    evaluation: EvaluationSettings = Field(
        default_factory=EvaluationSettings, description="The scheduled evaluation of the champion, and how challenge replays are rendered."
    )
    data: DataSettings = Field(default_factory=DataSettings, description="Images read from users and datasets.")
    mining: MiningSettings = Field(default_factory=MiningSettings, description="Hard-negative mining.")
    distill: DistillSettings = Field(
        default_factory=DistillSettings, description="Distillation of a stock-architecture student."
    )
    model_age: ModelAgeSettings = Field(default_factory=ModelAgeSettings, description="Reward-decay countdown.")
    events: EventsSettings = Field(default_factory=EventsSettings, description="Where events are sent.")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="Limits of dashboard sign-in.")
    hf_token: SecretStr | None = Field(
        None, description="Hugging Face token (env ROADWORK_HF_TOKEN or HF_TOKEN only; never in the file)."
    )
    leaderboard_api_key: SecretStr | None = Field(
        None, description="Leaderboard API key (env ROADWORK_LEADERBOARD_API_KEY only; never in the file)."
    )

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    # Derived locations -------------------------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'roadwork.db'}"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def publish_dirs(self) -> list[Path]:
        return [p.expanduser() for p in self.publish.local_dirs] or [self.home / "publish"]

    def token(self) -> str | None:
        """The Hugging Face token, from `ROADWORK_HF_TOKEN` or the standard `HF_TOKEN`."""
        if self.hf_token is not None:
            return self.hf_token.get_secret_value() or None
        return os.environ.get("HF_TOKEN") or None

    def public_dict(self) -> dict[str, Any]:
        """Settings as JSON-able data with every secret masked, for logs, run records and `settings show`."""
        data = self.model_dump(mode="json")
        for name in SECRET_FIELDS:
            data[name] = MASK if getattr(self, name) is not None else None
        data["database_url"] = _mask_url_password(self.db_url)
        data["events"]["webhook_url"] = mask_url(self.events.webhook())
        return _mask_all_credentials(data)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest priority first; nested sections are deep-merged, so ROADWORK_SCHEDULER__HEARTBEAT_S
        # overrides one key of the file's `scheduler:` section and keeps the others.
        return (init_settings, env_settings, _YamlSource(settings_cls))


_settings_file: ContextVar[Path | None] = ContextVar("roadwork_settings_file", default=None)


class _YamlSource(PydanticBaseSettingsSource):
    """The YAML file chosen by `load_settings`, lowest priority."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole mapping

    def __call__(self) -> dict[str, Any]:
        file = _settings_file.get()
        return _read_yaml(file) if file is not None else {}


MASK = "**********"
# scheme://user:password@ anywhere in a string (a database URL, an endpoint with basic auth in it)
_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):(?P<password>[^@/\s]*)@")


def mask_credentials(text: str) -> str:
    """`text` with the password of every `scheme://user:password@host` URL in it replaced by `***`."""
    return _CREDENTIALS.sub(lambda m: f"{m['head']}:***@", text)


def mask_url(url: str | None) -> str | None:
    """A capability URL (its path or query is the secret) as its scheme and host only: `https://host/**********`."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}/{MASK}" if parts.scheme and host else MASK


def _mask_all_credentials(value: Any) -> Any:
    if isinstance(value, str):
        return mask_credentials(value)
    if isinstance(value, dict):
        return {k: _mask_all_credentials(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_all_credentials(v) for v in value]
    return value


def _mask_url_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is shown as its scheme only
        return url.split(":", 1)[0] + ":***"


def settings_path(explicit: Path | str | None = None) -> Path:
    """The YAML file that applies: explicit path, then `$ROADWORK_SETTINGS`, then `<home>/roadwork.yaml`."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("ROADWORK_SETTINGS"):
        return Path(os.environ["ROADWORK_SETTINGS"]).expanduser()
    home = Path(os.environ.get("ROADWORK_HOME", "~/.roadwork")).expanduser()
    return home / "roadwork.yaml"


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a mapping of settings at the top level, got {type(data).__name__}")
    for name in SECRET_FIELDS:
        if name in data:
            raise SettingsError(
                f"{path}: key '{name}' is a secret and is read from the environment only "
                f"({ENV_PREFIX}{name.upper()}); remove it from the file"
            )
    return data


def _unknown_env_keys() -> list[str]:
    known = set(Settings.model_fields) | {"settings", "fault_at"}  # fault_at: a test hook (registry/faults.py)
    return sorted(
        key
        for key in os.environ
        if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX) :].lower().split("__", 1)[0] not in known
    )


def _format_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(root)"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown setting '{key}'")
        else:
            lines.append(f"setting '{key}': {err['msg']} (got {err.get('input')!r})")
    return f"invalid settings ({source}):\n  " + "\n  ".join(lines)


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Load settings: `overrides` > `ROADWORK_*` env > YAML file > defaults. Raises `SettingsError`."""
    file = settings_path(path)
    if path is not None and not file.exists():
        raise SettingsError(f"settings file not found: {file}")
    unknown = _unknown_env_keys()
    if unknown:
        raise SettingsError(f"unknown setting in the environment: {', '.join(unknown)}")
    token = _settings_file.set(file)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        source = f"file {file} and ROADWORK_* environment" if file.exists() else "ROADWORK_* environment"
        raise SettingsError(_format_error(exc, source)) from exc
    finally:
        _settings_file.reset(token)


def describe_settings() -> list[tuple[str, str, str]]:
    """(key, default, description) for every setting, nested ones dotted; used by docs and `settings show`."""
    rows: list[tuple[str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                rows.append((prefix + name, "", field.description or ""))
                walk(annotation, prefix + name + ".")
            else:
                default = field.get_default(call_default_factory=True)
                rows.append((prefix + name, repr(default), field.description or ""))

    walk(Settings, "")
    return rows
