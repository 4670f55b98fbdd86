"""Cluster mode on ZooKeeper: a real ZooKeeper (Debian's package, own port
and data dir) and three runnel-server brokers on loopback.

Registration, the controller election and its failover, Kafka's znode
layout, topic creation spreading leaders over the brokers, cluster-wide
Metadata, routing to leaders (NOT_LEADER_OR_FOLLOWER elsewhere), chroot
isolation, and a killed broker coming back. Replication is covered by
test_replication.py, the controller's elections and controlled shutdown by
test_controller.py.
"""

import signal
import uuid

import pytest
from confluent_kafka.admin import NewTopic

import helpers
import kafka_raw as kr
from zk import start_cluster, zk_cli, zookeeper  # noqa: F401 (fixtures)

NOT_LEADER_OR_FOLLOWER = 6
INVALID_REPLICATION_FACTOR = 38
LEADER_NOT_AVAILABLE = 5


def chroot():
    return '/runnel-' + uuid.uuid4().hex[:8]


def metadata(b, topics=None, version=9):
    with kr.Conn.to(b.bootstrap) as c:
        return kr.parse_metadata(c.request(kr.METADATA, version, kr.metadata_body(version, topics),
                                           flexible=version >= 9), version)


def create_topic(bootstrap, name, partitions, rf=1, timeout=20.0):
    a = helpers.admin(bootstrap)
    helpers.wait_futures(a.create_topics([NewTopic(name, partitions, rf)]), timeout=timeout)


def leaders(b, topic):
    md = metadata(b, [topic])
    err, parts, _ = md['topics'][topic]
    assert err == 0, md
    return {p: v[1] for p, v in parts.items()}


def test_three_brokers_register_and_agree(start_cluster, zookeeper):
    cl = start_cluster(3, chroot())
    expect = sorted((int(b.overrides['broker.id']), '127.0.0.1', b.port) for b in cl.brokers)

    def agreed():
        seen = []
        for b in cl.brokers:
            md = metadata(b)
            seen.append((sorted(x[:3] for x in md['brokers']), md['controller_id'], md['cluster_id']))
        return all(s == seen[0] for s in seen) and seen[0][0] == expect and seen[0][1] in (1, 2, 3) and seen
    seen = helpers.wait_for(agreed, timeout=15, what='every broker to list all three')
    # One cluster id for all, the one ZooKeeper holds, and the one in each meta.properties.
    cluster_id = seen[0][2]
    assert '"id":"%s"' % cluster_id in zk_cli(zookeeper, 'get', cl.chroot + '/cluster/id')
    for b in cl.brokers:
        with open(b.data_dir + '/meta.properties') as f:
            assert 'cluster.id=%s' % cluster_id in f.read()
    ctl = zk_cli(zookeeper, 'get', cl.chroot + '/controller')
    assert '"brokerid":%d' % seen[0][1] in ctl
    reg = zk_cli(zookeeper, 'get', cl.chroot + '/brokers/ids/2')
    assert '"host":"127.0.0.1"' in reg and '"port":%d' % cl.by_id(2).port in reg
    assert '"endpoints":["PLAINTEXT://127.0.0.1:%d"]' % cl.by_id(2).port in reg


