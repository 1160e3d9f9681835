"""Records reach PostgreSQL encrypted, and only a server that proves its name gets them.

The test starts its own PostgreSQL 15 (initdb and pg_ctl of the installed
binaries, as the `postgres` OS user, since initdb refuses to run as root) on a
free port, with `ssl = on` and a pg_hba.conf that admits TLS connections
only. Its certificate authority and server certificates are made here with
the openssl command. The daemon's DSN says `sslmode=verify-full` and names
the test CA in `sslrootcert`, as the README documents:

- with a certificate for `localhost`, records are stored, and `pg_stat_ssl`
  shows every connection of the daemon encrypted;
- with a certificate for another name, the daemon refuses the server: one
  log line names the reason (no traceback), RADIUS is still answered, the
  spool takes the records and /readyz stays 200 (a durable store is there);
  once the server presents the right certificate, the spool is replayed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.config import load_config
from collector.settings import ConfigError
from collector.traffic import AccountingClient, Call, generic_attributes
from tests.conftest import require_program
from tests.daemon import SECRET, CollectorConfig, connected, free_port, running_collector, wait_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _run(*args: str | Path, user: str | None = None) -> None:
    command = [str(a) for a in args]
    if user is not None:
        command = [require_program("runuser"), "-u", user, "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"


def _openssl(*args: str | Path) -> None:
    _run(require_program("openssl"), *args)


@dataclass
class Authority:
    """A test certificate authority, and the server certificates it signs."""

    directory: Path

    @property
    def certificate(self) -> Path:
        return self.directory / "ca.crt"

    @classmethod
    def create(cls, directory: Path) -> Authority:
        authority = cls(directory)
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", directory / "ca.key", "-out", authority.certificate,
            "-days", "2", "-subj", "/CN=cdr-collector test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        return authority

    def server(self, name: str, alt_names: str) -> tuple[Path, Path]:
        """(certificate, key) of a server called `name` with these subjectAltNames."""
        key = self.directory / f"{name}.key"
        request = self.directory / f"{name}.csr"
        certificate = self.directory / f"{name}.crt"
        extensions = self.directory / f"{name}.ext"
        extensions.write_text(
            f"subjectAltName={alt_names}\nextendedKeyUsage=serverAuth\n"
            "keyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n"
        )
        _openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", key, "-out", request, "-subj", f"/CN={name}",
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", request, "-CA", self.certificate,
            "-CAkey", self.directory / "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", extensions, "-out", certificate,
        )  # fmt: skip
        return certificate, key


@dataclass
class TlsServer:
    """A PostgreSQL of its own, TLS only, run by the postgres OS user."""

    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def present(self, certificate: Path, key: Path) -> None:
        """Serve with this certificate (copied where the server reads it, mode 0600)."""
        postgres = pwd.getpwnam("postgres")
        for source, name in ((certificate, "server.crt"), (key, "server.key")):
            target = self.data / name
            shutil.copyfile(source, target)
            os.chown(target, postgres.pw_uid, postgres.pw_gid)
            target.chmod(0o600)

    def pg_ctl(self, *args: str) -> None:
        _run(PG_BIN / "pg_ctl", "-D", self.data, *args, user="postgres")

    def reload(self) -> None:
        """Re-read the configuration, the certificate files with it."""
        self.pg_ctl("reload")

    def dsn(self, database: str = "cdr") -> str:
        """The DSN the README documents: the server's name verified against our CA."""
        return (
            f"postgresql://root@localhost:{self.port}/{database}"
            f"?sslmode=verify-full&sslrootcert={self.directory / 'ca' / 'ca.crt'}"
        )

    def unverified_dsn(self) -> str:
        """Encrypted but without checking the server: for the test to look inside."""
        return f"postgresql://root@127.0.0.1:{self.port}/postgres?sslmode=require"


