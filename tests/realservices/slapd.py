"""A real OpenLDAP slapd (Debian's `slapd` package) with a small test directory.

Configured with a slapd.conf in a directory the test owns (mdb database, the core,
cosine, inetorgperson and nis schemas), filled offline with slapadd, then started in
the foreground on a free loopback port:

    users = {"carol": {"password": "...", "groups": ["pki-admins"]}}
    with SlapdServer(tmp_path, users=users) as ldap:
        ldap.uri, ldap.base, ldap.bind_dn, ldap.bind_password

Users are inetOrgPerson entries under ou=people; groups are groupOfNames under ou=groups.
"""

import secrets
from pathlib import Path

from . import ServiceError
from .ports import LOOPBACK, free_port, port_open
from .process import Service, log_tail, spawn, wait_ready, which

BASE = "dc=example,dc=test"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
MODULE_PATHS = (
    "/usr/lib/ldap",
    "/usr/lib/x86_64-linux-gnu/ldap",
    "/usr/lib/aarch64-linux-gnu/ldap",
)


class SlapdServer(Service):
    def __init__(self, workdir: Path, *, users: dict):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.uri = f"ldap://{LOOPBACK}:{self.port}"
        self.base = BASE
        self.bind_dn = f"cn=admin,{BASE}"
        self.bind_password = secrets.token_urlsafe(16)
        self.users = users
        self.log_path = self.workdir / "slapd.log"
        self._proc = None

    def _config(self) -> str:
        modules = next((p for p in MODULE_PATHS if Path(p, "back_mdb.so").exists()), None)
        schemas = "\n".join(f"include /etc/ldap/schema/{s}.schema" for s in SCHEMAS)
        module_lines = f"modulepath {modules}\nmoduleload back_mdb" if modules else ""
        return f"""{schemas}
pidfile {self.workdir / "slapd.pid"}
{module_lines}
database mdb
maxsize 10485760
suffix "{BASE}"
rootdn "{self.bind_dn}"
rootpw {self.bind_password}
directory {self.workdir / "db"}
access to attrs=userPassword by anonymous auth by self write by * none
access to * by users read by * none
"""

    def _ldif(self) -> str:
        entries = [
            f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Ex\ndc: example",
            f"dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people",
            f"dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups",
        ]
        groups: dict[str, list[str]] = {}
        for name, user in self.users.items():
            dn = f"uid={name},ou=people,{BASE}"
            entries.append(
                f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: {name}\ncn: {name}\n"
                f"sn: {user.get('sn', name)}\ngivenName: {user.get('given_name', name)}\n"
                f"mail: {user.get('mail', f'{name}@ldap.test')}\n"
                f"userPassword: {user['password']}"
            )
            for group in user.get("groups", []):
                groups.setdefault(group, []).append(dn)
        for group, members in groups.items():
            lines = "\n".join(f"member: {m}" for m in members)
            entries.append(
                f"dn: cn={group},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {group}\n{lines}"
            )
        return "\n\n".join(entries) + "\n"

    def _start(self) -> None:
        slapd = which("slapd", "slapd")
        slapadd = which("slapadd", "slapd")
        (self.workdir / "db").mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "slapd.conf"
        conf.write_text(self._config())
        ldif = self.workdir / "directory.ldif"
        ldif.write_text(self._ldif())
        loaded = spawn([slapadd, "-f", str(conf), "-l", str(ldif)], self.log_path)
        if loaded.wait(30) != 0:
            raise ServiceError(f"slapadd failed:\n{log_tail(self.log_path)}")
        self._proc = spawn([slapd, "-d", "0", "-h", f"{self.uri}/", "-f", str(conf)], self.log_path)
        wait_ready(
            lambda: port_open(LOOPBACK, self.port),
            what="slapd",
            timeout=15,
            proc=self._proc,
            log_path=self.log_path,
        )

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except Exception:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None