def test_create_topic_spreads_leaders_and_routes_clients(start_cluster, zookeeper, topic):
    cl = start_cluster(3, chroot())
    helpers.wait_for(lambda: all(len(metadata(b)['brokers']) == 3 for b in cl.brokers), timeout=15,
                     what='three live brokers')
    create_topic(cl.by_id(1).bootstrap, topic, 6)
    # Every broker answers the same leaders, and they cover all three brokers (round robin).
    ls = helpers.wait_for(lambda: len({tuple(sorted(leaders(b, topic).items())) for b in cl.brokers}) == 1
                          and leaders(cl.by_id(3), topic), timeout=15, what='all brokers to know the topic')
    assert sorted(ls) == list(range(6))
    assert sorted(set(ls.values())) == [1, 2, 3]
    md = metadata(cl.by_id(2), [topic])
    for p, (err, leader, reps, isr) in md['topics'][topic][1].items():
        assert (err, reps, isr) == (0, [leader], [leader])

    # Kafka's znodes, as zkCli shows them.
    assign = zk_cli(zookeeper, 'get', '%s/brokers/topics/%s' % (cl.chroot, topic))
    assert '"partitions":{"0":[%d],"1":[%d]' % (ls[0], ls[1]) in assign and '"topic_id":"' in assign
    state = zk_cli(zookeeper, 'get', '%s/brokers/topics/%s/partitions/0/state' % (cl.chroot, topic))
    assert '"leader":%d' % ls[0] in state and '"isr":[%d]' % ls[0] in state and '"leader_epoch":0' in state
    assert '"version":1,"config":{}' in zk_cli(zookeeper, 'get', '%s/config/topics/%s' % (cl.chroot, topic))

    # A client bootstrapped on one broker is routed to each partition's leader.
    sent = {p: helpers.make_records(50, prefix='p%d' % p) for p in range(6)}
    for p in range(6):
        helpers.produce_confluent(cl.by_id(1).bootstrap, topic, sent[p], partition=p, conf={'acks': 'all'})
    for p in range(6):
        got = helpers.consume_confluent(cl.by_id(2).bootstrap, topic, partition=p, count=50)
        helpers.assert_records(got, sent[p])
        assert helpers.watermarks(cl.by_id(3).bootstrap, topic, p) == (0, 50)

    # Produce and Fetch sent straight to a broker that does not lead the partition.
    other = next(b for b in cl.brokers if int(b.overrides['broker.id']) != ls[0])
    batch = kr.build_batch([(b'k', b'v', None, None)])
    with kr.Conn.to(other.bootstrap) as c:
        pr = kr.parse_produce(c.request(kr.PRODUCE, 7, kr.produce_body(7, topic, 0, batch)), 7)
        assert pr[(topic, 0)]['error'] == NOT_LEADER_OR_FOLLOWER
        f = kr.parse_fetch(c.request(kr.FETCH, 5, kr.fetch_body(topic, 0, 0)))
        assert f[(topic, 0)]['error'] == NOT_LEADER_OR_FOLLOWER


def test_replication_factor_checks(start_cluster, topic):
    cl = start_cluster(3, chroot())
    helpers.wait_for(lambda: len(metadata(cl.by_id(1))['brokers']) == 3, timeout=15, what='three brokers')
    a = helpers.admin(cl.by_id(1).bootstrap)
    fs = a.create_topics([NewTopic(topic + '4', 1, 4)])
    with pytest.raises(Exception) as e:
        fs[topic + '4'].result(20)
    assert helpers.kafka_exc_code(e.value) == INVALID_REPLICATION_FACTOR
    assert 'larger than available brokers: 3' in str(e.value)
    # Up to the number of live brokers is fine: every partition gets that many replicas.
    helpers.wait_futures(a.create_topics([NewTopic(topic + '3', 4, 3)]), timeout=20)
    md = metadata(cl.by_id(1), [topic + '3'])
    err, parts, _ = md['topics'][topic + '3']
    assert err == 0 and len(parts) == 4


def test_two_chroots_do_not_see_each_other(start_cluster, zookeeper, topic):
    a = start_cluster(2, chroot())
    b = start_cluster(1, chroot())
    create_topic(a.by_id(1).bootstrap, topic, 2)
    create_topic(b.by_id(1).bootstrap, topic + '-b', 1)
    helpers.wait_for(lambda: topic in metadata(a.by_id(2))['topics'], timeout=15, what='topic on cluster a')
    ma, mb = metadata(a.by_id(1)), metadata(b.by_id(1))
    assert topic in ma['topics'] and topic + '-b' not in ma['topics']
    assert topic + '-b' in mb['topics'] and topic not in mb['topics']
    assert [x[0] for x in mb['brokers']] == [1] and sorted(x[0] for x in ma['brokers']) == [1, 2]
    assert ma['cluster_id'] != mb['cluster_id']


