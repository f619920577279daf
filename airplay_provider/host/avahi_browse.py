"""Parsing ``avahi-browse -rtpk`` output (pure): the services the receiver lab sees advertised."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BrowsedService:
    """One resolved line of ``avahi-browse -rtpk``."""

    interface: str
    protocol: str
    name: str
    service_type: str
    domain: str
    host: str
    address: str
    port: int
    txt: list[str] = field(default_factory=list)

    def txt_dict(self) -> dict[str, str]:
        """TXT entries as key → value (an entry without '=' maps to '')."""
        return {key: value for key, _, value in (e.partition("=") for e in self.txt)}


def _unescape(text: str) -> str:
    """Undo avahi's ``\\DDD`` (decimal) and ``\\c`` escapes."""
    out: list[str] = []
    i = 0
    while i < len(text):
        digits = text[i + 1 : i + 4]
        if text[i] == "\\" and len(digits) == 3 and digits.isdigit():
            out.append(chr(int(digits)))
            i += 4
        elif text[i] == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _split_txt(text: str) -> list[str]:
    """Split avahi's TXT rendering (``"a=b" "c=d"``) into unescaped entries."""
    entries: list[str] = []
    start = text.find('"')
    while start >= 0:
        end = start + 1
        while end < len(text) and text[end] != '"':
            end += 2 if text[end] == "\\" else 1
        entries.append(_unescape(text[start + 1 : end]))
        start = text.find('"', end + 1)
    return entries


def parse_avahi_browse(output: str) -> list[BrowsedService]:
    """Parse the resolved (``=``) lines of ``avahi-browse -rtpk`` output; skip the rest."""
    services: list[BrowsedService] = []
    for line in output.splitlines():
        fields = line.split(";", 9)
        if len(fields) < 10 or fields[0] != "=" or not fields[8].isdigit():
            continue
        iface, proto, name, stype, domain, host, address = fields[1:8]
        name, port, txt = _unescape(name), int(fields[8]), _split_txt(fields[9])
        services.append(BrowsedService(iface, proto, name, stype, domain, host, address, port, txt))
    return services