@contextlib.contextmanager
def tls_server(name: str, alt_names: str) -> Iterator[tuple[TlsServer, Authority]]:
    """A running TLS-only PostgreSQL presenting a certificate for `name`."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 server binaries are missing from {PG_BIN}")
    postgres = pwd.getpwnam("postgres")
    directory = Path(tempfile.mkdtemp(prefix="cdr-tls-", dir="/tmp"))
    try:
        (directory / "ca").mkdir()
        authority = Authority.create(directory / "ca")
        directory.chmod(0o755)  # the CA certificate is read by the daemon (root) and the test
        os.chown(directory, postgres.pw_uid, postgres.pw_gid)
        server = TlsServer(directory, free_port(socket.SOCK_STREAM))
        _run(
            PG_BIN / "initdb", "-D", server.data, "-U", "root", "--auth=trust",
            "--no-sync", "-E", "UTF8", user="postgres",
        )  # fmt: skip
        server.present(*authority.server(name, alt_names))
        with (server.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {server.port}\nlisten_addresses = 'localhost'\n"
                f"unix_socket_directories = '{directory}'\n"
                "ssl = on\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        (server.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all all 127.0.0.1/32 trust\n"
            "hostssl all all ::1/128 trust\n"
        )
        server.pg_ctl("-l", str(directory / "server.log"), "-w", "-t", "30", "start")
        try:
            yield server, authority
        finally:
            server.pg_ctl("-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _call(session: str) -> Call:
    now = datetime.now(UTC).replace(microsecond=0)
    return Call(
        session_id=session,
        calling="+33612345678",
        called="+4930123456789",
        setup=now - timedelta(seconds=100),
        connect=now - timedelta(seconds=90),
        disconnect=now,
        cause=16,
    )


async def _stored(dsn: str) -> int:
    async with connected(dsn) as conn:
        return int(await conn.fetchval("SELECT count(*) FROM cdrs"))


async def test_records_are_stored_over_tls_with_the_server_verified(tmp_path: Path) -> None:
    with tls_server("localhost", "DNS:localhost,IP:127.0.0.1,IP:::1") as (server, _):
        config = CollectorConfig(directory=tmp_path / "c", dsn=server.dsn())
        with running_collector(config) as collector:
            async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
                for index in range(5):
                    assert await client.send(generic_attributes(_call(f"TLS-{index}")))
            await wait_for(lambda: collector.metric("cdr_collector_records_stored_total") >= 5)
            async with connected(server.dsn("postgres")) as conn:
                encrypted = await conn.fetch(
                    "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a"
                    " USING (pid) WHERE a.application_name = 'cdr-collector'"
                )
            assert encrypted, "the daemon holds a connection"
            assert all(row["ssl"] for row in encrypted), encrypted
            assert all(row["version"].startswith("TLSv1.") for row in encrypted)
        assert await _stored(server.dsn()) == 5
        log = collector.log_text()
        assert "database connected" in log
        assert "Traceback" not in log


async def test_a_server_with_another_name_is_refused_and_the_spool_keeps_the_records(
    tmp_path: Path,
) -> None:
    with tls_server("db.example.net", "DNS:db.example.net") as (server, authority):
        config = CollectorConfig(directory=tmp_path / "c", dsn=server.dsn())
        with running_collector(config) as collector:
            await wait_for(lambda: "database unavailable" in collector.log_text())
            async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
                for index in range(4):
                    # answered: the spool made it durable
                    assert await client.send(generic_attributes(_call(f"MISMATCH-{index}")))
            assert collector.metric("cdr_collector_records_spooled_total") == 4
            assert collector.readyz()[0] == 200  # the spool is a durable store
            log = collector.log_text()
            refusals = [line for line in log.splitlines() if "database unavailable" in line]
            assert refusals
            assert "SSLCertVerificationError (TLS: Hostname mismatch" in refusals[0], refusals
            assert "'localhost'" in refusals[0]
            assert "Traceback" not in log
            async with connected(server.unverified_dsn()) as conn:
                # the daemon never got as far as creating its database there
                assert (
                    await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = 'cdr'")
                    == 0
                )

            # the server gets the right certificate: the spool is replayed into it
            server.present(*authority.server("localhost", "DNS:localhost,IP:127.0.0.1,IP:::1"))
            server.reload()
            await wait_for(lambda: "spool drained" in collector.log_text(), timeout=30)
        assert await _stored(server.dsn()) == 4


def test_a_dsn_naming_a_certificate_file_that_is_not_there_is_a_config_problem(
    tmp_path: Path,
) -> None:
    """Every connection would fail the same way: check-config says so, naming the file."""
    missing = tmp_path / "no-such-ca.crt"
    dsn = f"postgresql://root@localhost:5432/cdr?sslmode=verify-full&sslrootcert={missing}"
    path = CollectorConfig(directory=tmp_path / "c", dsn=dsn).render()
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    [problem] = caught.value.problems
    assert problem.key == "database.dsn"
    assert problem.reason == f"sslrootcert '{missing}' cannot be read: No such file or directory"
    missing.write_text("-----BEGIN CERTIFICATE-----\n")
    assert load_config(str(path)).database is not None
