"""DACP sans-I/O: request parsing, DMAP reply body, policy decisions (sender identity:
`test_dacp_identity`)."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airplay_provider.protocol.dacp import (
    NO_ACTION,
    ActionKind,
    CommandKind,
    DacpAction,
    DacpCommand,
    DacpError,
    DacpNotFoundError,
    DacpParseError,
    DacpPlayerState,
    DacpPolicy,
    encode_volume_property,
    parse_active_remote,
    parse_request_target,
)

# -- parsing -------------------------------------------------------------------------------

SIMPLE = [
    ("play", CommandKind.PLAY),
    ("pause", CommandKind.PAUSE),
    ("playpause", CommandKind.PLAY_PAUSE),
    ("playresume", CommandKind.PLAY_RESUME),
    ("stop", CommandKind.STOP),
    ("nextitem", CommandKind.NEXT_ITEM),
    ("previtem", CommandKind.PREV_ITEM),
    ("volumeup", CommandKind.VOLUME_UP),
    ("volumedown", CommandKind.VOLUME_DOWN),
    ("shuffle_songs", CommandKind.SHUFFLE_SONGS),
    ("discrete-pause", CommandKind.DISCRETE_PAUSE),
]


@pytest.mark.parametrize(("name", "kind"), SIMPLE)
def test_simple_commands(name: str, kind: CommandKind) -> None:
    assert parse_request_target(f"/ctrl-int/1/{name}") == DacpCommand(kind, None, name)


def test_session_id_query_and_case_are_tolerated() -> None:
    command = parse_request_target("/ctrl-int/1/NextItem?session-id=1940361390")
    assert command.kind is CommandKind.NEXT_ITEM


def test_absolute_form_target() -> None:
    command = parse_request_target("http://10.0.0.2:3689/ctrl-int/1/stop")
    assert command.kind is CommandKind.STOP


def test_unknown_command_is_unsupported_not_an_error() -> None:
    assert parse_request_target("/ctrl-int/1/beginff") == DacpCommand(
        CommandKind.UNSUPPORTED, None, "beginff"
    )
    assert parse_request_target("/ctrl-int/1/playstatusupdate?revision-number=1").kind is (
        CommandKind.UNSUPPORTED
    )


@pytest.mark.parametrize(
    ("query", "kind", "value"),
    [
        ("dmcp.device-volume=-20.000000", CommandKind.DEVICE_VOLUME, -20.0),
        ("dmcp.device-volume=-144", CommandKind.DEVICE_VOLUME, -144.0),
        ("dmcp.device-volume=0", CommandKind.DEVICE_VOLUME, 0.0),
        ("dmcp.volume=50.000000", CommandKind.VOLUME, 50.0),
        ("dmcp.volume=0", CommandKind.VOLUME, 0.0),
        ("dmcp.volume=100", CommandKind.VOLUME, 100.0),
        ("dmcp.device-prevent-playback=1", CommandKind.PREVENT_PLAYBACK, 1.0),
        ("dmcp.device-prevent-playback=0", CommandKind.PREVENT_PLAYBACK, 0.0),
        ("dmcp.device-busy=1", CommandKind.DEVICE_BUSY, 1.0),
        ("include-speaker-id=42&dmcp.volume=33", CommandKind.VOLUME, 33.0),
        ("dmcp.device-volume=%2D15.5", CommandKind.DEVICE_VOLUME, -15.5),
    ],
)
def test_setproperty(query: str, kind: CommandKind, value: float) -> None:
    assert parse_request_target(f"/ctrl-int/1/setproperty?{query}") == DacpCommand(
        kind, value, "setproperty"
    )


def test_setproperty_unknown_property_is_unsupported() -> None:
    command = parse_request_target("/ctrl-int/1/setproperty?dacp.shufflestate=1")
    assert command.kind is CommandKind.UNSUPPORTED


def test_getproperty_volume() -> None:
    for target in (
        "/ctrl-int/1/getproperty?properties=dmcp.volume",
        "/ctrl-int/1/getproperty?properties=dmcp.volume&session-id=5",
        "/ctrl-int/1/getproperty?properties=dacp.playingtime,dmcp.volume",
    ):
        assert parse_request_target(target).kind is CommandKind.GET_VOLUME
    other = parse_request_target("/ctrl-int/1/getproperty?properties=dacp.playingtime")
    assert other.kind is CommandKind.UNSUPPORTED


@pytest.mark.parametrize(
    "target",
    ["/", "/server-info", "/ctrl-int/2/play", "/ctrl-int/1", "/login?pairing-guid=0x1", ""],
)
def test_non_control_paths_are_not_found(target: str) -> None:
    with pytest.raises(DacpNotFoundError):
        parse_request_target(target)


@pytest.mark.parametrize(
    "target",
    [
        "/ctrl-int/1/",
        "/ctrl-int/1/play/extra",
        "/ctrl-int/1/pl%20ay",
        "/ctrl-int/1/%ff%fe",
        "/ctrl-int/1/" + "a" * 65,
        "/ctrl-int/1/setproperty",
        "/ctrl-int/1/setproperty?dmcp.device-volume=abc",
        "/ctrl-int/1/setproperty?dmcp.device-volume=nan",
        "/ctrl-int/1/setproperty?dmcp.device-volume=inf",
        "/ctrl-int/1/setproperty?dmcp.device-volume=1e3",
        "/ctrl-int/1/setproperty?dmcp.device-volume=",
        "/ctrl-int/1/setproperty?dmcp.device-volume=-300",
        "/ctrl-int/1/setproperty?dmcp.volume=101",
        "/ctrl-int/1/setproperty?dmcp.volume=-1",
        "/ctrl-int/1/setproperty?dmcp.volume=1_0",
        "/ctrl-int/1/setproperty?dmcp.device-prevent-playback=2",
        "/ctrl-int/1/setproperty?dmcp.device-prevent-playback=yes",
        "/ctrl-int/1/setproperty?dmcp.device-busy=",
        "/ctrl-int/1/setproperty?dmcp.volume=%ff",
        "/ctrl-int/1/getproperty",
        "/ctrl-int/1/getproperty?session-id=1",
        "/ctrl-int/1/play?" + "&".join(f"k{i}=v" for i in range(17)),
        "/ctrl-int/1/play?" + "x" * 3000,
    ],
)
def test_malformed_control_requests(target: str) -> None:
    with pytest.raises(DacpParseError):
        parse_request_target(target)


@given(st.text(max_size=300))
def test_parser_only_raises_typed_errors(target: str) -> None:
    try:
        command = parse_request_target(target)
    except DacpError:
        return
    assert isinstance(command.kind, CommandKind)
    assert "/ctrl-int/1/" in unquote(target)


@given(
    st.sampled_from(["setproperty?dmcp.device-volume=", "setproperty?dmcp.volume="]),
    st.text(max_size=40),
)
def test_property_values_only_raise_typed_errors(prefix: str, raw: str) -> None:
    try:
        command = parse_request_target(f"/ctrl-int/1/{prefix}{raw}")
    except DacpParseError:
        return
    assert command.value is not None
    assert -200.0 <= command.value <= 100.0


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("123", "123"),
        (" 4294967295 ", "4294967295"),
        ("007", "7"),
        ("4294967296", None),
        ("12345678901", None),
        ("abc", None),
        ("-1", None),
        ("", None),
        (None, None),
        ("1 2", None),
    ],
)
def test_parse_active_remote(header: str | None, token: str | None) -> None:
    assert parse_active_remote(header) == token


def test_encode_volume_property_bytes() -> None:
    assert encode_volume_property(84) == bytes.fromhex(
        "636d6774 00000018 6d737474 00000004 000000c8 636d766f 00000004 00000054"
    )
    assert encode_volume_property(0)[-4:] == b"\x00\x00\x00\x00"
    with pytest.raises(ValueError, match="out of"):
        encode_volume_property(101)


# -- policy --------------------------------------------------------------------------------


def state(**kwargs: object) -> DacpPlayerState:
    base: dict[str, object] = {"player_id": "p1", "playing": True, "volume": 50}
    base.update(kwargs)
    return DacpPlayerState(**base)  # type: ignore[arg-type]


def cmd(kind: CommandKind, value: float | None = None) -> DacpCommand:
    return DacpCommand(kind, value)


@pytest.mark.parametrize(
    ("kind", "action"),
    [
        (CommandKind.PLAY_PAUSE, ActionKind.PLAY_PAUSE),
        (CommandKind.STOP, ActionKind.STOP),
        (CommandKind.NEXT_ITEM, ActionKind.NEXT),
        (CommandKind.PREV_ITEM, ActionKind.PREVIOUS),
        (CommandKind.VOLUME_UP, ActionKind.VOLUME_UP),
        (CommandKind.VOLUME_DOWN, ActionKind.VOLUME_DOWN),
        (CommandKind.SHUFFLE_SONGS, ActionKind.TOGGLE_SHUFFLE),
    ],
)
@pytest.mark.parametrize("playing", [True, False])
def test_direct_commands(kind: CommandKind, action: ActionKind, playing: bool) -> None:
    assert DacpPolicy().on_command(cmd(kind), state(playing=playing), 0.0) == DacpAction(action)


@pytest.mark.parametrize("kind", [CommandKind.PLAY, CommandKind.PLAY_RESUME])
def test_play_ignored_when_already_playing(kind: CommandKind) -> None:
    policy = DacpPolicy()
    assert policy.on_command(cmd(kind), state(playing=True), 0.0) == NO_ACTION
    assert policy.on_command(cmd(kind), state(playing=False), 0.0) == DacpAction(ActionKind.PLAY)


def test_pause_only_when_playing() -> None:
    policy = DacpPolicy()
    assert policy.on_command(cmd(CommandKind.PAUSE), state(playing=True), 0.0) == DacpAction(
        ActionKind.PAUSE
    )
    assert policy.on_command(cmd(CommandKind.PAUSE), state(playing=False), 0.0) == NO_ACTION


@pytest.mark.parametrize(
    "kind", [CommandKind.UNSUPPORTED, CommandKind.DEVICE_BUSY, CommandKind.GET_VOLUME]
)
def test_commands_without_action(kind: CommandKind) -> None:
    assert DacpPolicy().on_command(cmd(kind, 1.0), state(), 0.0) == NO_ACTION


def test_discrete_pause_is_debounced() -> None:
    policy = DacpPolicy()
    assert policy.on_command(cmd(CommandKind.DISCRETE_PAUSE), state(), 10.0) == NO_ACTION
    assert policy.pause_deadline == 11.0
    assert policy.poll(state(), 10.99) == NO_ACTION
    assert policy.pause_deadline == 11.0
    assert policy.poll(state(), 11.0) == DacpAction(ActionKind.PAUSE)
    assert policy.pause_deadline is None
    assert policy.poll(state(), 12.0) == NO_ACTION


def test_discrete_pause_repeated_restarts_the_timer() -> None:
    policy = DacpPolicy()
    policy.on_command(cmd(CommandKind.DISCRETE_PAUSE), state(), 10.0)
    policy.on_command(cmd(CommandKind.DISCRETE_PAUSE), state(), 10.5)
    assert policy.poll(state(), 11.2) == NO_ACTION
    assert policy.poll(state(), 11.5) == DacpAction(ActionKind.PAUSE)


def test_discrete_pause_ignored_when_not_playing_and_dropped_if_stopped_meanwhile() -> None:
    policy = DacpPolicy()
    policy.on_command(cmd(CommandKind.DISCRETE_PAUSE), state(playing=False), 0.0)
    assert policy.pause_deadline is None
    policy.on_command(cmd(CommandKind.DISCRETE_PAUSE), state(), 0.0)
    assert policy.poll(state(playing=False), 2.0) == NO_ACTION
    assert policy.pause_deadline is None


def test_prevent_playback_cancels_pending_pause_and_stops_session() -> None:
    policy = DacpPolicy()
    policy.on_command(cmd(CommandKind.DISCRETE_PAUSE), state(), 0.0)
    action = policy.on_command(cmd(CommandKind.PREVENT_PLAYBACK, 1.0), state(), 0.2)
    assert action == DacpAction(ActionKind.STOP_SESSION)
    assert policy.pause_deadline is None
    assert policy.prevent_playback
    assert policy.poll(state(), 5.0) == NO_ACTION


def test_prevent_playback_leaves_group_when_grouped() -> None:
    action = DacpPolicy().on_command(
        cmd(CommandKind.PREVENT_PLAYBACK, 1.0), state(grouped=True), 0.0
    )
    assert action == DacpAction(ActionKind.LEAVE_GROUP)


@pytest.mark.parametrize(
    "player", [state(transitioning=True), state(has_stream=False, playing=False)]
)
def test_prevent_playback_ignored_mid_transition_or_without_stream(
    player: DacpPlayerState,
) -> None:
    policy = DacpPolicy()
    policy.on_command(cmd(CommandKind.DISCRETE_PAUSE), state(), 0.0)
    assert policy.on_command(cmd(CommandKind.PREVENT_PLAYBACK, 1.0), player, 0.1) == NO_ACTION
    assert not policy.prevent_playback
    assert policy.pause_deadline is None  # still cancelled


def test_prevent_playback_duplicate_ignored_and_zero_clears() -> None:
    policy = DacpPolicy()
    prevent, allow = cmd(CommandKind.PREVENT_PLAYBACK, 1.0), cmd(CommandKind.PREVENT_PLAYBACK, 0.0)
    assert policy.on_command(prevent, state(), 0.0).kind is ActionKind.STOP_SESSION
    assert policy.on_command(prevent, state(), 0.1) == NO_ACTION
    assert policy.on_command(allow, state(), 0.2) == NO_ACTION
    assert not policy.prevent_playback
    assert policy.on_command(prevent, state(), 0.3).kind is ActionKind.STOP_SESSION


def test_reset_clears_prevent_and_pending_pause() -> None:
    policy = DacpPolicy()
    policy.on_command(cmd(CommandKind.PREVENT_PLAYBACK, 1.0), state(), 0.0)
    policy.on_command(cmd(CommandKind.DISCRETE_PAUSE), state(), 0.0)
    policy.reset()
    assert not policy.prevent_playback
    assert policy.pause_deadline is None
    assert policy.on_command(cmd(CommandKind.PREVENT_PLAYBACK, 1.0), state(), 1.0).kind is (
        ActionKind.STOP_SESSION
    )


@pytest.mark.parametrize(
    ("db", "volume"),
    [(-144.0, 0), (-30.0, 0), (-40.0, 0), (-15.0, 50), (0.0, 100), (-7.5, 75), (3.0, 100)],
)
def test_device_volume_db_map(db: float, volume: int) -> None:
    action = DacpPolicy().on_command(cmd(CommandKind.DEVICE_VOLUME, db), state(volume=None), 0.0)
    assert action == DacpAction(ActionKind.SET_VOLUME, volume)


def test_device_volume_echo_suppressed_within_window() -> None:
    policy = DacpPolicy()
    policy.on_volume_sent(60, 100.0)
    # -12 dB -> 60, -11.4 dB -> 62: both echoes of our 60 within 3 s
    for db, expected in ((-12.0, 60), (-11.4, 62)):
        action = policy.on_command(cmd(CommandKind.DEVICE_VOLUME, db), state(volume=60), 101.0)
        assert action == DacpAction(ActionKind.UPDATE_VOLUME_STATE, expected)


def test_device_volume_real_change_applied() -> None:
    policy = DacpPolicy()
    policy.on_volume_sent(60, 100.0)
    # 4 away from what we sent: a user change even inside the window
    action = policy.on_command(cmd(CommandKind.VOLUME, 64.0), state(volume=60), 100.5)
    assert action == DacpAction(ActionKind.SET_VOLUME, 64)
    # close to what we sent but after the window: a user change
    action = policy.on_command(cmd(CommandKind.VOLUME, 61.0), state(volume=60), 103.01)
    assert action == DacpAction(ActionKind.SET_VOLUME, 61)


def test_device_volume_equal_to_current_is_state_only() -> None:
    action = DacpPolicy().on_command(cmd(CommandKind.VOLUME, 40.0), state(volume=40), 0.0)
    assert action == DacpAction(ActionKind.UPDATE_VOLUME_STATE, 40)


def test_device_volume_before_send_time_is_not_an_echo() -> None:
    policy = DacpPolicy()
    policy.on_volume_sent(60, 100.0)
    action = policy.on_command(cmd(CommandKind.VOLUME, 60.0), state(volume=20), 99.0)
    assert action == DacpAction(ActionKind.SET_VOLUME, 60)


@pytest.mark.parametrize(
    "command", [cmd(CommandKind.DEVICE_VOLUME, -10.0), cmd(CommandKind.VOLUME, 10.0)]
)
def test_device_volume_ignored_when_configured(command: DacpCommand) -> None:
    policy = DacpPolicy()
    assert policy.on_command(command, state(ignore_device_volume=True), 0.0) == NO_ACTION


@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(CommandKind)),
            st.floats(min_value=-144, max_value=100),
            st.booleans(),
            st.booleans(),
            st.floats(min_value=0, max_value=5),
        ),
        max_size=30,
    )
)
def test_policy_actions_are_always_well_formed(
    steps: list[tuple[CommandKind, float, bool, bool, float]],
) -> None:
    policy = DacpPolicy()
    now = 0.0
    for kind, value, playing, grouped, dt in steps:
        now += dt
        player = state(playing=playing, grouped=grouped)
        arg = abs(value) % 101 if kind is CommandKind.VOLUME else value
        action = policy.on_command(cmd(kind, arg), player, now)
        if action.kind in (ActionKind.SET_VOLUME, ActionKind.UPDATE_VOLUME_STATE):
            assert action.volume is not None
            assert 0 <= action.volume <= 100
        else:
            assert action.volume is None
        deadline = policy.pause_deadline
        assert deadline is None or deadline <= now + 1.0
        if kind is CommandKind.PLAY and playing:
            assert action == NO_ACTION
