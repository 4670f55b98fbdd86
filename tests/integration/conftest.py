"""Harness for the integration suite: real runnel-server processes on free
ports with temp data dirs, or an already running broker (RUNNEL_BOOTSTRAP).

Fixtures:
  broker        module-scoped broker with default settings (or the external one)
  start_broker  factory: start_broker(**overrides) -> Broker (dots in keys may
                be written as '__', e.g. num__partitions=3, or pass a dict as
                start_broker(overrides={'num.partitions': 3}))
  topic         unique topic name for the test
On failure, the part of each broker's log written during the test is attached.

Environment:
  RUNNEL_SERVER     broker binary (default build/runnel-server; e.g. build/asan/runnel-server)
  RUNNEL_BOOTSTRAP  host:port of a running broker: tests that only need a broker use it,
                    tests needing restarts, overrides or the data dir are skipped
  RUNNEL_BIG=1      the done-when scenario with 1,000,000 records instead of 100,000
  KCAT              kcat binary (default: kcat on PATH)
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
SERVER = os.path.abspath(os.environ.get('RUNNEL_SERVER', os.path.join(REPO, 'build', 'runnel-server')))
EXTERNAL = os.environ.get('RUNNEL_BOOTSTRAP')

START_DEADLINE = 20.0
STOP_DEADLINE = 20.0

_ALL_BROKERS = []


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


class BrokerDied(Exception):
    pass


class Broker:
    """A runnel-server process we own. restart() keeps data dir and port."""

    external = False

    def __init__(self, overrides=None, config_file=None):
        self.port = free_port()
        self.host = '127.0.0.1'
        self.tmp = tempfile.mkdtemp(prefix='runnel-it-')
        self.data_dir = os.path.join(self.tmp, 'data')
        os.makedirs(self.data_dir)
        self.log_path = os.path.join(self.tmp, 'broker.log')
        self.overrides = dict(overrides or {})
        self.config_file = config_file
        self.proc = None
        self.starts = 0
        self.exit_codes = []
        _ALL_BROKERS.append(self)

    @property
    def bootstrap(self):
        return '%s:%d' % (self.host, self.port)

    def argv(self):
        args = [SERVER]
        if self.config_file:
            args.append(self.config_file)
        base = {'listeners': 'PLAINTEXT://%s:%d' % (self.host, self.port),
                'log.dirs': self.data_dir, 'broker.id': '0'}
        base.update({k: str(v) for k, v in self.overrides.items()})
        for k, v in base.items():
            args += ['--override', '%s=%s' % (k, v)]
        return args

    def start(self):
        if not os.access(SERVER, os.X_OK):
            pytest.fail('broker binary %s missing (build it with make)' % SERVER)
        self.starts += 1
        log = open(self.log_path, 'ab')
        log.write(('\n==== start #%d: %s\n' % (self.starts, ' '.join(self.argv()))).encode())
        log.flush()
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.tmp)
        log.close()
        self.wait_ready()
        return self

    def wait_ready(self, deadline=START_DEADLINE):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise BrokerDied('runnel-server exited with %s during start-up\n%s'
                                 % (self.proc.returncode, self.log_tail()))
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise BrokerDied('runnel-server did not accept connections within %.0fs\n%s'
                         % (deadline, self.log_tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, deadline=STOP_DEADLINE, check=True):
        """Signal the broker and wait; returns its exit code. With check, a
        non-zero exit or a missed deadline fails the test."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            if check:
                pytest.fail('runnel-server did not exit within %.0fs of %s\n%s'
                            % (deadline, signal.Signals(sig).name, self.log_tail()))
            return None
        self.proc = None
        self.exit_codes.append(rc)
        if check and rc != 0:
            pytest.fail('runnel-server exited with %d after %s\n%s'
                        % (rc, signal.Signals(sig).name, self.log_tail()))
        return rc

    def kill9(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self, overrides=None):
        self.stop()
        if overrides:
            self.overrides.update(overrides)
        return self.start()

    def log_text(self, since=0):
        try:
            with open(self.log_path, 'rb') as f:
                f.seek(since)
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_tail(self, since=0, max_lines=150):
        text = self.log_text(since)
        lines = text.splitlines()
        if len(lines) > max_lines:
            lines = ['... (%d lines cut)' % (len(lines) - max_lines)] + lines[-max_lines:]
        return '--- runnel-server log (%s) ---\n%s' % (self.log_path, '\n'.join(lines))

    def partition_dir(self, topic, partition=0):
        return os.path.join(self.data_dir, '%s-%d' % (topic, partition))

    def require_local(self):
        pass

    def cleanup(self):
        if self.proc is not None:
            self.kill9()
        try:  # cached admin clients would keep reconnecting to the dead port
            import helpers
            helpers.drop_admin(self.bootstrap)
        except ImportError:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


