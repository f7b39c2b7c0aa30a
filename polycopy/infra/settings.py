"""Runtime settings, read once from the environment (prefix POLYCOPY_) and passed down."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.orders import ExecutionMode
from schemas.topics import TopicSpec

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the repository (polycopy/infra/settings.py)
# Read by infra/local.sh and the test fixtures, not by the application.
INFRA_VARIABLES = frozenset(
    {
        "POLYCOPY_KAFKA_PORT",
        "POLYCOPY_KAFKA_CONTROLLER_PORT",
        "POLYCOPY_KAFKA_READY_TIMEOUT",
        "POLYCOPY_PG_PORT",
        "POLYCOPY_TESTCONTAINERS",
    }
)


class StateStore(StrEnum):
    """Where the worker keeps its tables between events."""

    ROCKSDB = "rocksdb"  # on local disk: a restarted worker reads only what its changelogs got since
    MEMORY = "memory"  # restored from the changelogs, from their start, at every start


class LogFormat(StrEnum):
    """How log lines are written: plain text for a terminal, or one JSON object per line for a collector."""

    TEXT = "text"
    JSON = "json"


class PolycopySettings(BaseSettings):
    """Every setting of every component. Unknown POLYCOPY_* variables are refused at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="POLYCOPY_", frozen=True, extra="forbid", populate_by_name=True
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "POLYCOPY_KAFKA_BOOTSTRAP_SERVERS"),
        description="Kafka brokers, host:port[,host:port]",
    )
    database_url: str = Field(
        default="postgresql://polycopy@127.0.0.1:15432/polycopy",
        validation_alias=AliasChoices("DATABASE_URL", "POLYCOPY_DATABASE_URL"),
        description="PostgreSQL connection URL",
    )
    rtds_url: str = Field(
        default="ws://127.0.0.1:18765", description="RTDS WebSocket (wss://ws-live-data.polymarket.com live)"
    )
    clob_url: str = Field(
        default="http://127.0.0.1:18080", description="CLOB REST host (https://clob.polymarket.com live)"
    )
    data_api_url: str = Field(
        default="http://127.0.0.1:18080", description="Data API host (https://data-api.polymarket.com live)"
    )
    gamma_url: str = Field(
        default="http://127.0.0.1:18080", description="Gamma host (https://gamma-api.polymarket.com live)"
    )
    poll_interval_secs: float = Field(default=300.0, gt=0, description="safety-net poller: time between runs")
    poll_overlap_secs: int = Field(
        default=120, ge=0, description="safety-net poller: re-read this far behind a watermark"
    )
    poll_requests_per_sec: float = Field(
        default=15.0, gt=0, description="Data API and Gamma requests per second, at most"
    )
    execution_mode: ExecutionMode = Field(
        default=ExecutionMode.PAPER, description="paper or live; live also needs keys"
    )
    private_key: SecretStr | None = Field(default=None, description="signer key for live trading")
    chain_id: int = Field(default=137, description="Polygon chain id for order signing")
    clob_api_key: SecretStr | None = Field(
        default=None, description="CLOB L2 API key; with secret and passphrase, else derived from the signer"
    )
    clob_api_secret: SecretStr | None = Field(default=None, description="CLOB L2 API secret (urlsafe base64)")
    clob_api_passphrase: SecretStr | None = Field(default=None, description="CLOB L2 API passphrase")
    signature_type: int = Field(
        default=0,
        ge=0,
        le=3,
        description="order signature type: 0 EOA, 1 Polymarket proxy, 2 Gnosis Safe, 3 deposit wallet (1271)",
    )
    funder: str = Field(
        default="",
        pattern=r"^(0x[0-9a-fA-F]{40})?$",
        description="address holding the funds (needed for signature types 1, 2 and 3); empty = the signer",
    )
    clob_timeout_secs: float = Field(
        default=5.0, gt=0, description="live order calls: seconds before an answer counts as lost (UNKNOWN)"
    )
    # A Slack webhook URL is a credential: whoever has it can post to the channel.
    alert_webhook_url: SecretStr | None = Field(
        default=None, description="Slack-compatible webhook the alerts sink posts to; unset = log only"
    )
    consumer_group_prefix: str = Field(default="polycopy", description="prefix of every consumer group")
    topic_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]*$",
        description="namespace prepended to every topic name (tests, tenants)",
    )
    clob_market_ws_url: str = Field(
        default="ws://127.0.0.1:18080/ws/market",
        pattern=r"^(wss?://\S+)?$",
        description="CLOB market-channel WebSocket for streamed books "
        "(wss://ws-subscriptions-clob.polymarket.com/ws/market live); empty = REST books only",
    )
    clob_user_ws_url: str = Field(
        default="ws://127.0.0.1:18080/ws/user",
        pattern=r"^(wss?://\S+)?$",
        description="CLOB user-channel WebSocket a live executor follows to look its orders up as soon as "
        "the venue reports a change (wss://ws-subscriptions-clob.polymarket.com/ws/user live); "
        "empty = polling only",
    )
    live_user_channel: bool = Field(
        default=True,
        description="live executor: follow the user channel (POLYCOPY_CLOB_USER_WS_URL); "
        "false = polling only",
    )
    market_book_max_age_ms: int = Field(
        default=30_000,
        ge=0,
        description="use a streamed book only if it changed this recently, else fetch GET /book",
    )
    book_max_age_ms: int = Field(
        default=500, ge=0, description="reuse a REST-fetched order book for this long"
    )
    rtds_ping_secs: float = Field(default=5.0, gt=0, description="text PING interval on the RTDS socket")
    rtds_watchdog_secs: float = Field(
        default=20.0, gt=0, description="reconnect when no frame arrives this long"
    )
    feed_silent_secs: float = Field(
        default=300.0,
        gt=0,
        description="the RTDS producer publishes a feed_silent alert when no trade arrived for this long",
    )
    max_intent_age_secs: float = Field(
        default=60.0,
        gt=0,
        description="the executor rejects (with the reason recorded) an intent decided longer ago than this",
    )
    paper_gtc_max_secs: float = Field(
        default=3600.0,
        gt=0,
        description="a paper GTC order still resting this long after its decision is cancelled "
        "(no user cancels paper orders; it would hold its reservation forever)",
    )
    live_reconcile_secs: float = Field(
        default=2.0,
        gt=0,
        description="live orders: seconds between reconciliation passes (each open order looked up, the "
        "account's trades read once)",
    )
    live_breaker_open_secs: float = Field(
        default=60.0,
        gt=0,
        description="a venue endpoint group's circuit breaker stays open this long after 5 consecutive "
        "failures (5xx, time-outs), then lets one probe through",
    )
    live_lost_watch_secs: float = Field(
        default=3600.0,
        gt=0,
        description="a LOST live order stays fillable: its fills are looked for this long after it was sent",
    )
    instance_id: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]*$",
        description="this process's stable name within its component (a pod name, worker-1): consumer "
        "groups then use static membership and a restarted process gets its partitions back at once; "
        "empty = dynamic membership",
    )
    wallet_snapshot_interval_secs: float = Field(
        default=1.0, gt=0, description="the worker publishes a wallet's snapshot at most this often"
    )
    market_resolved_events: bool = Field(
        default=False,
        description="books producer: ask the market channel for its market_resolved events (custom features) "
        "and publish them as resolutions",
    )
    sink_flush_secs: float = Field(default=0.5, gt=0, description="Postgres sink flush interval")
    sink_batch_size: int = Field(default=5000, gt=0, description="Postgres sink records per flush at most")
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Prometheus /metrics port; 0 picks the component default"
    )
    metrics_base_port: int = Field(
        default=9108,
        ge=1,
        le=65535 - 6,
        description="moves every component's default metrics port by (this - 9108), "
        "so a second pipeline on the same host (a demo, a test) gets ports of its own",
    )
    metrics_enabled: bool = Field(default=True, description="serve /metrics from each component")
    faust_metrics: bool = Field(
        default=False,
        description="worker: also record Faust's own Prometheus sensor (faust_*: events, sends, commits, "
        "table operations) on every event; off, it costs nothing (no dashboard or alert reads it)",
    )
    worker_state_store: StateStore = Field(
        default=StateStore.ROCKSDB,
        description="worker: where its tables live: rocksdb (under data_dir, one directory per "
        "POLYCOPY_INSTANCE_ID: a restart reads only the changelog records written since) or memory (every "
        "start replays the changelogs, a day of decisions and fills, from their start)",
    )
    data_dir: Path = Field(
        default=PROJECT_ROOT / ".data", description="local state (Faust tables, infra data)"
    )
    log_level: str = Field(
        default="INFO",
        description="level of polycopy's own loggers: DEBUG, INFO, WARNING or ERROR "
        "(DEBUG adds one line per event and stage; libraries log at INFO or above)",
    )
    log_format: LogFormat = Field(
        default=LogFormat.TEXT, description="text, or json: one JSON object per line with correlation ids"
    )
    mcp_token: SecretStr | None = Field(
        default=None,
        description="bearer token `polycopy mcp --http` requires on every request (refused to start without)",
    )
    mcp_whatif_max_window_secs: int = Field(
        default=86_400, gt=0, description="`polycopy mcp`: the longest window its whatif tool replays"
    )
    mcp_whatif_max_trades: int = Field(
        default=20_000, gt=0, description="`polycopy mcp`: the most logged trades its whatif tool replays"
    )

    @model_validator(mode="after")
    def _live_needs_a_key(self) -> Self:
        if self.execution_mode is ExecutionMode.LIVE and self.private_key is None:
            raise ValueError("POLYCOPY_EXECUTION_MODE=live needs POLYCOPY_PRIVATE_KEY (paper is the default)")
        credentials = {
            "POLYCOPY_CLOB_API_KEY": self.clob_api_key,
            "POLYCOPY_CLOB_API_SECRET": self.clob_api_secret,
            "POLYCOPY_CLOB_API_PASSPHRASE": self.clob_api_passphrase,
        }
        missing = [name for name, value in credentials.items() if value is None]
        if 0 < len(missing) < len(credentials):
            raise ValueError(f"CLOB API credentials are all three or none: {', '.join(missing)} missing")
        if self.signature_type in (1, 2, 3) and not self.funder:
            raise ValueError(
                f"POLYCOPY_SIGNATURE_TYPE={self.signature_type} needs POLYCOPY_FUNDER (the funds' wallet)"
            )
        return self

    def topic_name(self, spec: TopicSpec) -> str:
        """The broker-side name of a topic in this deployment's namespace."""
        return self.topic_prefix + spec.name

    def consumer_group(self, component: str) -> str:
        """The consumer group of one component."""
        return f"{self.consumer_group_prefix}-{component}"

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables, for child processes, without the secrets (`SecretStr`:
        the signer key, the CLOB API credentials): a child's environment is readable by every process of the
        user and ends up in crash reports. A child that needs a secret inherits it from the environment it
        came from."""
        env = {}
        for name, value in self.model_dump().items():
            if value is None or isinstance(value, SecretStr):
                continue
            env[f"POLYCOPY_{name.upper()}"] = str(value.value if hasattr(value, "value") else value)
        # The bare names win over the prefixed ones when both are set, so children get them too.
        env["KAFKA_BOOTSTRAP_SERVERS"] = self.kafka_bootstrap_servers
        env["DATABASE_URL"] = self.database_url
        return env


SECRET_VARIABLES = frozenset(
    f"POLYCOPY_{name.upper()}"
    for name, field in PolycopySettings.model_fields.items()
    if "SecretStr" in str(field.annotation)
)


def without_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """An environment for a child process: every variable but the secret settings."""
    return {name: value for name, value in environ.items() if name not in SECRET_VARIABLES}


def find_unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One line per POLYCOPY_* variable that names no setting (a typo would otherwise be ignored silently)."""
    known = {f"POLYCOPY_{name.upper()}" for name in PolycopySettings.model_fields} | INFRA_VARIABLES
    problems = []
    for name in sorted(key for key in environ if key.startswith("POLYCOPY_") and key not in known):
        close = difflib.get_close_matches(name, sorted(known), n=1)
        problems.append(f"unknown setting {name}" + (f" (did you mean {close[0]}?)" if close else ""))
    return problems
