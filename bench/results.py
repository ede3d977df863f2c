"""What each scenario hands back, as dataclasses; `to_json` makes the report's maps of them.

A field's name is its key in the JSON report, in the order declared here (the report's
`results` section: docs/performance.md and tests/integration/test_bench.py read those keys).
A field declared with `INLINE` has its own fields in its place instead of a map of them; the
resilience parts share `Tally` and `Exactness` that way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .stats import Latency

INLINE = {"inline": True}


def to_json(value: Any) -> Any:
    """`dataclasses.asdict`, recursively, with the fields of an `INLINE` field spliced in."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = to_json(getattr(value, f.name))
            if f.metadata.get("inline"):
                out.update(item)
            else:
                out[f.name] = item
        return out
    if isinstance(value, list | tuple):
        return type(value)(to_json(v) for v in value)
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


# --- throughput, fanout, nodes, idempotency ---------------------------------------------------


@dataclass
class Run:
    """One measured run (`measure.measure`): member.update ops and every member's message."""

    label: str
    rooms: int
    members_per_room: int
    nodes: int
    mode: str  # "max" (closed loop) or "paced"
    idempotency_keys: bool
    offered_ops_per_s: float | None
    duration_s: float
    sender_connections: int
    window_per_connection: int | None
    sent: int
    shed: int
    ok: int
    errors: dict[str, int]
    unanswered: int
    ops_per_s: float | None
    deliveries: int
    expected_deliveries: int
    missing_deliveries: int
    incomplete_ops: int
    deliveries_per_s: float | None
    ack_latency_ms: Latency
    delivery_latency_ms: Latency
    hub_cpu_s: float
    hub_cpu_util: float | None
    hub_cpu_us_per_delivery: float | None
    hub_cpu_us_per_op: float | None
    # What one fully busy hub core would do at this cost: noise-resistant capacity.
    ops_per_hub_core_s: float | None
    deliveries_per_hub_core_s: float | None
    load_cpu_s: float
    load_cpu_us_per_delivery: float | None
    redis_cpu_s: float | None
    measured_wall_s: float
    waited_for_quiet_s: float
    # Everything else the machine did meanwhile (other programs): the noise floor.
    other_cpu_s: float
    machine_cpu_util: float


@dataclass
class Runs:
    runs: list[Run]


@dataclass
class Throughput:
    runs: list[Run]  # the max run of each configuration
    sweep: list[Run]  # the paced runs of the sweep configuration, then its max run


@dataclass
class Idempotency:
    runs: list[Run]  # without and with keys, alternating
    hub_us_per_op_without: list[float | None]
    hub_us_per_op_with: list[float | None]
    median_ratio: float
    within_5pct: bool


@dataclass
class Workers:
    workers: list[int]  # the workers of each run: 1, then 2
    runs: list[Run]  # the same closed loop against each; hub CPU summed over the processes
    hub_process_cpu_s: list[list[float]]  # each run: CPU seconds of each hub process, largest first
    ops_speedup: float | None  # ops/s of the last run / the first's
    deliveries_speedup: float | None
    cpu_per_delivery_ratio: float | None  # hub us/delivery of the last run / the first's


@dataclass
class MetricsConfig:
    rooms: int
    members_per_room: int
    hub_us_per_delivery_off: list[float | None]
    hub_us_per_delivery_on: list[float | None]
    median_ratio: float  # on / off
    within_3pct: bool


@dataclass
class MetricsCost:
    runs: list[Run]  # off and on, alternating, per configuration
    configs: list[MetricsConfig]


# --- http -------------------------------------------------------------------------------------


@dataclass
class ApiRun:
    """One measured run of the http scenario: member.update over one transport."""

    label: str
    transport: str  # "http" (the server API) or "websocket"
    mode: str  # "max" (closed loop) or "paced"
    round: int
    connections: int  # one request in flight on each
    offered_per_s: float | None
    duration_s: float
    sent: int
    shed: int
    ok: int
    errors: dict[str, int]  # HTTP status (http) or error code (websocket) -> count
    http_statuses: dict[str, int] | None  # http: every reply's status -> count
    unanswered: int
    req_per_s: float | None
    latency_ms: Latency
    hub_cpu_s: float
    hub_cpu_util: float | None
    hub_cpu_us_per_request: float | None
    load_cpu_us_per_request: float | None
    redis_cpu_s: float | None
    measured_wall_s: float
    waited_for_quiet_s: float
    other_cpu_s: float
    machine_cpu_util: float


@dataclass
class ApiSummary:
    """The medians over the rounds of one transport and mode."""

    transport: str
    mode: str
    rounds: int
    req_per_s: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    hub_cpu_us_per_request: float | None
    hub_cpu_us_per_request_rounds: list[float | None]


@dataclass
class HttpApi:
    rooms: int
    members_per_room: int
    connections: int
    runs: list[ApiRun]  # alternating: websocket then http, http then websocket, ...
    summary: list[ApiSummary]
    http_req_per_s: float | None  # the median of the closed loops
    cpu_ratio: float | None  # hub us/request, http / websocket, medians of the closed loops
    cpu_ratio_paced: float | None
    within_2x: bool | None