def test_auto_create_through_metadata(start_cluster, topic):
    cl = start_cluster(3, chroot(), num__partitions=3)
    helpers.wait_for(lambda: len(metadata(cl.by_id(2))['brokers']) == 3, timeout=15, what='three brokers')
    md = metadata(cl.by_id(2), [topic])
    assert md['topics'][topic][0] in (0, LEADER_NOT_AVAILABLE)
    ls = helpers.wait_for(lambda: metadata(cl.by_id(3), [topic])['topics'][topic][0] == 0 and
                          leaders(cl.by_id(3), topic), timeout=15, what='auto-created topic')
    assert sorted(ls) == [0, 1, 2] and sorted(ls.values()) == [1, 2, 3]


def test_controller_failover_and_broker_return(start_cluster, zookeeper, topic):
    cl = start_cluster(3, chroot())
    ctl = helpers.wait_for(lambda: len(metadata(cl.by_id(1))['brokers']) == 3 and
                           metadata(cl.by_id(1))['controller_id'], timeout=15, what='a controller')
    # A clean stop deletes the ephemeral znodes at once: another broker takes over.
    cl.by_id(ctl).stop(signal.SIGTERM)
    rest = [b for b in cl.brokers if b.alive()]
    new = helpers.wait_for(lambda: all(metadata(b)['controller_id'] not in (ctl, -1) and
                                       len(metadata(b)['brokers']) == 2 for b in rest) and
                           metadata(rest[0])['controller_id'], timeout=15, what='a new controller')
    assert new != ctl
    cl.by_id(ctl).start()
    helpers.wait_for(lambda: len(metadata(cl.by_id(ctl))['brokers']) == 3, timeout=15, what='rejoin')
    # kill -9: the znode stays until the session times out (6 s here), then the broker is gone;
    # restarted, it registers again once the old session has expired.
    victim = next(b for b in cl.brokers if int(b.overrides['broker.id']) != new)
    vid = int(victim.overrides['broker.id'])
    victim.kill9()
    helpers.wait_for(lambda: vid not in [x[0] for x in metadata(cl.by_id(new))['brokers']], timeout=20,
                     what='the killed broker to leave')
    victim.start()
    helpers.wait_for(lambda: vid in [x[0] for x in metadata(cl.by_id(new))['brokers']], timeout=20,
                     what='the restarted broker to register')
    # The topic is created through the restarted broker: its own view must hold all three brokers
    # first, or it spreads the partitions over the ones it knows.
    helpers.wait_for(lambda: len(metadata(victim)['brokers']) == 3, timeout=20, what='three brokers seen by it')
    create_topic(victim.bootstrap, topic, 3)
    helpers.wait_for(lambda: sorted(leaders(victim, topic).values()) == [1, 2, 3], timeout=15,
                     what='leaders on every broker')


