"""An aiosmtpd handler for payledger's tests: every accepted message is
written to DIR as one .eml file (with an X-Test-Rcpt header naming the
envelope recipients); recipients whose local part starts with "refuse"
are refused with 550, as a server refuses an address that does not exist.

    PYTHONPATH=tests python3 -m aiosmtpd -n -l 127.0.0.1:2525 -c smtp_sink.Sink DIR
"""
import os
import uuid


class Sink:
    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("smtp_sink.Sink takes one argument: the directory")
        return cls(args[0])

    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.split("@")[0].startswith("refuse"):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        name = os.path.join(self.directory, uuid.uuid4().hex)
        with open(name + ".tmp", "wb") as f:
            f.write(("X-Test-Rcpt: " + ",".join(envelope.rcpt_tos) + "\r\n").encode())
            f.write(envelope.original_content or envelope.content)
        os.rename(name + ".tmp", name + ".eml")
        return "250 Message accepted for delivery"