# --- ceiling, connections ---------------------------------------------------------------------


@dataclass
class Ceiling:
    ceiling_per_s: int
    offered_per_s: int
    duration_s: float
    nodes: int
    sender_connections: int
    sent: int
    admitted: int
    rejected: int
    other_errors: int
    unanswered: int
    admitted_per_s: float
    admitted_within_5pct: bool
    rejection_latency_ms: Latency
    admitted_ack_latency_ms: Latency
    seq_before: int
    seq_after: int
    seq_advanced: int
    seq_advanced_equals_admitted: bool
    messages_delivered: int
    messages_gapless: bool
    every_member_got_every_message: bool
    hub_cpu_s: float
    waited_for_quiet_s: float


@dataclass
class Connections:
    connections: int
    load_processes: int
    still_open_after_idle: int
    connect_time_s: float
    connections_per_s: float
    hub_cpu_us_per_connection: float
    hub_rss_before_bytes: int
    hub_rss_after_bytes: int
    hub_rss_after_connect_bytes: int
    hub_bytes_per_connection: int
    hub_kib_per_connection: float
    nofile_limit: int
    waited_for_quiet_s: float


# --- presence, churn --------------------------------------------------------------------------


@dataclass
class PresenceRun:
    """One `connections` run of the presence scenario, on a fresh hub."""

    presence: bool  # hub --presence true and auth with presence: true, or --presence false
    round: int
    figures: Connections = field(metadata=INLINE)
    presence_events_received: int  # by the connections, while they connected and idled
    online_counted: int | None  # room.presence summed over the rooms, after the idle (on)
    online_exact: bool | None  # online_counted == connections (on); None when off
    other_cpu_cores: float  # used by programs the bench did not start, while connecting


@dataclass
class PresenceCost:
    connections: int
    room_members: int
    rooms: int
    rounds: int
    runs: list[PresenceRun]  # off, on, then on, off, ... (the order flipped each round)
    connections_per_s_off: list[float]
    connections_per_s_on: list[float]
    connect_rate_ratio: float  # median on / median off
    kib_per_connection_off: list[float]
    kib_per_connection_on: list[float]
    rss_ratio: float  # median on / median off
    hub_cpu_us_per_connection_off: list[float]
    hub_cpu_us_per_connection_on: list[float]
    cpu_ratio: float
    within_20pct: bool  # connect rate >= 0.8 x off and RSS per connection <= 1.2 x off
    failed_checks: list[str]  # correctness, not speed: non-empty fails the bench (exit 1)


@dataclass
class ObserverView:
    user: str
    node: str
    events: int
    events_during_churn: int
    view_exact: bool  # what its events say is online = the users connected at the end
    missing: list[str]  # connected at the end, offline in its view (first 10)
    extra: list[str]  # online in its view, not connected at the end (first 10)


@dataclass
class OnlineMismatch:
    user: str
    connected_on: list[str]  # the nodes where it holds a connection at the end
    redis_online_on: list[str]  # the nodes its online set in Redis names
    in_room_presence: bool


@dataclass
class Churn:
    nodes: int
    users: int
    users_with_two_connections: int
    rooms: int
    observers: int
    duration_s: float
    connects: int
    disconnects: int
    aborts: int  # of the disconnects, TCP aborts without a close frame
    connect_failures: int
    connect_errors: list[str]
    connects_per_s: float
    disconnects_per_s: float
    auth_latency_ms: Latency  # connect + auth reply, per connection
    presence_events: int  # received by all observers, during the churn and after it
    presence_events_per_s: float  # received by all observers during the churn
    presence_events_per_s_per_observer: float
    connected_at_end: int  # users with a connection open when the churn stopped
    online_at_end: int  # room.presence (observers not counted), once settled
    settled_after_s: float | None  # churn stopped -> room.presence exact (None: never)
    online_set_exact: bool  # room.presence = the users connected at the end
    redis_online_sets_exact: bool  # each user's online set names exactly its nodes
    live_node_instances: int  # in Redis' presence node set (2: one per hub)
    observers_exact: bool  # every observer's view from its events = the connected users
    observer_views: list[ObserverView]
    mismatches: list[OnlineMismatch]  # the first 20 users whose presence is wrong
    late_auths: int  # users whose auth was sent around the auth deadline of a third node
    late_auth_deadline_s: float
    late_auths_answered: int  # of them, auth replied ok (the others: closed 4401)
    late_auths_online_after_close: int  # online once every one of their connections closed
    late_auth_users_online: list[str]  # the first 10 of those
    failed_checks: list[str]  # non-empty fails the bench (exit 1)


# --- resilience -------------------------------------------------------------------------------


@dataclass
class Tally:
    """The writer's attempts (`verify.verify`)."""

    attempts: int
    acknowledged: int
    failed: int
    failed_by_code: dict[str, int]


@dataclass
class MemberCheck:
    """What one member received, against the room's history and the acknowledged ops."""

    user: str
    received: int
    duplicates: int
    gaps: int
    not_in_history: int
    in_order: bool
    # the client drops what it already has; these came twice over the wire
    wire_duplicates_dropped_by_client: int
    equals_history: bool
    equals_acknowledged: bool
    resyncs: int


