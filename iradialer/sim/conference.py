"""
mod_conference, as much of it as a dialer uses: rooms created on first entry and destroyed
when the last member leaves, member ids from one process-wide counter (kept on the channel,
so a channel re-entering gets its old id), the C{conference} API (C{list}, C{json_list},
C{mute} ... C{kick}, C{hup}, by member id, C{all}, C{last} or C{uuid=<channel>}) and the
CUSTOM C{conference::maintenance} events with the C{Action} values the
conference_lifecycle capture shows.  No audio is mixed.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from iradialer.sim.wire import Event, cjson_pretty, separate_string

if TYPE_CHECKING:
    from iradialer.sim.apps import ConferenceApp
    from iradialer.sim.channels import Channel
    from iradialer.sim.simulator import Simulator

ALONE_SOUND = "/usr/local/freeswitch/share/freeswitch/sounds/en/us/callie/conference/conf-alone.wav"
ENTER_TONE = "tone_stream://%(200,0,500,600,700)"
EXIT_TONE = "tone_stream://%(500,0,300,200,100,50,25)"
MOH = "local_stream://moh"
FLAGS = "running|answered|enforce_min|dynamic|exit_sound|enter_sound|json_status"

MEMBER_SYNTAX = {
    "mute": "<[member_id|all]|last|non_moderator> [<quiet>]",
    "unmute": "<[member_id|all]|last|non_moderator> [<quiet>]",
    "deaf": "<[member_id|all]|last|non_moderator>",
    "undeaf": "<[member_id|all]|last|non_moderator>",
    "hold": "<[member_id|all]|last|non_moderator> [file]",
    "unhold": "<[member_id|all]|last|non_moderator>",
    "kick": "<[member_id|all|last|non_moderator]> [<optional sound file>]",
    "hup": "<[member_id|all|last|non_moderator]>",
}


@dataclass
class Member:
    id: int
    channel: Channel
    app: ConferenceApp
    conference: Conference
    joined: float
    hear: bool = True
    speak: bool = True
    hold: bool = False


@dataclass
class Conference:
    name: str
    profile: str
    uuid: str
    created: float
    members: list[Member] = field(default_factory=list)  # newest first, like FreeSWITCH
    floor: int | None = None
    moh_since: float | None = None

    def member(self, member_id: int) -> Member | None:
        return next((m for m in self.members if m.id == member_id), None)


class Conferences:
    """Every conference of the simulator, and the C{conference} API."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.rooms: dict[str, Conference] = {}
        self.next_id = 1
        self.presence_count = 0

    # Members

    def join(self, channel: Channel, app: ConferenceApp) -> Member:
        name, _, profile = app.arg.partition("@")
        profile = (profile.split("+")[0] or "default").strip()
        name = name.strip()
        now = self.sim.clock.seconds()
        room = self.rooms.get(name)
        if room is None:
            room = Conference(name, profile, str(uuidlib.uuid4()), now)
            self.rooms[name] = room
            self._fire(room, "conference-create", "mod_conference.c", "conference_new", 3848)
        channel.fire_codec()
        stored = channel.vars.get("conference_member_id")
        if stored and stored.isdigit():
            member_id = int(stored)
        else:
            member_id = self.next_id
            self.next_id += 1
        member = Member(member_id, channel, app, room, now)
        channel.vars.set("conference_name", name)
        channel.vars.set("conference_member_id", member_id)
        channel.vars.set("conference_uuid", room.uuid)
        room.members.insert(0, member)
        count = len(room.members)
        if count == 1:
            self._alone(room)
        self._fire(room, "add-member", "conference_member.c", "conference_member_add", 962, member)
        self._presence(room)
        if count == 1:
            # The conference thread gives the floor on its next 20 ms pass.
            self.sim.clock.callLater(0.02, self._first_floor, room, member)
        if count == 2:
            self._moh_done(room)
            self.sim.clock.callLater(0.4, self._tone_done, room, ENTER_TONE, 400)
        return member

    def leave(self, member: Member, how: str) -> None:
        """The member goes: C{kick}, C{hup}, C{hangup} or C{transfer}."""
        room = member.conference
        if member not in room.members:
            return
        if how in ("kick", "hup"):
            self._fire(
                room,
                f"{how}-member",
                "conference_api.c",
                f"conference_api_sub_{how}",
                902 if how == "kick" else 871,
                member,
            )
        had_floor = room.floor == member.id
        if had_floor:
            room.floor = None
            self._fire(
                room,
                "floor-change",
                "conference_member.c",
                "conference_member_set_floor_holder",
                1158,
                post=[("Old-ID", "none"), ("New-ID", "none")],
            )
        room.members.remove(member)
        self._presence(room)
        if len(room.members) == 1:
            self._alone(room)
        self._fire(room, "del-member", "conference_member.c", "conference_member_del", 1355, member)
        if member.channel.alive:
            member.channel.fire_codec()
        if how in ("kick", "hup"):
            member.app.left()
        if room.members:
            if room.floor is None:
                self._floor(room, room.members[-1])
            self.sim.clock.callLater(1.0, self._tone_done, room, EXIT_TONE, 1000)
        else:
            self._presence(room)
            self._moh_done(room)
            self._fire(room, "conference-destroy", "mod_conference.c", "conference_thread_run", 863)
            self.rooms.pop(room.name, None)

    def forget(self, channel: Channel) -> None:
        """A destroyed channel is no member of anything."""
        for room in list(self.rooms.values()):
            for member in list(room.members):
                if member.channel is channel:
                    self.leave(member, "hangup")

    def _alone(self, room: Conference) -> None:
        """
        The "you are alone" announcement; like the captured FreeSWITCH, which has no
        conference sounds installed, it reports that it could not be played.
        """
        room.moh_since = self.sim.clock.seconds()
        self._fire(
            room,
            "play-file",
            "conference_file.c",
            "conference_file_play",
            268,
            post=[("File", ALONE_SOUND), ("Async", "false"), ("Error", "File could not be played")],
        )

    def _first_floor(self, room: Conference, member: Member) -> None:
        if room.floor is None and member in room.members:
            self._floor(room, member)

    def _floor(self, room: Conference, member: Member) -> None:
        room.floor = member.id
        self._fire(
            room,
            "floor-change",
            "conference_member.c",
            "conference_member_set_floor_holder",
            1158,
            member,
            pre_member=[("Old-ID", "none")],
            post=[("New-ID", member.id)],
        )

    def _moh_done(self, room: Conference) -> None:
        since = room.moh_since if room.moh_since is not None else self.sim.clock.seconds()
        ms = int((self.sim.clock.seconds() - since) * 1000)
        room.moh_since = None
        self._fire(
            room,
            "play-file-done",
            "conference_file.c",
            "conference_file_close",
            52,
            pre=[("seconds", ms // 1000), ("milliseconds", ms), ("samples", ms * 8)],
            post=[("File", MOH), ("Async", "true")],
        )

    def _tone_done(self, room: Conference, tone: str, ms: int) -> None:
        if self.rooms.get(room.name) is not room:
            return
        self._fire(
            room,
            "play-file-done",
            "conference_file.c",
            "conference_file_close",
            52,
            pre=[("seconds", ms // 1000), ("milliseconds", ms), ("samples", ms * 8)],
            post=[("File", tone)],
        )

    def _presence(self, room: Conference) -> None:
        self.presence_count += 1
        count = len(room.members)
        if count:
            status = f"Active ({count} caller{'' if count == 1 else 's'})"
            state, answer = "CS_ROUTING", "early" if count == 1 else "confirmed"
        else:
            status, state, answer = "Inactive", "CS_HANGUP", "terminated"
        event = Event("PRESENCE_IN")
        event.extend(
            [
                ("proto", "conf"),
                ("login", room.name),
                ("from", f"{room.name}@127.0.0.1"),
                ("event_type", "presence"),
                ("alt_event_type", "dialog"),
                ("event_count", self.presence_count),
                ("unique-id", room.name),
                ("force-status", status),
                ("channel-state", state),
                ("answer-state", answer),
                ("presence-call-direction", "outbound"),
            ]
        )
        self.sim.fire(event, ("mod_conference.c", "conference_send_presence", 3870))

    def _fire(
        self,
        room: Conference,
        action: str,
        file: str,
        function: str,
        line: int,
        member: Member | None = None,
        pre: list[tuple[str, object]] | None = None,
        pre_member: list[tuple[str, object]] | None = None,
        post: list[tuple[str, object]] | None = None,
    ) -> None:
        event = Event("CUSTOM", subclass="conference::maintenance")
        event.extend(
            [
                ("Conference-Name", room.name),
                ("Conference-Domain", "127.0.0.1"),
                ("Conference-Size", len(room.members)),
                ("Conference-Ghosts", 0),
                ("Conference-Profile-Name", room.profile),
                ("Conference-Unique-ID", room.uuid),
            ]
        )
        event.extend(pre or [])
        if member is None:
            event.add("Action", action)
        else:
            if pre_member is not None:
                event.add("Action", action)
                event.extend(pre_member)
            event.extend(self._member_data(member))
            if pre_member is None:
                event.add("Action", action)
        event.extend(post or [])
        self.sim.fire(event, (file, function, line))

    def _member_data(self, member: Member) -> list[tuple[str, object]]:
        room = member.conference
        data: list[tuple[str, object]] = [("Floor", _bool(room.floor == member.id))]
        data += member.channel.basic_data()
        data += [
            ("Video", "false"),
            ("Hear", _bool(member.hear)),
            ("See", "true"),
            ("Speak", _bool(member.speak)),
            ("Talking", "false"),
            ("Mute-Detect", "false"),
            ("Hold", _bool(member.hold)),
            ("Member-ID", member.id),
            ("Member-Type", "member"),
            ("Member-Ghost", "false"),
            ("Energy-Level", 100),
            ("Current-Energy", 0),
        ]
        return data

    # The API

    def api(self, arg: str | None) -> str:
        """C{conference <name> <command> [...]} and C{conference list|json_list}."""
        argv = separate_string(arg or "", " ", 25) if arg else []
        if not argv:
            return "".join(f"<conf name> {c} {s}\n" for c, s in MEMBER_SYNTAX.items())
        room = self.rooms.get(argv[0])
        if room is None:
            if argv[0].lower() == "list":
                return self._list_all()
            if argv[0].lower() == "json_list":
                return cjson_pretty([self._json(r) for r in self.rooms.values()])
            return f"-ERR Conference {argv[0]} not found\n"
        if len(argv) < 2:
            return "Conference command, not specified.\nTry 'help'\n"
        command = argv[1].lower()
        if command == "list":
            return self._list_members(room)
        if command == "json_list":
            return cjson_pretty([self._json(room)])
        if command in MEMBER_SYNTAX:
            return self._member_command(room, command, argv[2] if len(argv) > 2 else None)
        return f"-ERR Conference command '{argv[1]}' not found.\n"

    def _member_command(self, room: Conference, command: str, target: str | None) -> str:
        usage = f"{command} {MEMBER_SYNTAX[command]}"
        if not target:
            return usage
        member_id = _atoi(target)
        if member_id:
            member = room.member(member_id)
            if member is None:
                return f"-ERR Non-Existant ID {member_id}\n"
            return self._apply(command, member)
        if target.lower() in ("all", "non_moderator"):
            return "".join(self._apply(command, m) for m in list(room.members))
        if target.lower() == "last":
            if not room.members:
                return ""
            return self._apply(command, max(room.members, key=lambda m: m.id))
        if "=" in target:
            key, _, value = target.partition("=")
            for member in room.members:
                if member.channel.vars.get(key) == value:
                    return self._apply(command, member)
            return "-ERR Non-Existant member\n"
        return usage

    def _apply(self, command: str, member: Member) -> str:
        room = member.conference
        where = ("conference_api.c", f"conference_api_sub_{command}")
        lines = {"mute": 339, "unmute": 492, "deaf": 797, "undeaf": 839, "hold": 440, "unhold": 389}
        if command in ("kick", "hup"):
            self.leave(member, command)
            return f"+OK {'kicked' if command == 'kick' else 'hup'} {member.id}\n"
        if command in ("mute", "unmute"):
            member.speak = command == "unmute"
        elif command in ("deaf", "undeaf"):
            member.hear = command == "undeaf"
        else:
            member.hold = command == "hold"
        self._fire(room, f"{command}-member", where[0], where[1], lines[command], member)
        return f"+OK {command} {member.id}\n"

    def _list_all(self) -> str:
        if not self.rooms:
            return "+OK No active conferences.\n"
        out = []
        for room in self.rooms.values():
            count = len(room.members)
            out.append(
                f"+OK Conference {room.name} ({count} member{'' if count == 1 else 's'} "
                f"rate: 8000 flags: {FLAGS})\n"
            )
            out.append(self._list_members(room))
        return "".join(out)

    def _list_members(self, room: Conference) -> str:
        lines = []
        for member in room.members:
            flags = []
            if not member.hold and member.hear:
                flags.append("hear")
            if not member.hold and member.speak:
                flags.append("speak")
            if member.hold:
                flags.append("hold")
            if room.floor == member.id:
                flags.append("floor")
            profile = member.channel.profile
            lines.append(
                f"{member.id};{member.channel.name};{member.channel.uuid};"
                f"{profile.caller_id_name};{profile.caller_id_number};{'|'.join(flags)};0;0;100\n"
            )
        return "".join(lines)

    def _json(self, room: Conference) -> dict[str, Any]:
        now = self.sim.clock.seconds()
        flags = dict.fromkeys(
            "locked destruct wait_mod audio_always running answered enforce_min bridge_to "
            "dynamic exit_sound enter_sound recording video_bridge video_floor_only "
            "video_rfc4579".split(),
            False,
        )
        for name in FLAGS.split("|"):
            if name in flags:
                flags[name] = True
        members = []
        for member in room.members:
            profile = member.channel.profile
            members.append(
                {
                    "type": "caller",
                    "id": member.id,
                    "flags": {
                        "can_hear": member.hear,
                        "can_see": True,
                        "can_speak": member.speak,
                        "hold": member.hold,
                        "mute_detect": False,
                        "talking": False,
                        "has_video": False,
                        "video_bridge": False,
                        "has_floor": room.floor == member.id,
                        "is_moderator": False,
                        "end_conference": False,
                        "mandatory_member_end_conference": False,
                        "pass_digits": False,
                    },
                    "uuid": member.channel.uuid,
                    "caller_id_name": profile.caller_id_name,
                    "caller_id_number": profile.caller_id_number,
                    "join_time": int(now - member.joined),
                    "last_talking": 0,
                    "energy": 100,
                    "volume_in": 0,
                    "volume_out": 0,
                    "output-volume": 0,
                    "input-volume": 0,
                }
            )
        return {
            "conference_name": room.name,
            "member_count": len(room.members),
            "ghost_count": 0,
            "rate": 8000,
            "run_time": int(now - room.created),
            "conference_uuid": room.uuid,
            "canvas_count": 0,
            "max_bw_in": 0,
            "force_bw_in": 0,
            "video_floor_packets": 0,
            **flags,
            "variables": {},
            "members": members,
        }


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _atoi(text: str) -> int:
    digits = ""
    for char in text.strip():
        if not char.isdigit():
            break
        digits += char
    return int(digits) if digits else 0
