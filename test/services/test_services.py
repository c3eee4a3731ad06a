#!/usr/bin/python3
"""The systemd units of contrib/systemd/, without systemd as PID 1 (none
here): `make install-services` into a staging root (DESTDIR), `systemd-analyze
verify` on both units (and on broken copies, so the check can fail), then each
unit's ExecStart, read from the installed unit file and expanded as systemd
does with its EnvironmentFile= (the example, filled with the test cluster's
values), run as its User=: a working server (GET /healthz, an authenticated
GET) and a refresher (it connects and refreshes a due credential), each
stopped by SIGTERM with exit 0.

Run by test/services/run.sh (PGHOST, PGPORT, SDR_CLUSTER_DIR, SDR_SERVER,
SDR_REFRESHER exported). Reuses the refresher suite's setup and mock OAuth
provider. Prints one "ok - ..." / "not ok - ..." line per test."""

import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "http"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "refresher"))
import harness as h  # noqa: E402
import test_refresher as tr  # noqa: E402

WORK = os.environ["SDR_REFRESH_WORK"]
ROOT = os.path.join(WORK, "root")          # the DESTDIR
UNITS = "/etc/systemd/system"
USER = "sdr-creds"
# the refresher suite's helpers on a database and roles of this suite's own
tr.DB, tr.ROLE, tr.APP = "sdr_svc", "sdr_svc_refresher", "sdr_svc_app"
tr.q.__defaults__ = (tr.DB,)
ctx = {"procs": []}