@dataclass
class Exactness:
    """Acks, history and deliveries compared (`verify.verify`)."""

    history_messages: int
    history_gapless: bool
    acknowledged_in_history_once: int
    acknowledged_missing_from_history: int
    acknowledged_repeated_in_history: int
    failed_but_in_history: int
    failed_but_in_history_codes: dict[str, int]
    history_not_from_writer: int
    per_member: list[MemberCheck]
    every_ack_in_history_exactly_once: bool
    every_member_got_history_exactly_once_in_order: bool
    members_missing_messages: int
    delivered_equals_acknowledged: bool


@dataclass
class Verdict:
    tally: Tally
    exactness: Exactness
    failed_but_in_history_attempts: list[int]  # attempt indexes (not in the report)


@dataclass
class FailedButApplied:
    code: str
    sent_ms_after_stop: float | None
    failed_ms_after_stop: float | None


@dataclass
class RedisRestart:
    nodes: int
    members: int
    rate_per_s: float
    duration_s: float
    redis_persistence: str
    redis_stopped_after_s: float
    redis_shutdown_s: float
    redis_down_s: float
    redis_restart_to_ready_s: float
    ops: int
    ops_unfinished: int
    shed: int
    tally: Tally = field(metadata=INLINE)
    acks_while_redis_down: int
    failure_window_s: float
    first_failure_after_stop_ms: float | None
    last_ack_before_stop_ms: float | None
    first_ack_after_redis_back_ms: float | None
    ack_latency_ms: Latency
    first_message_after_redis_back_ms: Latency
    # ops that failed but were applied: when they were sent and failed, from the SIGTERM
    failed_but_applied: list[FailedButApplied]
    exactness: Exactness = field(metadata=INLINE)


@dataclass
class MovedClient:
    """A member of the restarted node: when it was closed, OPEN again, and live again."""

    user: str
    closed: bool
    close_code: int | None
    closed_after_sigterm_ms: float | None
    open_again_ms: float | None
    first_live_message_ms: float | None
    reconnected_to: str


@dataclass
class NodeRestart:
    nodes: int
    members: int
    members_on_restarted_node: int
    rate_per_s: float
    duration_s: float
    writer_on: str
    node_stopped_after_s: float
    node_shutdown_s: float
    node_down_s: float
    ops: int
    ops_unfinished: int
    shed: int
    tally: Tally = field(metadata=INLINE)
    ack_latency_ms: Latency
    clients_closed: int
    close_codes: list[int | None]
    resume_open_ms: Latency
    resume_first_live_message_ms: Latency
    clients_without_live_message: int
    clients: list[MovedClient]
    exactness: Exactness = field(metadata=INLINE)


@dataclass
class StalledRun:
    """One stalled-client run (`stall.py`)."""

    send_buffer_limit_bytes: int
    send_buffer_limit_is_default: bool
    ops: int
    window: int
    pad_bytes: int
    message_bytes: int
    message_bytes_total: int
    acknowledged: int
    errors: dict[str, int]
    elapsed_s: float
    ops_per_s: float | None
    ack_latency_ms: Latency
    hub_rss_before_bytes: int
    hub_rss_peak_bytes: int
    hub_rss_end_of_ops_bytes: int
    hub_rss_after_bytes: int
    hub_rss_growth_peak_bytes: int
    hub_kernel_send_queue_peak_bytes: int
    hub_kernel_send_queue_end_of_ops_bytes: int
    rss_samples: int
    stalled_dropped: bool
    stalled_dropped_after_s: float | None
    stalled_dropped_after_acked_ops: int | None
    stalled_released_after_drop_s: float | None
    stalled_connection_open_at_end: bool
    stalled_kernel_queued_bytes: int | None
    stalled_received_when_reading_again: int
    stalled_received_in_order: bool
    stalled_close_code: int | None
    reader_received: int
    reader_in_order: bool
    reader_got_every_ack_in_order: bool


@dataclass
class StalledClient:
    runs: list[StalledRun]


@dataclass
class Resilience:
    redis_restart: RedisRestart
    node_restart: NodeRestart
    stalled_client: StalledClient


# --- hostile ----------------------------------------------------------------------------------


@dataclass
class PingFlood:
    authenticated: bool
    pings_sent: int
    hub_rss_before_mib: float
    hub_rss_peak_mib: float
    hub_rss_after_mib: float
    dropped_after_s: float | None


@dataclass
class ResumeStorm:
    members: bool
    room_messages: int
    resumed_from_seq: int
    clients: int
    frames_received: int
    frames_expected: int
    wall_s: float
    hub_cpu_ms_per_resume: float
    hub_rss_before_mib: float
    hub_rss_peak_mib: float
    member_request_wait_ms: dict[str, float | None]  # p50, max


@dataclass
class StalledReader:
    message_pad_bytes: int
    ops_while_stalled: int
    bound_s: float
    dropped_after_s: float | None


@dataclass
class Hostile:
    ping_flood: list[PingFlood]
    resume_storm: list[ResumeStorm]
    stalled_reader: list[StalledReader]