def test_delete_topic_removes_it_everywhere(start_cluster, zookeeper, topic):
    cl = start_cluster(3, chroot())
    helpers.wait_for(lambda: all(len(metadata(b)['brokers']) == 3 for b in cl.brokers), timeout=15,
                     what='three live brokers')
    create_topic(cl.by_id(1).bootstrap, topic, 3)
    ls = helpers.wait_for(lambda: all(topic in metadata(b)['topics'] for b in cl.brokers) and
                          leaders(cl.by_id(1), topic), timeout=15, what='the topic on every broker')
    for p in range(3):
        helpers.produce_confluent(cl.by_id(1).bootstrap, topic, helpers.make_records(10, prefix='d%d' % p),
                                  partition=p)
    import os
    for p, leader in ls.items():
        assert os.path.isdir(cl.by_id(leader).partition_dir(topic, p))
    # Deleting through a broker asks the controller (/admin/delete_topics); the answer comes
    # once the topic is gone from that broker.
    a = helpers.admin(cl.by_id(2).bootstrap)
    assert helpers.wait_futures(a.delete_topics([topic], operation_timeout=20), timeout=30)[topic] is None
    assert topic not in metadata(cl.by_id(2))['topics']
    helpers.wait_for(lambda: all(topic not in metadata(b)['topics'] for b in cl.brokers), timeout=15,
                     what='the topic to leave every broker')
    helpers.wait_for(lambda: not any(os.path.exists(b.partition_dir(topic, p)) for b in cl.brokers
                                     for p in range(3)), timeout=15, what='the data to go everywhere')
    listing = zk_cli(zookeeper, 'ls', cl.chroot + '/brokers/topics')
    assert topic not in listing
    assert topic not in zk_cli(zookeeper, 'ls', cl.chroot + '/admin/delete_topics')
    assert topic not in zk_cli(zookeeper, 'ls', cl.chroot + '/config/topics')
    # The name can be used again, and the new topic starts empty.
    create_topic(cl.by_id(3).bootstrap, topic, 3)
    helpers.wait_for(lambda: all(metadata(b, [topic])['topics'][topic][0] == 0 for b in cl.brokers),
                     timeout=15, what='the new topic everywhere')
    for p in range(3):
        assert helpers.watermarks(cl.by_id(1).bootstrap, topic, p) == (0, 0)


def test_list_offsets_and_create_partitions_in_cluster_mode(start_cluster, topic):
    cl = start_cluster(2, chroot())
    helpers.wait_for(lambda: len(metadata(cl.by_id(1))['brokers']) == 2, timeout=15, what='two brokers')
    create_topic(cl.by_id(1).bootstrap, topic, 2)
    ls = helpers.wait_for(lambda: all(topic in metadata(b)['topics'] for b in cl.brokers) and
                          leaders(cl.by_id(2), topic), timeout=15, what='the topic on both brokers')
    p = 0
    other = cl.by_id(1 if ls[p] == 2 else 2)
    with kr.Conn.to(other.bootstrap) as c:
        r = kr.parse_list_offsets(c.request(kr.LIST_OFFSETS, 1, kr.list_offsets_body(1, topic, p, -1)), 1)
    assert r[(topic, p)][0] == NOT_LEADER_OR_FOLLOWER
    from confluent_kafka.admin import NewPartitions
    fs = helpers.admin(cl.by_id(1).bootstrap).create_partitions([NewPartitions(topic, 4)])
    fs[topic].result(20)
    # Through ZooKeeper: every broker sees the new partitions.
    helpers.wait_for(lambda: all(len(leaders(b, topic)) == 4 for b in cl.brokers), timeout=15,
                     what='four partitions on both brokers')


def topic_config(bootstrap, name):
    from confluent_kafka.admin import ConfigResource
    fs = helpers.admin(bootstrap).describe_configs([ConfigResource(ConfigResource.Type.TOPIC, name)])
    res = list(helpers.wait_futures(fs).values())[0]
    assert not isinstance(res, Exception), res
    return {k: v.value for k, v in res.items()}