def install():
    env = dict(os.environ, DESTDIR=ROOT, PREFIX="/usr/local")
    if os.getuid() == 0:
        env["SDR_SERVICES_CREATE_USER"] = "1"
    p = subprocess.run(["make", "-s", "--no-print-directory", "-C", TOP, "install-services"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, "make install-services: " + (p.stdout + p.stderr)[-800:]
    return p.stdout


def setup():
    ctx["user_existed"] = os.getuid() != 0 or user_exists()
    tr.setup()
    tr.mock = tr.Mock()


def user_exists():
    try:
        pwd.getpwnam(USER)
        return True
    except KeyError:
        return False


# --- unit files ----------------------------------------------------------------

def unit(name):
    """The [Service] settings of an installed unit: {key: [values]}."""
    settings, section = {}, None
    with open(os.path.join(ROOT + UNITS, name)) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
            elif section == "[Service]":
                k, _, v = line.partition("=")
                settings.setdefault(k.strip(), []).append(v.strip())
    return settings


def env_file(path):
    """An EnvironmentFile= (the subset the examples use): KEY=VALUE lines,
    the value's enclosing quotes removed, # and ; comments."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;" or "=" not in line:
                continue
            k, _, v = line.partition("=")
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
                v = v[1:-1]
            env[k.strip()] = v
    return env


def expand(exec_start, env):
    """ExecStart= as systemd expands it: a word that is only $NAME becomes
    the value split at whitespace (zero or more words), ${NAME} one word."""
    argv = []
    for word in shlex.split(exec_start):
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if m:
            argv += env.get(m.group(1), "").split()
        else:
            argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word))
    return argv


def fill(name, values):
    """Rewrites the installed /etc/sdr_creds/NAME (from the example) with values
    set; returns its path."""
    path = os.path.join(ROOT, "etc/sdr_creds", name)
    lines = open(path).read().splitlines()
    out, done = [], set()
    for line in lines:
        k = line.lstrip("#").partition("=")[0]
        if k in values and "=" in line:
            out.append('%s="%s"' % (k, values[k]))
            done.add(k)
        else:
            out.append(line)
    out += ['%s="%s"' % (k, v) for k, v in values.items() if k not in done]
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return path


def run_unit(name, log_name):
    """Starts the unit's ExecStart (its binary under ROOT) as its User=, with
    only its EnvironmentFile='s environment (and the sanitizers' options)."""
    s = unit(name)
    env_path = s["EnvironmentFile"][0]
    env = env_file(ROOT + env_path)
    argv = expand(s["ExecStart"][0], env)
    assert argv[0].startswith("/"), "ExecStart is not an absolute path: " + argv[0]
    argv[0] = ROOT + argv[0]
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    kw = {}
    if os.getuid() == 0:
        pw = pwd.getpwnam(s["User"][0])
        kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    log = os.path.join(WORK, log_name)
    proc = subprocess.Popen(argv, env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(log, "w"), **kw)
    ctx["procs"].append(proc)
    return proc, log, argv


def read(path):
    return open(path, errors="replace").read()


def stop(proc, timeout=25):
    """SIGTERM to the pid; its exit status."""
    if proc.poll() is None:
        proc.terminate()
    return proc.wait(timeout)


def conninfo(user):
    return "host=127.0.0.1 port=%s dbname=%s user=%s" % (os.environ["PGPORT"], tr.DB, user)


# --- tests ---------------------------------------------------------------------

def t_install():
    out = install()
    for line in ("systemctl enable --now sdr-creds-server.service",
                 "systemctl enable --now sdr-creds-refresher.service"):
        assert line in out, "not printed: " + line
    for b in ("sdr_creds_server", "sdr_creds_refresher"):
        assert os.access(os.path.join(ROOT, "usr/local/bin", b), os.X_OK), b + " not installed"
    for name in ("sdr-creds-server.service", "sdr-creds-refresher.service"):
        s = unit(name)
        h.eq(s["ExecStart"][0].split()[0][:15], "/usr/local/bin/", name + ": ExecStart's directory")
        h.eq((s["User"], s["Restart"], s["KillSignal"]), ([USER], ["on-failure"], ["SIGTERM"]), name)
        for k in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "CapabilityBoundingSet",
                  "RestrictAddressFamilies", "SystemCallFilter", "MemoryDenyWriteExecute"):
            assert k in s, "%s: no %s=" % (name, k)
    for f in ("server.env", "refresher.env"):
        mode = os.stat(os.path.join(ROOT, "etc/sdr_creds", f)).st_mode & 0o777
        h.eq(oct(mode), oct(0o600), f + " mode")
    if os.getuid() == 0:
        assert user_exists(), "user %s not created" % USER
        pw = pwd.getpwnam(USER)
        h.eq((pw.pw_uid < 1000, pw.pw_shell), (True, "/usr/sbin/nologin"), "a system user without a shell")
    # a second install keeps an edited environment file
    path = os.path.join(ROOT, "etc/sdr_creds/server.env")
    with open(path, "a") as f:
        f.write("# edited by the test\n")
    out = install()
    assert read(path).endswith("# edited by the test\n"), "server.env overwritten"
    assert "server.env exists: kept" in out, "the second install does not say it kept server.env"


def verify(*names):
    """systemd-analyze verify --root on installed units: (exit status, output)."""
    p = subprocess.run(["systemd-analyze", "verify", "--root=" + ROOT] + [UNITS + "/" + n for n in names],
                       capture_output=True, text=True, timeout=60, cwd="/")
    return p.returncode, (p.stdout + p.stderr).strip()


def t_verify():
    # verify --root loads the units' dependencies (sysinit.target, ...) from the root
    if not os.path.isdir(ROOT + "/usr/lib/systemd/system"):
        shutil.copytree("/usr/lib/systemd/system", ROOT + "/usr/lib/systemd/system", symlinks=True)
    h.eq(verify("sdr-creds-server.service", "sdr-creds-refresher.service"), (0, ""),
         "systemd-analyze verify (status, warnings)")
    # broken copies: a misspelled setting warns, a missing binary fails
    src = read(ROOT + UNITS + "/sdr-creds-server.service")
    cases = [("sdr-creds-typo.service", src.replace("Restart=on-failure", "Restart=on-failures")),
             ("sdr-creds-nobin.service", src.replace("/sdr_creds_server", "/sdr_creds_no_such_server"))]
    try:
        for name, text in cases:
            with open(ROOT + UNITS + "/" + name, "w") as f:
                f.write(text)
        rc, out = verify(cases[0][0])
        assert "on-failures" in out, "a misspelled Restart= not reported: %r" % out
        rc, out = verify(cases[1][0])
        assert rc != 0 and "not executable" in out, "a missing binary not reported: %s %r" % (rc, out)
    finally:
        for name, _ in cases:
            os.unlink(ROOT + UNITS + "/" + name)


def t_server_unit():
    fill("server.env", {"SDR_CREDS_DB": conninfo(tr.APP), "SDR_CREDS_PORT": "0",
                        "SDR_CREDS_LISTEN": "127.0.0.1"})
    cred = tr.store("svc-crm", None)
    proc, log, argv = run_unit("sdr-creds-server.service", "server-unit.log")
    try:
        h.eq(argv[1:], [], "the server's arguments (its settings come from the environment)")
        m = h.wait_until(lambda: re.search(r"listening on 127\.0\.0\.1 port (\d+)", read(log)), 15)
        assert m, "the server did not start: " + read(log)[-500:]
        port = int(m.group(1))
        h.eq(h.request(port, "GET", "/healthz").status, 200, "GET /healthz")
        r = h.request(port, "GET", "/integration-credentials/" + cred["id"],
                      headers={"X-API-Key": tr.api_key()})
        h.eq((r.status, r.json().get("provider")), (200, "svc-crm"), "an authenticated GET")
        if os.getuid() == 0:
            h.eq(pwd.getpwuid(os.stat("/proc/%d" % proc.pid).st_uid).pw_name, USER, "the server's user")
    finally:
        code = stop(proc)
    h.eq(code, 0, "the server's exit status after SIGTERM")
    assert "stopped" in read(log), "no 'stopped' line"


def t_refresher_unit():
    fill("refresher.env", {"SDR_REFRESHER_DB": conninfo(tr.ROLE),
                           "SDR_REFRESHER_FLAGS": "--interval 1 --window 300 --allow-http-loopback"})
    tr.client("svc-oauth", tr.mock.url)
    tr.store("svc-oauth", h.secret("seed-svc-" + os.urandom(4).hex()), expires_in=60)   # due
    proc, log, argv = run_unit("sdr-creds-refresher.service", "refresher-unit.log")
    try:
        h.eq(argv[1:3], ["--db", conninfo(tr.ROLE)], "--db: the connection string as one argument")
        assert h.wait_until(lambda: "outcome=refreshed" in read(log), 20), \
            "no refresh logged: " + h.redact(read(log))[-500:]
        assert tr.tokens("svc-oauth")[0].startswith("mock-at-"), "the new token stored"
        h.eq(tr.q("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sdr_creds_refresher' "
                  "AND usename = %s" % h.sql_literal(tr.ROLE)), "1", "the refresher's connections")
    finally:
        code = stop(proc)
    h.eq(code, 0, "the refresher's exit status after SIGTERM")
    assert "refresher stopped" in read(log), "no 'refresher stopped' line"
    assert "could not connect" not in read(log), "a connection failure logged"


def cleanup():
    for p in ctx["procs"]:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    if tr.mock:
        tr.mock.stop()
    h.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % tr.DB, db="postgres", check_rc=False)
    h.psql("DROP ROLE IF EXISTS %s; DROP ROLE IF EXISTS %s" % (tr.ROLE, tr.APP), db="postgres", check_rc=False)
    if not ctx.get("user_existed", True) and user_exists():
        subprocess.run(["userdel", USER], check=False)


def main():
    return h.run_with_setup("services", setup, [
        ("services: make install-services (DESTDIR, PREFIX): binaries, units, the sdr-creds system user,"
         " env files 0600 from the examples, never overwritten; prints the systemctl lines", t_install),
        ("services: systemd-analyze verify passes on both units with no warning; a misspelled setting"
         " and a missing binary are reported", t_verify),
        ("services: the server unit's ExecStart as its user with its EnvironmentFile: /healthz, an"
         " authenticated GET; SIGTERM exits 0", t_server_unit),
        ("services: the refresher unit's ExecStart as its user with its EnvironmentFile: connects,"
         " refreshes a due credential; SIGTERM exits 0", t_refresher_unit),
    ], cleanup, lambda: [os.path.join(WORK, n) for n in ("server-unit.log", "refresher-unit.log")])


if __name__ == "__main__":
    sys.exit(main())
