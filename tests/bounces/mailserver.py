"""A private Dovecot (Debian's dovecot-imapd and dovecot-pop3d) for the mailbox poller tests.

Its own configuration, runtime directory and maildirs live in one temporary directory; it
listens on loopback only, with plain, STARTTLS and implicit TLS ports for IMAP and POP3, and
a self-signed certificate for 127.0.0.1 made here. Any user name logs in with PASSWORD, and
each user has a maildir of its own, so a test that takes a fresh user starts empty.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.services import free_port

DOVECOT = "/usr/sbin/dovecot"
PASSWORD = "bounce-secret"

CONFIG = """\
protocols = imap pop3
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
instance_name = mailpanel-test-{instance}
log_path = {root}/dovecot.log
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = {uid}
disable_plaintext_auth = no
auth_mechanisms = plain login
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
mail_location = maildir:{root}/mail/%u
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
}}
"""


@dataclass
class Dovecot:
    root: Path
    imap: int
    imaps: int
    pop3: int
    pop3s: int
    uid: int
    gid: int
    process: subprocess.Popen

    @property
    def ca_file(self) -> str:
        return str(self.root / "cert.pem")

    def new_user(self) -> str:
        return f"bounces-{uuid.uuid4().hex[:10]}"

    def folder_dir(self, user: str, folder: str = "INBOX") -> Path:
        # Maildir++: INBOX is the user's maildir, other folders are ".<name>" inside it.
        base = self.root / "mail" / user
        return base if folder == "INBOX" else base / f".{folder}"

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """Put a message in the maildir as a local delivery agent would."""
        target = self.folder_dir(user, folder)
        for sub in ("tmp", "new", "cur"):
            (target / sub).mkdir(parents=True, exist_ok=True)
        self._own(self.root / "mail" / user)
        name = f"{time.time_ns()}.{uuid.uuid4().hex}.mailpanel-test"
        (target / "tmp" / name).write_bytes(raw)
        os.rename(target / "tmp" / name, target / "new" / name)
        self._own(self.root / "mail" / user)

    def messages(self, user: str, folder: str = "INBOX") -> list[bytes]:
        target = self.folder_dir(user, folder)
        files = [f for sub in ("new", "cur") for f in sorted((target / sub).glob("*"))]
        return [f.read_bytes() for f in files if f.is_file()]

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _own(self, path: Path) -> None:
        # Dovecot's mail processes run as the mail user; a root test writes for them.
        if os.getuid() != 0:
            return
        for dirpath, dirnames, filenames in os.walk(path):
            os.chown(dirpath, self.uid, self.gid)
            for name in dirnames + filenames:
                os.chown(os.path.join(dirpath, name), self.uid, self.gid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def available() -> bool:
    return os.path.exists(DOVECOT)


def start() -> Dovecot:
    # Not pytest's tmp_path: its parents are private to the test user, and Dovecot's
    # unprivileged processes must reach the maildirs.
    root = Path(tempfile.mkdtemp(prefix="mailpanel-dovecot-"))
    root.chmod(0o755)
    (root / "mail").mkdir()
    _write_certificate(root)
    if os.getuid() == 0:
        # Dovecot refuses to run logins or mail access as root.
        mail_user = pwd.getpwnam("nobody")
        internal_user, login_user = "dovecot", "dovenull"
        internal_group = "dovecot"
    else:
        mail_user = pwd.getpwuid(os.getuid())
        internal_user = login_user = mail_user.pw_name
        internal_group = str(mail_user.pw_gid)
    uid, gid = mail_user.pw_uid, mail_user.pw_gid
    if os.getuid() == 0:
        os.chown(root / "mail", uid, gid)
    ports = {name: free_port() for name in ("imap", "imaps", "pop3", "pop3s")}
    (root / "dovecot.conf").write_text(
        CONFIG.format(
            root=root,
            instance=root.name,
            uid=uid,
            gid=gid,
            password=PASSWORD,
            internal_user=internal_user,
            internal_group=internal_group,
            login_user=login_user,
            **ports,
        )  # fmt: skip
    )
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=(root / "stderr.log").open("wb"),
        start_new_session=True,
    )
    server = Dovecot(root, process=process, uid=uid, gid=gid, **ports)
    _wait_ready(server)
    return server


def _wait_ready(server: Dovecot, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", server.imap), timeout=1) as sock:
                if sock.recv(100).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.1)
    stderr = (server.root / "stderr.log").read_text(errors="replace")
    server.stop()
    raise RuntimeError(f"dovecot did not start:\n{stderr}\n{server.log()}")


def _write_certificate(root: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (root / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (root / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (root / "key.pem").chmod(0o600)