def test_topic_config_changes_reach_every_broker(start_cluster, zookeeper, topic):
    cl = start_cluster(3, chroot())
    helpers.wait_for(lambda: all(len(metadata(b)['brokers']) == 3 for b in cl.brokers), timeout=15,
                     what='three live brokers')
    a = helpers.admin(cl.by_id(1).bootstrap)
    helpers.wait_futures(a.create_topics([NewTopic(topic, 2, 1, config={'retention.ms': '7200000'})]), 20)
    helpers.wait_for(lambda: all(topic in metadata(b)['topics'] for b in cl.brokers), timeout=15,
                     what='the topic everywhere')
    # Created with its overrides everywhere.
    for b in cl.brokers:
        assert topic_config(b.bootstrap, topic)['retention.ms'] == '7200000'
    assert '"config":{"retention.ms":"7200000"}' in zk_cli(zookeeper, 'get', '%s/config/topics/%s' % (cl.chroot, topic))
    # Changed through broker 2: stored in ZooKeeper with a change notification, applied by all.
    with kr.Conn.to(cl.by_id(2).bootstrap) as c:
        r = c.request(kr.INCREMENTAL_ALTER_CONFIGS, 0,
                      kr.incremental_alter_configs_body([(kr.RESOURCE_TOPIC, topic,
                                                          [('retention.ms', kr.OP_SET, '3600000'),
                                                           ('max.message.bytes', kr.OP_SET, '50000')])]))
        assert kr.parse_incremental_alter_configs(r, 0)[(kr.RESOURCE_TOPIC, topic)][0] == 0
    helpers.wait_for(lambda: all(topic_config(b.bootstrap, topic)['retention.ms'] == '3600000' and
                                 topic_config(b.bootstrap, topic)['max.message.bytes'] == '50000'
                                 for b in cl.brokers), timeout=15, what='the change on every broker')
    stored = zk_cli(zookeeper, 'get', '%s/config/topics/%s' % (cl.chroot, topic))
    assert '"retention.ms":"3600000"' in stored and '"max.message.bytes":"50000"' in stored
    assert 'config_change_' in zk_cli(zookeeper, 'ls', cl.chroot + '/config/changes')
    # The new limit is enforced by the leader, whichever broker took the change.
    big = helpers.make_records(1, value_size=60000)
    res = helpers.produce_confluent(cl.by_id(3).bootstrap, topic, big, partition=0, expect_errors=True,
                                    conf={'message.max.bytes': 1000000}, timeout=15)
    assert res[0][0] is not None and res[0][0].code() == 10  # MESSAGE_TOO_LARGE


def test_controller_takes_leadership_off_lost_brokers_and_back(start_cluster, zookeeper, topic):
    cl = start_cluster(3, chroot())
    ctl = helpers.wait_for(lambda: all(len(metadata(b)['brokers']) == 3 for b in cl.brokers) and
                           metadata(cl.by_id(1))['controller_id'], timeout=15, what='three brokers')
    create_topic(cl.by_id(1).bootstrap, topic, 3)
    ls = helpers.wait_for(lambda: all(topic in metadata(b)['topics'] for b in cl.brokers) and
                          leaders(cl.by_id(1), topic), timeout=15, what='the topic everywhere')
    vid = next(i for i in (1, 2, 3) if i != ctl)
    p = next(q for q, leader in ls.items() if leader == vid)
    first = helpers.make_records(20, prefix='before')
    helpers.produce_confluent(cl.bootstrap, topic, first, partition=p, conf={'acks': 'all'})
    victim = cl.by_id(vid)
    victim.stop(signal.SIGTERM)
    # With replication factor 1 no other replica may lead (no unclean election): offline.
    other = cl.by_id(ctl)
    helpers.wait_for(lambda: metadata(other, [topic])['topics'][topic][1][p][:2] == (LEADER_NOT_AVAILABLE, -1),
                     timeout=15, what='the partition to go offline')
    state = zk_cli(zookeeper, 'get', '%s/brokers/topics/%s/partitions/%d/state' % (cl.chroot, topic, p))
    assert '"leader":-1' in state and '"leader_epoch":1' in state and '"isr":[%d]' % vid in state
    # Partitions of the live brokers are untouched.
    for q, leader in ls.items():
        if leader != vid:
            assert metadata(other, [topic])['topics'][topic][1][q][:2] == (0, leader)
    victim.start()
    helpers.wait_for(lambda: all(metadata(b, [topic])['topics'][topic][1][p][:2] == (0, vid)
                                 for b in cl.brokers), timeout=20, what='the leader back')
    state = zk_cli(zookeeper, 'get', '%s/brokers/topics/%s/partitions/%d/state' % (cl.chroot, topic, p))
    assert '"leader":%d' % vid in state and '"leader_epoch":2' in state
    # Clients follow the new leader epoch; nothing written before is lost.
    second = helpers.make_records(10, prefix='after')
    helpers.produce_confluent(cl.bootstrap, topic, second, partition=p, conf={'acks': 'all'})
    got = helpers.consume_confluent(cl.bootstrap, topic, partition=p, count=30)
    assert [g.value for g in got] == [r['value'] for r in first + second]


