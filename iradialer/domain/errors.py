"""
The status codes of the seed's Appendix B, and the error every layer raises with one.

The HTTP API turns a L{DialerError} into the contract's error body; the webhook service puts
the same code in an error event's C{status_code}.  Codes 200-235 (DTMF) are listed in
L{DTMF_CODES}.
"""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    NO_CPA_CONFIG = 100
    ANALYSER_INIT_FAILED = 101
    CPA_INIT_FAILED = 102
    FILE_NOT_FOUND = 103
    PLAY_INTERRUPTED = 104
    PLAY_CALL_DISCONNECTED = 105
    PLAY_MEDIA_ERROR = 106
    UNKNOWN_CALL = 107
    CALL_GONE = 108
    LICENSES_USED_UP = 109
    LICENSES_EXPIRED = 110
    NO_LICENSES = 111
    LICENSES_UNUSABLE = 112
    LICENSE_UNKNOWN_ERROR = 113
    DIAL_FAILED = 114
    ORIGINATE_THROTTLED = 115
    RECORD_NOT_FOUND = 116
    IN_CONFERENCE_NO_DTMF = 117
    BRIDGE_NEW_CONFERENCE_FAILED = 118
    BRIDGE_EXISTING_CONFERENCE_FAILED = 119
    BRIDGE_OTHER_DIALER_FAILED = 120
    LEAVE_CONFERENCE_FAILED = 121
    BRIDGE_AFTER_LEAVE_FAILED = 122
    ALREADY_PARKED = 123
    PARK_FAILED = 124
    NOT_IN_CONFERENCE = 125
    CONFERENCE_ACTION_FAILED = 126
    STOP_PLAY_FAILED = 127
    INVALID_REQUEST = 128
    CPA_CONFIG_NOT_SET = 129
    MISSING_PARAMETERS = 130
    CALL_NOT_ADDED = 131
    WEBHOOK_FAILED = 132
    NO_SCHEMA = 133
    MALFORMED_JSON = 134
    SCHEMA_VIOLATION = 135
    NULL_UUID_IN_MULTICONF = 136
    CALL_NOT_ANSWERED = 137
    SEND_DTMF_FAILED = 138
    # Ours (the seed has no ASR codes): after its last, documented in docs/asr.md.
    ASR_CONFIG_NOT_SET = 139  # setasrparams refused (e.g. an unknown asr_application)
    NO_ASR_CONFIG = 140  # startasr names no ASR configuration of the tenant
    ASR_APPLICATION_FAILED = 141  # the ASR application failed on an utterance
    ASR_APPLICATION_TIMEOUT = 142  # the ASR application did not answer in time


class DtmfStatus(IntEnum):
    """
    The seed reserves 200-235 for DTMF collection errors; these are the ones iradialer uses
    (the C{dtmf} event's C{status_code}; its C{status} says C{timeout} or C{invalid}).
    """

    TIMEOUT = 200  # no digit before the timeout
    TOO_FEW_DIGITS = 201  # fewer than minimum_digits before the timeout or a terminator
    NO_MATCH = 202  # the digits did not match reg_expr, after maximum_tries
    CALL_ENDED = 203  # the call hung up while collecting
    PROMPT_FAILED = 204  # the prompt could not be played (file not found, bad URL, TTS error)
    INTERRUPTED = 205  # collection was interrupted (stopplay, a transfer into a conference)
    FREESWITCH_REFUSED = 206  # FreeSWITCH refused to start the collection
    BAD_REGEX = 207  # reg_expr is not a valid regular expression (request refused: HTTP 400)


class DialerError(Exception):
    """
    A request or an action could not be carried out, for a reason with an Appendix B code.

    @ivar http_status: the HTTP status an API response carries (400 unless said otherwise).
    @ivar retry_after: seconds after which the same request may succeed (a throttled request:
        the API sends it as C{Retry-After}); C{None} when waiting would not help.
    """

    def __init__(
        self, status: int, message: str, http_status: int = 400, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = int(status)
        self.message = message
        self.http_status = http_status
        self.retry_after = retry_after
