"""A real PgBouncer (Debian's pgbouncer package) for the tests, and a
minimal libpq client (ctypes, no extra package) whose connections the tests
drive statement by statement.

Bouncer(work, pg_port, databases) writes its own pgbouncer.ini and
userlist.txt in a directory of its own under work, starts pgbouncer in the
foreground on a free loopback port (as the postgres user when run as root:
pgbouncer refuses root), and stop() ends it by its pid (no daemon, no pidfile). Every database entry
names its pool_mode and pool_size, e.g.
    {"sdr_pgb_tx": "dbname=sdr_pgb pool_mode=transaction pool_size=1"}
Authentication is trust, as the test cluster's (test/cluster.sh: initdb -A
trust): PgBouncer still needs every user in its auth_file."""

import ctypes
import ctypes.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bouncer:
    def __init__(self, work, pg_port, databases, users, timeout=15):
        self.dir = os.path.join(work, "pgbouncer-%d" % free_port())
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.log_path = os.path.join(self.dir, "pgbouncer.log")
        dbs = "\n".join("%s = host=127.0.0.1 port=%s %s" % (name, pg_port, opts)
                        for name, opts in databases.items())
        with open(os.path.join(self.dir, "userlist.txt"), "w") as f:
            f.write("".join('"%s" ""\n' % u for u in users))
        self.ini = os.path.join(self.dir, "pgbouncer.ini")
        with open(self.ini, "w") as f:
            f.write("""[databases]
%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s/userlist.txt
logfile = %s
admin_users = postgres
max_client_conn = 200
default_pool_size = 4
server_reset_query = DISCARD ALL
ignore_startup_parameters = extra_float_digits
""" % (dbs, self.port, self.dir, self.log_path))
        kw = {}
        if os.getuid() == 0:
            pw = pwd.getpwnam("postgres")
            for name in os.listdir(self.dir):
                os.chown(os.path.join(self.dir, name), pw.pw_uid, pw.pw_gid)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        self.proc = subprocess.Popen([PGBOUNCER, self.ini], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("pgbouncer exited %d: %s" % (self.proc.returncode, self.log()[-800:]))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("pgbouncer did not listen: " + self.log()[-800:])

    def conninfo(self, dbname, user):
        return "host=127.0.0.1 port=%d dbname=%s user=%s" % (self.port, dbname, user)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        """SIGINT (pgbouncer's safe shutdown: exit 0 once its server
        connections are idle) to its pid; SIGTERM (immediate) after 10 s,
        SIGKILL after 10 more. Returns the exit status."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        return self.proc.returncode


# --- a minimal libpq client ---------------------------------------------------

_pq = ctypes.CDLL(ctypes.util.find_library("pq") or "libpq.so.5")
_pq.PQconnectdb.restype = ctypes.c_void_p
_pq.PQconnectdb.argtypes = [ctypes.c_char_p]
_pq.PQstatus.argtypes = [ctypes.c_void_p]
_pq.PQerrorMessage.restype = ctypes.c_char_p
_pq.PQerrorMessage.argtypes = [ctypes.c_void_p]
_pq.PQfinish.argtypes = [ctypes.c_void_p]
_pq.PQexec.restype = ctypes.c_void_p
_pq.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_pq.PQresultStatus.argtypes = [ctypes.c_void_p]
_pq.PQresultErrorField.restype = ctypes.c_char_p
_pq.PQresultErrorField.argtypes = [ctypes.c_void_p, ctypes.c_int]
_pq.PQntuples.argtypes = [ctypes.c_void_p]
_pq.PQnfields.argtypes = [ctypes.c_void_p]
_pq.PQgetisnull.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
_pq.PQgetvalue.restype = ctypes.c_char_p
_pq.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
_pq.PQclear.argtypes = [ctypes.c_void_p]
_pq.PQbackendPID.argtypes = [ctypes.c_void_p]
_pq.PQprepare.restype = ctypes.c_void_p
_pq.PQprepare.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int,
                          ctypes.POINTER(ctypes.c_uint)]
_pq.PQexecPrepared.restype = ctypes.c_void_p
_pq.PQexecPrepared.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                               ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_int),
                               ctypes.POINTER(ctypes.c_int), ctypes.c_int]

PGRES_COMMAND_OK, PGRES_TUPLES_OK = 1, 2
PG_DIAG_SQLSTATE, PG_DIAG_MESSAGE_PRIMARY = ord("C"), ord("M")


class SqlError(Exception):
    def __init__(self, sqlstate, message):
        super().__init__("%s: %s" % (sqlstate, message))
        self.sqlstate = sqlstate


class Conn:
    """One libpq connection; exec() runs a simple-protocol query string (one
    or several statements) and returns the last result's rows as lists of
    strings (None for NULL), or raises SqlError; exec_prepared() runs one
    statement with parameters as a prepared statement."""

    def __init__(self, conninfo):
        self.prepared = {}                 # (sql, types) -> statement name
        self.conn = _pq.PQconnectdb(conninfo.encode())
        if _pq.PQstatus(self.conn) != 0:
            err = _pq.PQerrorMessage(self.conn).decode(errors="replace")
            _pq.PQfinish(self.conn)
            self.conn = None
            raise SqlError("08006", err.strip())

    def exec(self, sql):
        return self._rows(_pq.PQexec(self.conn, sql.encode()))

    def exec_prepared(self, sql, params=(), types=None):
        """Runs sql ($1, $2... placeholders) as a named prepared statement
        with text-format parameters (str or None for NULL): prepared
        (PQprepare, with the parameter type OIDs in types, 0 = let the
        server infer) on this connection's first use of that text and those
        types, executed (PQexecPrepared) every time. Returns rows as
        exec() does, or raises SqlError."""
        types = tuple(types or (0,) * len(params))
        name = self.prepared.get((sql, types))
        if name is None:
            name = str(len(self.prepared))
            oids = (ctypes.c_uint * len(types))(*types)
            self._rows(_pq.PQprepare(self.conn, name.encode(), sql.encode(), len(types), oids))
            self.prepared[(sql, types)] = name
        values = (ctypes.c_char_p * len(params))(*[None if p is None else p.encode() for p in params])
        return self._rows(_pq.PQexecPrepared(self.conn, name.encode(), len(params), values, None, None, 0))

    def _rows(self, res):
        try:
            st = _pq.PQresultStatus(res)
            if st not in (PGRES_COMMAND_OK, PGRES_TUPLES_OK):
                code = _pq.PQresultErrorField(res, PG_DIAG_SQLSTATE)
                msg = _pq.PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                raise SqlError(code.decode() if code else "-",
                               msg.decode(errors="replace") if msg else _pq.PQerrorMessage(self.conn).decode())
            return [[None if _pq.PQgetisnull(res, r, c) else _pq.PQgetvalue(res, r, c).decode()
                     for c in range(_pq.PQnfields(res))] for r in range(_pq.PQntuples(res))]
        finally:
            _pq.PQclear(res)

    def value(self, sql):
        rows = self.exec(sql)
        return rows[0][0] if rows else None

    def error(self, sql):
        """The SQLSTATE sql fails with; None if it succeeds."""
        try:
            self.exec(sql)
        except SqlError as e:
            return e.sqlstate
        return None

    def close(self):
        if self.conn:
            _pq.PQfinish(self.conn)
            self.conn = None