def test_controller_killed_its_partitions_go_offline_then_return(start_cluster, topic):
    cl = start_cluster(3, chroot())
    ctl = helpers.wait_for(lambda: all(len(metadata(b)['brokers']) == 3 for b in cl.brokers) and
                           metadata(cl.by_id(1))['controller_id'], timeout=15, what='three brokers')
    create_topic(cl.by_id(1).bootstrap, topic, 3)
    ls = helpers.wait_for(lambda: all(topic in metadata(b)['topics'] for b in cl.brokers) and
                          leaders(cl.by_id(1), topic), timeout=15, what='the topic everywhere')
    p = next(q for q, leader in ls.items() if leader == ctl)
    cl.by_id(ctl).kill9()
    other = next(b for b in cl.brokers if b.alive())
    # Within the session timeout (6 s here) another broker is controller and the dead one's
    # partition has no leader.
    helpers.wait_for(lambda: metadata(other)['controller_id'] not in (ctl, -1) and
                     metadata(other, [topic])['topics'][topic][1][p][:2] == (LEADER_NOT_AVAILABLE, -1),
                     timeout=20, what='a new controller and the partition offline')
    cl.by_id(ctl).start()
    helpers.wait_for(lambda: metadata(other, [topic])['topics'][topic][1][p][:2] == (0, ctl), timeout=25,
                     what='the restarted broker to lead its partition again')
    helpers.produce_confluent(cl.bootstrap, topic, helpers.make_records(5), partition=p, conf={'acks': 'all'})


def test_controller_completes_a_topic_written_by_another_tool(start_cluster, zookeeper, topic):
    cl = start_cluster(3, chroot())
    helpers.wait_for(lambda: all(len(metadata(b)['brokers']) == 3 for b in cl.brokers), timeout=15,
                     what='three live brokers')
    # Only the assignment, as old tools wrote it: no topic id, no partition states.
    out = zk_cli(zookeeper, 'create', '%s/brokers/topics/%s' % (cl.chroot, topic),
                 '{"version":1,"partitions":{"0":[1],"1":[2],"2":[3]}}')
    assert 'Created' in out, out
    helpers.wait_for(lambda: all(metadata(b, [topic])['topics'][topic][0] == 0 and
                                 leaders(b, topic) == {0: 1, 1: 2, 2: 3} for b in cl.brokers),
                     timeout=20, what='the controller to give the topic leaders')
    assign = zk_cli(zookeeper, 'get', '%s/brokers/topics/%s' % (cl.chroot, topic))
    assert '"topic_id":"' in assign and '"partitions":{"0":[1],"1":[2],"2":[3]}' in assign
    state = zk_cli(zookeeper, 'get', '%s/brokers/topics/%s/partitions/1/state' % (cl.chroot, topic))
    assert '"leader":2' in state and '"isr":[2]' in state
    # One topic id on every broker (Metadata v10 carries it).
    ids = set()
    for b in cl.brokers:
        with kr.Conn.to(b.bootstrap) as c:
            ids.add(kr.metadata_topic_id(c, topic))
    assert len(ids) == 1
    recs = helpers.make_records(5)
    helpers.produce_confluent(cl.bootstrap, topic, recs, partition=2, conf={'acks': 'all'})
    got = helpers.consume_confluent(cl.bootstrap, topic, partition=2, count=5)
    assert [g.value for g in got] == [r['value'] for r in recs]
