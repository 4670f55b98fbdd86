"""ZooKeeper and multi-broker harness for the cluster-mode tests.

ZooKeeperServer starts a standalone ZooKeeper from Debian's `zookeeper`
package (java + its jars, ZooKeeperServerMain) on a free port with its own
temp data dir - never the system service - and stops it. zk_cli() runs
zkCli.sh against it, as a user would, to read znodes.

Cluster starts N runnel-server brokers (conftest.Broker) with
zookeeper.connect=127.0.0.1:<port><chroot> and distinct broker.id, ports and
log dirs.

Fixtures (used by test_cluster.py):
  zookeeper       module-scoped ZooKeeperServer (tests skip when java or the jars are missing)
  start_cluster   factory: start_cluster(n, chroot, **overrides) -> Cluster, stopped after the test
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import Broker, BrokerDied, free_port, _finish

ZK_JAR = os.environ.get('ZOOKEEPER_JAR', '/usr/share/java/zookeeper.jar')
ZK_CLI = os.environ.get('ZOOKEEPER_CLI', '/usr/share/zookeeper/bin/zkCli.sh')
JAVA = shutil.which('java')


class ZooKeeperServer:
    def __init__(self):
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix='runnel-zk-')
        self.data_dir = os.path.join(self.tmp, 'data')
        os.makedirs(self.data_dir)
        self.log_path = os.path.join(self.tmp, 'zookeeper.log')
        self.proc = None

    @property
    def connect(self):
        return '127.0.0.1:%d' % self.port

    def four_letter(self, cmd, timeout=1.0):
        with socket.create_connection(('127.0.0.1', self.port), timeout=timeout) as s:
            s.sendall(cmd.encode())
            out = b''
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return out.decode('utf-8', 'replace')
                out += chunk

    def start(self, deadline=30.0):
        log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(
            [JAVA, '-Xmx256m', '-Dzookeeper.admin.enableServer=false', '-cp', ZK_JAR,
             'org.apache.zookeeper.server.ZooKeeperServerMain', str(self.port), self.data_dir],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.tmp)
        log.close()
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError('zookeeper exited with %s' % self.proc.returncode)
            try:
                if 'Mode:' in self.four_letter('srvr'):
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError('zookeeper did not start within %.0fs' % deadline)

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        shutil.rmtree(self.tmp, ignore_errors=True)


def zk_cli(zk, *cmd, timeout=60.0):
    """Runs one zkCli.sh command against zk; returns its output (stdout and stderr)."""
    p = subprocess.run([ZK_CLI, '-server', zk.connect] + list(cmd), capture_output=True, text=True,
                       timeout=timeout)
    return p.stdout + p.stderr


class Cluster:
    def __init__(self, zk, n, chroot, overrides):
        self.zk = zk
        self.chroot = chroot
        self.brokers = []
        for i in range(n):
            ov = {'zookeeper.connect': zk.connect + chroot, 'broker.id': str(i + 1),
                  'zookeeper.session.timeout.ms': '6000',
                  'metrics.listener': '127.0.0.1:%d' % free_port()}  # Broker.metrics_port
            ov.update(overrides)
            self.brokers.append(Broker(ov))

    @property
    def bootstrap(self):
        return ','.join(b.bootstrap for b in self.brokers if b.alive())

    def start(self):
        for b in self.brokers:
            b.start()
        return self

    def by_id(self, broker_id):
        return self.brokers[broker_id - 1]


@pytest.fixture(scope='module')
def zookeeper():
    if JAVA is None or not os.path.exists(ZK_JAR):
        pytest.skip('ZooKeeper (Debian package zookeeper) or java is not installed')
    zk = ZooKeeperServer()
    try:
        zk.start()
    except RuntimeError as e:
        zk.stop()
        pytest.fail(str(e))
    yield zk
    zk.stop()


@pytest.fixture
def start_cluster(zookeeper):
    clusters = []

    def factory(n=3, chroot='/runnel', **kw):
        c = Cluster(zookeeper, n, chroot, {k.replace('__', '.'): v for k, v in kw.items()})
        clusters.append(c)
        try:
            c.start()
        except BrokerDied as e:
            pytest.fail(str(e))
        return c
    yield factory
    errors = []
    for c in clusters:
        for b in c.brokers:
            try:
                _finish(b)
            except BaseException as e:
                errors.append(e)
    if errors:
        raise errors[0]
