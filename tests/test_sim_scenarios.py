"""
Scenario files: the contract's format, errors that name the file and the key, the built-in
plan, and the standalone command.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from iradialer.config import ConfigError
from iradialer.sim.audio import callee_audio
from iradialer.sim.scenarios import DEFAULT_PLAN, OUTCOMES, ScenarioPlan, load_scenarios
from iradialer.sim.testing import Harness
from tests.conftest import REPO
from tests.test_sim_audio import write_wav

CONTRACT_EXAMPLE = """
[[scenario]]
match = "^1555000\\\\d{4}$"        # regular expression on the dialed number; first match wins
ring_ms = 2000
outcome = "answer"
audio = "greetings/vm1.wav"
hangup_after_ms = 30000
dtmf = [ { at_ms = 4000, digits = "123#" },
         { after_prompt_ms = 1500, digits = "42#" } ]
"""


def test_contract_example_loads(tmp_path):
    """The contract's example file loads; the WAV path is relative to the file."""
    (tmp_path / "greetings").mkdir()
    write_wav(tmp_path / "greetings" / "vm1.wav", 2.0)
    path = tmp_path / "scenarios.toml"
    path.write_text(CONTRACT_EXAMPLE)
    plan = load_scenarios(path)
    scenario = plan.for_number("15550001234")
    assert scenario.outcome is OUTCOMES["answer"]
    assert scenario.audio == (tmp_path / "greetings" / "vm1.wav").resolve()
    assert scenario.hangup_after_ms == 30000
    assert [(d.digits, d.at_ms, d.after_prompt_ms) for d in scenario.dtmf] == [
        ("123#", 4000, None),
        ("42#", None, 1500),
    ]
    assert len(callee_audio(scenario.audio).intro) == 2 * 16000
    assert plan.for_number("15550009999001").where.startswith("(built-in plan)")


@pytest.mark.parametrize(
    "text, key, problem",
    [
        ("[[scenario]]\nring_ms = 1", "scenario[0].match", "is required"),
        ("[[scenario]]\nmatch = '('", "scenario[0].match", "not a valid regular expression"),
        ("[[scenario]]\nmatch = '1'\noutcome = 'maybe'", "scenario[0].outcome", "must be one of"),
        ("[[scenario]]\nmatch = '1'\nring_ms = '2s'", "scenario[0].ring_ms", "must be an integer"),
        ("[[scenario]]\nmatch = '1'\nring_ms = -1", "scenario[0].ring_ms", "must not be negative"),
        ("[[scenario]]\nmatch = '1'\naudio = 'nope.wav'", "scenario[0].audio", "no such file"),
        ("[[scenario]]\nmatch = '1'\ncolour = 'red'", "scenario[0].colour", "unknown key"),
        (
            "[[scenario]]\nmatch = '1'\ndtmf = [{ digits = '12' }]",
            "scenario[0].dtmf[0]",
            "exactly one",
        ),
        (
            "[[scenario]]\nmatch = '1'\ndtmf = [{ at_ms = 1, digits = 'xy' }]",
            "scenario[0].dtmf[0].digits",
            "DTMF digits",
        ),
        (
            "[[scenario]]\nmatch = '1'\n[[scenario]]\nmatch = 2",
            "scenario[1].match",
            "must be a string",
        ),
        ("scenarios = []", "scenarios", "unknown key"),
        ("[[scenario]\nmatch = ", "(syntax)", ""),
    ],
)
def test_bad_files_name_file_and_key(tmp_path, text, key, problem):
    """A bad scenario file is a ConfigError naming the file and the key."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_scenarios(path)
    assert caught.value.source == str(path)
    assert caught.value.key == key
    assert problem in caught.value.problem


def test_missing_file(tmp_path):
    """A scenario file that cannot be read is reported as such."""
    with pytest.raises(ConfigError, match="cannot be read"):
        load_scenarios(tmp_path / "absent.toml")


def test_builtin_plan_covers_every_outcome_and_audio():
    """The default plan gives each outcome and each built-in audio kind its own number ending."""
    plan = ScenarioPlan()
    assert {s.outcome.name for s in DEFAULT_PLAN} == set(OUTCOMES)
    assert {s.audio for s in DEFAULT_PLAN} >= {
        "human",
        "machine_beep",
        "machine_nobeep",
        "fax",
        "modem",
        "silence",
        "music",
    }
    assert plan.for_number("15550100001").audio == "human"
    assert plan.for_number("15550100002").audio == "machine_beep"
    assert plan.for_number("15550100008").outcome.name == "busy"
    assert plan.for_number("15550100012").outcome.name == "gateway_down"
    assert plan.for_number("15550123456").audio == "human"


@pytest.mark.parametrize(
    "ending, reply",
    [
        ("0001", "+OK u1\n"),
        ("0008", "-ERR USER_BUSY\n"),
        ("0010", "-ERR UNALLOCATED_NUMBER\n"),
        ("0011", "-ERR CALL_REJECTED\n"),
        ("0012", "-ERR GATEWAY_DOWN\n"),
    ],
)
def test_builtin_plan_through_the_wire(ending, reply):
    """Dialing the documented endings gives the documented outcomes."""
    h = Harness()
    c = h.connect(authenticate=True)
    c.command(f"api originate {{origination_uuid=u1}}sofia/gateway/sim/1555012{ending} &park()")
    h.run_for(5.0)
    assert c.frames()[0].text == reply


@pytest.mark.slow
def test_standalone_command(tmp_path):
    """
    python -m iradialer.sim serves the Event Socket on the endpoint given (a unix socket
    here).
    """
    scenarios = tmp_path / "s.toml"
    scenarios.write_text("[[scenario]]\nmatch = '.'\nring_ms = 0\n")
    sock = tmp_path / "esl.sock"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "iradialer.sim",
            "--listen",
            f"unix:{sock}",
            "--scenarios",
            str(scenarios),
            "--password",
            "pw",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in process.stdout:
            if "FreeSWITCH simulator listening" in line:
                break
        client = socket.socket(socket.AF_UNIX)
        client.settimeout(10)
        client.connect(str(sock))
        client.sendall(b"auth pw\n\napi originate sofia/gateway/sim/5551234 &park()\n\nexit\n\n")
        data = b""
        while b"disconnect-notice" not in data:
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
        assert b"Reply-Text: +OK accepted" in data
        assert b"Content-Type: api/response\nContent-Length: 41\n\n+OK " in data
        client.close()
    finally:
        process.terminate()
        process.wait(10)


def test_standalone_command_refuses_a_bad_file(tmp_path):
    """A bad scenario file stops the standalone simulator with a message naming file and key."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[[scenario]]\nmatch = '1'\nring_ms = 'x'\n")
    result = subprocess.run(
        [sys.executable, "-m", "iradialer.sim", "--scenarios", str(bad)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert f"{bad}: scenario[0].ring_ms: must be an integer" in result.stderr


def test_example_file_is_valid():
    """etc/scenarios.example.toml loads."""
    plan = load_scenarios(REPO / "etc" / "scenarios.example.toml")
    assert len(plan.scenarios) > len(DEFAULT_PLAN)
