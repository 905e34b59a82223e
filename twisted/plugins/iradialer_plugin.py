from twisted.application.service import ServiceMaker

iradialer = ServiceMaker(
    "iradialer", "iradialer.tap", "Outbound-dialer HTTP API server over FreeSWITCH", "iradialer"
)