class ExternalBroker:
    """An already running broker given by RUNNEL_BOOTSTRAP=host:port."""

    external = True

    def __init__(self, bootstrap):
        self.bootstrap = bootstrap
        host, port = bootstrap.rsplit(':', 1)
        self.host, self.port = host, int(port)
        self.data_dir = None

    def require_local(self):
        pytest.skip('needs a broker started by the suite (RUNNEL_BOOTSTRAP is set)')

    def alive(self):
        return True

    def log_size(self):
        return 0

    def log_tail(self, since=0, max_lines=0):
        return ''

    def __getattr__(self, name):
        if name in ('restart', 'stop', 'kill9', 'partition_dir', 'start', 'log_text'):
            pytest.skip('needs a broker started by the suite (RUNNEL_BOOTSTRAP is set)')
        raise AttributeError(name)


def _norm_overrides(kw):
    out = {}
    for k, v in kw.items():
        out[k.replace('__', '.')] = v
    return out


def _finish(b):
    """Stop a suite-owned broker at the end of its scope, checking a clean exit."""
    try:
        if b.proc is not None and b.proc.poll() is not None:
            rc = b.proc.returncode
            b.proc = None
            pytest.fail('runnel-server died during the tests (exit %s)\n%s' % (rc, b.log_tail()))
        b.stop(signal.SIGTERM)
    finally:
        b.cleanup()


@pytest.fixture(scope='module')
def broker():
    if EXTERNAL:
        yield ExternalBroker(EXTERNAL)
        return
    b = Broker()
    try:
        b.start()
    except BrokerDied as e:
        b.cleanup()
        pytest.fail(str(e))
    yield b
    _finish(b)


@pytest.fixture
def start_broker():
    """Factory: start_broker(overrides=None, **kw) starts a fresh broker with
    extra --override settings; stopped (exit 0 checked) after the test."""
    if EXTERNAL:
        pytest.skip('needs a broker started by the suite (RUNNEL_BOOTSTRAP is set)')
    started = []

    def factory(overrides=None, config_file=None, **kw):
        ov = dict(overrides or {})
        ov.update(_norm_overrides(kw))
        b = Broker(ov, config_file=config_file)
        started.append(b)
        try:
            b.start()
        except BrokerDied as e:
            pytest.fail(str(e))
        return b
    yield factory
    errors = []
    for b in started:
        try:
            _finish(b)
        except BaseException as e:  # collect, so every broker is stopped
            errors.append(e)
    if errors:
        raise errors[0]


_NAME_RE = re.compile(r'[^a-zA-Z0-9-]+')


def unique_topic(prefix='t'):
    return '%s-%s' % (_NAME_RE.sub('-', prefix)[:60].strip('-') or 't', uuid.uuid4().hex[:10])


@pytest.fixture
def topic(request):
    return unique_topic(request.node.name)


# ----- show broker logs on failure

def pytest_runtest_setup(item):
    item._runnel_log_marks = {id(b): b.log_size() for b in _ALL_BROKERS}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        marks = getattr(item, '_runnel_log_marks', {})
        for b in _ALL_BROKERS:
            if not os.path.exists(b.log_path):
                continue
            since = marks.get(id(b), 0)
            if b.log_size() > since or since == 0:
                rep.sections.append(('runnel-server %s (%s)' % (b.bootstrap, rep.when),
                                     b.log_tail(since)))


